/**
 * cuBLASLt for the products of batched decode (csrc/cuda/cublaslt_gemm.cu: 8 < M <= 64 rows where
 * cuBLAS is there): the algorithm of a shape is chosen by timing the heuristic's candidates at its
 * first call outside a stream capture, then cached. Checked against the float64 reference on the stored values
 * in f32 / f16 / bf16 at decode shapes and odd ones, strided and transposed operands as linear
 * passes them, the cache (bit-identical results once chosen; a first call inside a capture takes
 * the heuristic's first and keeps it), Mamba-1's forked in_proj products taking the first untimed,
 * and the cublasGemmEx fallback (STATESPACE_CUBLASLT=0).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { DType, captureGraph, copyInto, debugPoison, linear, linearBackend, zeros } from '../../lib/index';
import { describeGpu, expectClose, expectNoNaN, relErr, rng } from '../helpers';
import { randnInput } from '../model_inputs';
import { LINEAR_TOL, linearRef } from '../reference/dense';

const TOL = LINEAR_TOL;

// [M, N, K], M in (8, 64]: out_proj-like (K cut to keep the reference quick), N odd, K odd, one
// output column, K not a multiple of 32 with N <= 256 (not the narrow kernel); M = 100 is past
// cuBLASLt's range (cublasGemmEx)
const SHAPES: Array<[number, number, number]> = [
  [64, 2560, 640],
  [17, 1001, 520],
  [33, 130, 73],
  [9, 1, 8],
  [64, 300, 136],
  [50, 64, 4104],
  [100, 64, 264],
];

const bits = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** Fresh bf16 decode operands on the GPU: x (M, K), w (N, K) scaled by 1/sqrt(K). */
const bf16Operands = (M: number, N: number, K: number) => {
  const r = rng();
  return { x: randnInput([M, K], 'bfloat16', 'cuda', 1, r), w: randnInput([N, K], 'bfloat16', 'cuda', 1 / Math.sqrt(K), r) };
};

