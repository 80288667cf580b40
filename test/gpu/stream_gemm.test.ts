/**
 * The weight-streaming GEMM of batched decode (csrc/cuda/stream_gemm_cuda.cu: 8 < M <= 64 rows,
 * bf16/f16, sm_90, taken where its one-wave decomposition covers the SMs evenly: the in_proj of
 * both 2.7B-class models and their out_proj 5120 -> 2560): against the
 * float64 reference on the stored values (full and partial token counts, with and without bias),
 * a strided x (a column slice of a wider row, read in place through its tensor map), bit-for-bit
 * equal runs of the cluster's K-split sum, agreement with STATESPACE_STREAM_GEMM=0 (cuBLAS), and
 * linearConvUpdate with the width-4 conv step in its epilogue against linear + causalConv1dUpdate.
 */
import { afterEach, beforeAll, expect, it } from 'vitest';
import { DType, causalConv1dUpdate, debugPoison, linear, linearConvUpdate, randn } from '../../lib/index';
import { describeGpu, expectClose, expectNoNaN, relErr, rng } from '../helpers';
import { randnInput } from '../model_inputs';
import { linearRef } from '../reference/dense';

const TOL: Record<string, number> = { float16: 5e-3, bfloat16: 1.5e-2 };

describeGpu('weight-streaming GEMM (batched decode) on CUDA', () => {
  beforeAll(() => debugPoison(true));
  afterEach(() => {
    delete process.env.STATESPACE_STREAM_GEMM;
  });

  // [M, N, K, dtype]: out_proj (K split over a cluster of 8) at 64 and 13 tokens, in_proj (split 2)
  for (const [M, N, K, dtype] of [
    [64, 2560, 5120, 'bfloat16'],
    [13, 2560, 5120, 'float16'],
    [24, 10240, 2560, 'bfloat16'],
    [40, 10576, 2560, 'bfloat16'], // Mamba-2's in_proj: 16-row warps, 176 rows x 2 splits, the last tile partial
  ] as Array<[number, number, number, DType]>) {
    it(`${dtype} ${M}x${N}x${K}: against the float64 reference, with and without bias`, async () => {
      const r = rng();
      const x = randnInput([M, K], dtype, 'cuda', 1, r);
      const w = randnInput([N, K], dtype, 'cuda', 1 / Math.sqrt(K), r);
      const b32 = randnInput([N], 'float32', 'cuda', 1, r);
      for (const bias of [undefined, b32]) {
        const y = await linear({ x: x.t, weight: w.t, bias: bias?.t }).data();
        expect(y.length).toBe(M * N);
        expectNoNaN(y, 'stream linear');
        expectClose(y, linearRef(x.v, w.v, M, N, K, bias?.v), TOL[dtype], `${dtype} ${M}x${N}x${K}${bias ? ' +bias' : ''}`);
      }
    });
  }

  it('bf16 64x2560x5120: x as a column slice of a wider row, bit-for-bit equal runs, agrees with cuBLAS', async () => {
    const M = 64, N = 2560, K = 5120, pad = 64;
    const r = rng();
    const xw = randnInput([M, K + pad], 'bfloat16', 'cuda', 1, r);
    const w = randnInput([N, K], 'bfloat16', 'cuda', 1 / Math.sqrt(K), r);
    const x = xw.t.slice(1, 8, 8 + K); // rows K + pad apart, 16-byte aligned
    const xv = new Float64Array(M * K);
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) xv[m * K + k] = xw.v[m * (K + pad) + 8 + k];
    const y1 = await linear({ x, weight: w.t }).data();
    const y2 = await linear({ x, weight: w.t }).data();
    expectNoNaN(y1, 'strided');
    expect(Array.from(y2).every((v, i) => Object.is(v, y1[i]))).toBe(true);
    expectClose(y1, linearRef(xv, w.v, M, N, K), TOL.bfloat16, 'strided x');
    process.env.STATESPACE_STREAM_GEMM = '0';
    const yc = await linear({ x, weight: w.t }).data();
    expect(relErr(y1, yc)).toBeLessThan(1e-2);
  });

  // in_proj shapes of both models with their conv columns: Mamba-1 [0, 5120) of 10240, Mamba-2
  // [5120, 10496) of 10576 (the z columns first), 64 and 20 tokens.
  for (const [M, N, K, lo, C, withBias] of [
    [64, 10240, 2560, 0, 5120, true],
    [20, 10576, 2560, 5120, 5376, false],
  ] as Array<[number, number, number, number, number, boolean]>) {
    it(`bf16 linearConvUpdate ${M}x${N}x${K}, conv columns [${lo}, ${lo + C}): the conv step in the epilogue equals linear then causalConv1dUpdate`, async () => {
      const dtype: DType = 'bfloat16', device = 'cuda';
      const x = randn([M, K], { dtype, device });
      const w = randn([N, K], { dtype, device, std: 1 / Math.sqrt(K) });
      const cw = randn([C, 4], { dtype, device, std: 0.5 });
      const cb = withBias ? randn([C], { dtype, device }) : undefined;
      const state0 = randn([M, C, 3], { dtype, device });
      const s1 = state0.clone(), s2 = state0.clone();
      const fused = await linearConvUpdate({ x, weight: w, convState: s1, convWeight: cw, convBias: cb, convStart: lo, activation: 'silu' }).data();
      const plain = linear({ x, weight: w });
      const conv = await causalConv1dUpdate({ x: plain.slice(1, lo, lo + C), convState: s2, weight: cw, bias: cb, activation: 'silu' }).data();
      const want = Float64Array.from(await plain.data());
      for (let m = 0; m < M; m++) for (let j = 0; j < C; j++) want[m * N + lo + j] = conv[m * C + j];
      expectNoNaN(fused, 'linearConvUpdate');
      expect(relErr(fused, want)).toBeLessThan(1e-3);
      expect(relErr(await s1.data(), await s2.data())).toBeLessThan(1e-3);
    });
  }
});
