/**
 * The skinny tensor-core GEMM of batched decode (csrc/cuda/skinny_gemm_cuda.cu: 8 < M <= 64 rows,
 * bf16/f16; forced with STATESPACE_SKINNY=1 where cuBLAS would take the product): against the float64 reference on the stored values, over odd sizes (partial weight
 * tiles, K not a multiple of the 64-wide stage, K split over 1 to 8 blocks of a cluster), strided
 * views read in place, layouts it refuses (which must fall back, still right), bit-for-bit
 * reproducibility of the split-K sum.
 */
import { afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { DType, captureGraph, copyInto, debugPoison, linear, randn, zeros } from '../../lib/index';
import { describeGpu, expectClose, expectNoNaN, relErr, rng } from '../helpers';
import { randnInput } from '../model_inputs';
import { linearRef } from '../reference/dense';

const TOL: Record<string, number> = { float16: 5e-3, bfloat16: 1.5e-2 };

// [M, N, K]: M in (8, 64].
const SHAPES: Array<[number, number, number]> = [
  [9, 1, 8], // one output column, one 16-byte chunk of K
  [64, 128, 64], // one full tile, one stage
  [33, 130, 72], // a partial second tile, a partial second stage, a partial token n-tile
  [17, 10240, 256], // in_proj-like width: 80 tiles, K split in 2
  [64, 2560, 5120], // mamba-2.8b out_proj: K split over a cluster of 8
  [63, 192, 5120], // x_proj (the narrow kernel takes it)
  [40, 257, 4104], // N odd, K not a multiple of 64
  [12, 3000, 24], // K shorter than one stage (no split)
  [48, 1000, 520], // K split with an unequal last part
];

// linear() at each [M, N, K] against the float64 reference on the stored values, without a bias
// and with a float32 and a 16-bit one.
async function checkAgainstReference(shapes: Array<[number, number, number]>, dtype: DType, what: string): Promise<void> {
  for (const [M, N, K] of shapes) {
    const r = rng();
    const x = randnInput([M, K], dtype, 'cuda', 1, r);
    const w = randnInput([N, K], dtype, 'cuda', 1 / Math.sqrt(K), r);
    const b32 = randnInput([N], 'float32', 'cuda', 1, r);
    const b16 = randnInput([N], dtype, 'cuda', 1, r);
    for (const bias of [undefined, b32, b16]) {
      const y = await linear({ x: x.t, weight: w.t, bias: bias?.t }).data();
      expect(y.length).toBe(M * N);
      expectNoNaN(y, `${what} linear`);
      expectClose(y, linearRef(x.v, w.v, M, N, K, bias?.v), TOL[dtype], `${what} ${dtype} ${M}x${N}x${K}${bias ? ` +bias ${bias.t.dtype}` : ''}`);
    }
  }
}

describeGpu('skinny GEMM (batched decode) on CUDA', () => {
  beforeAll(() => debugPoison(true));
  // Taken by default only where cuBLAS is missing: forced here (narrow shapes with K % 32 == 0 and
  // K >= 2048 go to the narrow kernel below instead).
  beforeEach(() => {
    process.env.STATESPACE_SKINNY = '1';
  });
  afterEach(() => {
    delete process.env.STATESPACE_SKINNY;
  });

  for (const dtype of ['bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: odd sizes against the float64 reference, with and without bias`, () => checkAgainstReference(SHAPES, dtype, 'skinny'));
  }

  it('bf16: strided views (column slices of x and of the weight) read in place, misaligned ones fall back', async () => {
    const M = 37, N = 300, K = 136;
    for (const [xoff, woff] of [
      [8, 16], // 16-byte aligned rows: the skinny kernel
      [1, 0], // x misaligned: another kernel
      [0, 3], // weight misaligned: another kernel
    ]) {
      const r = rng();
      const xw = randnInput([M, K + 24], 'bfloat16', 'cuda', 1, r);
      const ww = randnInput([N, K + 40], 'bfloat16', 'cuda', 1 / Math.sqrt(K), r);
      const x = xw.t.slice(1, xoff, xoff + K);
      const w = ww.t.slice(1, woff, woff + K);
      const xv = new Float64Array(M * K), wv = new Float64Array(N * K);
      for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) xv[m * K + k] = xw.v[m * (K + 24) + xoff + k];
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wv[n * K + k] = ww.v[n * (K + 40) + woff + k];
      const y = await linear({ x, weight: w }).data();
      expectNoNaN(y, 'strided');
      expectClose(y, linearRef(xv, wv, M, N, K), TOL.bfloat16, `x offset ${xoff}, weight offset ${woff}`);
    }
  });

  it('bf16: a transposed weight view, K not a multiple of 8 and M past 64 take other kernels, still right', async () => {
    for (const [M, N, K, transposed] of [
      [20, 96, 64, true],
      [20, 96, 65, false],
      [65, 96, 64, false],
    ] as Array<[number, number, number, boolean]>) {
      const r = rng();
      const x = randnInput([M, K], 'bfloat16', 'cuda', 1, r);
      const w = transposed ? randnInput([K, N], 'bfloat16', 'cuda', 1 / Math.sqrt(K), r) : randnInput([N, K], 'bfloat16', 'cuda', 1 / Math.sqrt(K), r);
      const wv = new Float64Array(N * K);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wv[n * K + k] = transposed ? w.v[k * N + n] : w.v[n * K + k];
      const y = await linear({ x: x.t, weight: transposed ? w.t.transpose(0, 1) : w.t }).data();
      expectNoNaN(y, 'fallback');
      expectClose(y, linearRef(x.v, wv, M, N, K), TOL.bfloat16, `${M}x${N}x${K}${transposed ? ' transposed weight' : ''}`);
    }
  });

  it('bf16: the K split over a cluster sums in a fixed order (bit-for-bit equal runs) and agrees with STATESPACE_SKINNY=0', async () => {
    const x = randn([64, 5120], { dtype: 'bfloat16', device: 'cuda' });
    const w = randn([2560, 5120], { dtype: 'bfloat16', device: 'cuda', std: 0.02 });
    const a = await linear({ x, weight: w }).data();
    const b = await linear({ x, weight: w }).data();
    expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer))).toBe(0);
    process.env.STATESPACE_SKINNY = '0';
    const c = await linear({ x, weight: w }).data();
    expect(relErr(a, c)).toBeLessThan(1e-2);
  });
});