describeGpu('cuBLASLt GEMM (batched decode) on CUDA', () => {
  beforeAll(() => debugPoison(true));
  afterEach(() => {
    delete process.env.STATESPACE_CUBLASLT;
  });
  const cublas = () => linearBackend('cuda').startsWith('cublas');

  it('linearBackend names the decode-batch path', (ctx) => {
    if (!cublas()) ctx.skip();
    expect(linearBackend('cuda')).toMatch(/decode batches: (cublasLt \(|libcublasLt not found)/);
    process.env.STATESPACE_CUBLASLT = '0';
    expect(linearBackend('cuda')).toMatch(/decode batches: off/);
  });

  for (const mode of ['1', '0']) {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
      it(`STATESPACE_CUBLASLT=${mode} ${dtype}: odd sizes against the float64 reference, with and without bias`, async (ctx) => {
        if (!cublas()) ctx.skip();
        process.env.STATESPACE_CUBLASLT = mode;
        for (const [M, N, K] of SHAPES) {
          const r = rng();
          const x = randnInput([M, K], dtype, 'cuda', 1, r);
          const w = randnInput([N, K], dtype, 'cuda', 1 / Math.sqrt(K), r);
          const b = randnInput([N], 'float32', 'cuda', 1, r);
          for (const bias of [undefined, b]) {
            const y = await linear({ x: x.t, weight: w.t, bias: bias?.t }).data();
            expectNoNaN(y, 'cublasLt');
            expectClose(y, linearRef(x.v, w.v, M, N, K, bias?.v), TOL[dtype], `${dtype} ${M}x${N}x${K}${bias ? ' +bias' : ''}`);
          }
        }
      });
    }
  }

  it('bf16 and f32: strided, transposed and misaligned operands read in place', async (ctx) => {
    if (!cublas()) ctx.skip();
    for (const dtype of ['bfloat16', 'float32'] as DType[]) {
      const M = 37, N = 300, K = 136;
      const r = rng();
      // x: columns [xo, xo + K) of a (M, K + 24) matrix, or the transpose of a (K, M) one
      // w: columns [wo, wo + K) of an (N, K + 40) matrix, or the transpose of a (K, N) one
      for (const [xo, wo, xt, wt] of [
        [8, 16, false, false],
        [1, 0, false, false], // x rows misaligned (2- or 4-byte aligned)
        [0, 3, false, false],
        [0, 0, true, false],
        [0, 0, false, true],
        [0, 0, true, true],
      ] as Array<[number, number, boolean, boolean]>) {
        const xw = randnInput(xt ? [K, M] : [M, K + 24], dtype, 'cuda', 1, r);
        const ww = randnInput(wt ? [K, N] : [N, K + 40], dtype, 'cuda', 1 / Math.sqrt(K), r);
        const x = xt ? xw.t.transpose(0, 1) : xw.t.slice(1, xo, xo + K);
        const w = wt ? ww.t.transpose(0, 1) : ww.t.slice(1, wo, wo + K);
        const xv = new Float64Array(M * K), wv = new Float64Array(N * K);
        for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) xv[m * K + k] = xt ? xw.v[k * M + m] : xw.v[m * (K + 24) + xo + k];
        for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wv[n * K + k] = wt ? ww.v[k * N + n] : ww.v[n * (K + 40) + wo + k];
        const y = await linear({ x, weight: w }).data();
        expectNoNaN(y, 'strided');
        expectClose(y, linearRef(xv, wv, M, N, K), TOL[dtype], `${dtype} x ${xt ? 'transposed' : `offset ${xo}`}, w ${wt ? 'transposed' : `offset ${wo}`}`);
      }
    }
  });

  it('the chosen algorithm is kept: bit-identical results after the tuning call, and against the cublasGemmEx fallback within rounding', async (ctx) => {
    if (!cublas()) ctx.skip();
    // shapes no other test uses, so the first call here is the tuning one
    for (const M of [61, 63]) {
      const N = 2560, K = 1024;
      const { x, w } = bf16Operands(M, N, K);
      const first = await linear({ x: x.t, weight: w.t }).data();
      const second = await linear({ x: x.t, weight: w.t }).data();
      const third = await linear({ x: x.t, weight: w.t }).data();
      expect(bits(first).equals(bits(second))).toBe(true);
      expect(bits(first).equals(bits(third))).toBe(true);
      expectClose(first, linearRef(x.v, w.v, M, N, K), TOL.bfloat16, `${M}x${N}x${K}`);
      process.env.STATESPACE_CUBLASLT = '0';
      const gemmEx = await linear({ x: x.t, weight: w.t }).data();
      delete process.env.STATESPACE_CUBLASLT;
      expect(relErr(first, gemmEx)).toBeLessThan(1e-2);
    }
  });

  it('a first call inside a CUDA graph capture takes an algorithm without timing and keeps it', async (ctx) => {
    if (!cublas()) ctx.skip();
    for (const M of [51, 53]) {
      const N = 1536, K = 768;
      const { x, w } = bf16Operands(M, N, K);
      const out = zeros([M, N], { dtype: 'bfloat16', device: 'cuda' });
      const g = captureGraph('cuda', () => copyInto(out, linear({ x: x.t, weight: w.t })));
      try {
        g.replay();
        const graphed = await out.data();
        expectNoNaN(graphed, 'captured');
        expectClose(graphed, linearRef(x.v, w.v, M, N, K), TOL.bfloat16, `captured ${M}x${N}x${K}`);
        g.replay();
        expect(bits(graphed).equals(bits(await out.data()))).toBe(true);
        // eager calls afterwards run the algorithm the capture chose (no timing, same bits)
        const eager = await linear({ x: x.t, weight: w.t }).data();
        expect(bits(graphed).equals(bits(eager))).toBe(true);
      } finally {
        g.dispose();
        out.dispose();
      }
    }
  });

  it("Mamba-1's forked in_proj products (linearConvUpdateProj) take the heuristic's first, untimed; linearConvUpdate's are timed", (ctx) => {
    if (!cublas()) ctx.skip();
    // In a process of its own with the tuning log on (the choice is made once per process and
    // shape): the fork's two 24 x 320 x 192 products log no timing, linearConvUpdate's 24 x 352 x
    // 192 ones (another shape, so no cached choice; forked as well, without an x_proj) do.
    const root = path.resolve(__dirname, '../..');
    fs.mkdirSync(path.join(root, '.test-tmp'), { recursive: true });
    const file = path.join(root, '.test-tmp', `untimed-${process.pid}.js`);
    fs.writeFileSync(
      file,
      `const { linearConvUpdate, linearConvUpdateProj, randn } = require('statespace');
(async () => {
  for (const [C, xp] of [[320, true], [352, false]]) {
    const o = { dtype: 'bfloat16', device: 'cuda' };
    const args = { x: randn([24, 192], o), weight: randn([2 * C, 192], { ...o, std: 0.07 }), convState: randn([24, C, 3], o),
                   convWeight: randn([C, 4], o), convStart: 0, activation: 'silu' };
    const out = xp ? linearConvUpdateProj({ ...args, xProj: randn([24, C], { ...o, std: 0.05 }) })[0] : linearConvUpdate(args);
    const v = await out.data();
    if (v.some((e) => !Number.isFinite(e))) throw new Error('non-finite output');
  }
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    const res = spawnSync(process.execPath, [file], { cwd: root, encoding: 'utf8', env: { ...process.env, STATESPACE_CUBLASLT_LOG: '1' } });
    fs.rmSync(file);
    expect(res.status, res.stderr).toBe(0);
    expect(res.stderr).not.toMatch(/cublasLt 24x320x192 /);
    expect(res.stderr).toMatch(/cublasLt 24x352x192 /);
  });
});