/**
 * The narrow split-K kernel (N <= 256, K % 32 == 0, K >= 2048: Mamba-1's x_proj), taken on sm_90
 * even where cuBLAS is there.
 */
describeGpu('narrow split-K GEMM (x_proj at batch > 8) on CUDA', () => {
  beforeAll(() => debugPoison(true));

  // [M, N, K]: a full x_proj, one 16-row tile at the smallest K, a partial tile over chunks that
  // split unevenly over the warps, the widest N it takes with every token row partial
  const SHAPES_NARROW: Array<[number, number, number]> = [
    [64, 192, 5120],
    [9, 16, 2048],
    [33, 17, 2336],
    [50, 256, 4096],
    // decode batches at x_proj widths (dt rank + 2·dstate): K a multiple of 32 but not of the
    // 16-way split's 512 (chunks split unevenly over the blocks and warps), a partial 32-row tile
    [9, 160, 4128],
    [33, 200, 5152],
    [64, 160, 8192],
  ];
  for (const dtype of ['bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: against the float64 reference, with and without bias`, () => checkAgainstReference(SHAPES_NARROW, dtype, 'narrow'));
  }

  it('bf16: x as a column slice of a wider row (as x_proj reads u), bit-for-bit equal runs', async () => {
    const M = 64, N = 192, K = 5120;
    const r = rng();
    const xw = randnInput([M, 2 * K], 'bfloat16', 'cuda', 1, r);
    const w = randnInput([N, K], 'bfloat16', 'cuda', 1 / Math.sqrt(K), r);
    const x = xw.t.slice(1, 0, K);
    const xv = new Float64Array(M * K);
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) xv[m * K + k] = xw.v[m * 2 * K + k];
    const a = await linear({ x, weight: w.t }).data();
    const b = await linear({ x, weight: w.t }).data();
    expectClose(a, linearRef(xv, w.v, M, N, K), TOL.bfloat16, 'strided x');
    expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer))).toBe(0);
  });

  it('bf16 and f16: inside a captured CUDA graph, x a column slice and a bias, replayed on new inputs', async () => {
    for (const [dtype, M, N, K] of [
      ['bfloat16', 64, 192, 5120],
      ['float16', 33, 200, 4128],
    ] as Array<[DType, number, number, number]>) {
      const r = rng();
      const w = randnInput([N, K], dtype, 'cuda', 1 / Math.sqrt(K), r);
      const bias = randnInput([N], dtype, 'cuda', 1, r);
      const xw = zeros([M, 2 * K + 8], { dtype, device: 'cuda' });
      const x = xw.slice(1, 8, 8 + K); // 16-byte aligned rows, row stride 2K + 8
      const out = zeros([M, N], { dtype, device: 'cuda' });
      const step = () => copyInto(out, linear({ x, weight: w.t, bias: bias.t }));
      const first = randnInput([M, 2 * K + 8], dtype, 'cuda', 1, r);
      copyInto(xw, first.t);
      step(); // outside the capture first (cluster-size query, shared-memory opt-in)
      const g = captureGraph('cuda', step);
      for (let round = 0; round < 2; round++) {
        const fresh = randnInput([M, 2 * K + 8], dtype, 'cuda', 1, r);
        copyInto(xw, fresh.t);
        copyInto(out, zeros([M, N], { dtype, device: 'cuda' }));
        g.replay();
        const y = await out.data();
        const xv = new Float64Array(M * K);
        for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) xv[m * K + k] = fresh.v[m * (2 * K + 8) + 8 + k];
        expectNoNaN(y, 'graph');
        expectClose(y, linearRef(xv, w.v, M, N, K, bias.v), TOL[dtype], `graph ${dtype} ${M}x${N}x${K} round ${round}`);
      }
      g.dispose();
    }
  });
});
