import { afterEach, beforeAll, expect, it } from 'vitest';
import { DType, Tensor, causalConv1d, selectiveStateUpdate, zeros, add, debugPoison, embedding, gatedRmsNorm, linear, linearBackend, mul, rmsNorm, silu, softplus, tensor } from '../../lib/index';
import { describeGpu, expectClose, expectCode, expectNoNaN, rng } from '../helpers';
import { Input, randnInput } from '../model_inputs';
import { checkLinearArgmax, checkLinearExtras, checkNormedLinearConv, checkRestOnSide } from '../linear_extras';
import { LINEAR_TOL, linearRef, rmsNormRef, siluRef, softplusRef } from '../reference/dense';

const TOL = LINEAR_TOL;
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [37, 129, 65],
  [2, 768, 1536],
  [64, 200, 33],
  [130, 70, 512],
  [3, 50, 77], // matrix-vector path, K not a multiple of the vector width
  [8, 1000, 4096], // matrix-vector path, vectorised, K split over 8 warps per column
  [1, 2560, 5120], // matrix-vector path, K split over 2 warps per column
  [4, 3, 1001], // matrix-vector path, unaligned K
  [1, 192, 5120], // matrix-vector path: one column per warp, K split over the 4 warps of a block (x_proj)
  [1, 10240, 2560], // four columns per warp (in_proj)
  [1, 5120, 160], // K shorter than a warp's vector stride (dt_proj)
  [7, 2051, 2560], // several rows, a partly filled last block
  [2, 77, 4104], // two columns per warp, K split, tail vectors
  [1, 768, 1536], // K split in 2, one partial batch per lane (mamba-130m out_proj)
  [1, 80, 1544], // K split in 2 with a short last slice (partial batch, vectors past the end)
];

/** Runs the GEMM checks with cuBLAS on (when the host has it) or forced off. */
async function checkGemm(dtype: DType) {
  for (const [M, N, K] of SHAPES) {
    const r = rng();
    const x = randnInput([M, K], dtype, 'cuda', 1, r);
    const w = randnInput([N, K], dtype, 'cuda', 1 / Math.sqrt(K), r);
    const b = randnInput([N], 'float32', 'cuda', 1, r);
    for (const bias of [undefined, b]) {
      const y = await linear({ x: x.t, weight: w.t, bias: bias?.t }).data();
      expectNoNaN(y, 'linear');
      expectClose(y, linearRef(x.v, w.v, M, N, K, bias?.v), TOL[dtype], `${dtype} ${M}x${N}x${K}${bias ? '+bias' : ''}`);
    }
  }
  // A model-sized GEMM against the CPU GEMM on the same (rounded) inputs, in f32.
  const x = randnInput([256, 2560], dtype, 'cuda');
  const w = randnInput([5120, 2560], dtype, 'cuda', 0.02);
  const y = await linear({ x: x.t, weight: w.t }).data();
  const yc = await linear({ x: x.t.to('cpu').astype('float32'), weight: w.t.to('cpu').astype('float32') }).data();
  expectClose(y, yc, TOL[dtype], `${dtype} 256x5120x2560`);
}

describeGpu('dense ops on CUDA', () => {
  beforeAll(() => debugPoison(true));
  afterEach(() => {
    delete process.env.STATESPACE_CUBLAS;
  });

  const cublas = () => linearBackend('cuda').startsWith('cublas');
  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    it(`linear ${dtype}: builtin kernel (STATESPACE_CUBLAS=0)`, async () => {
      process.env.STATESPACE_CUBLAS = '0';
      expect(linearBackend('cuda')).toMatch(/^builtin/);
      await checkGemm(dtype);
    });
    it(`linear ${dtype}: cuBLAS`, async (ctx) => {
      if (!cublas()) {
        console.log(`[test/gpu] cuBLAS path skipped: ${linearBackend('cuda')}`);
        ctx.skip();
      }
      await checkGemm(dtype);
    });
  }

  // argmaxOut: for one row the gemv's blocks meet through a device-wide atomic maximum (LM head
  // shapes, scalar path); a K-split launch runs the argmax kernel after it
  it('linear argmaxOut equals argmax() of the result (in the kernel for one row)', async () => {
    await checkLinearArgmax('cuda', 'bfloat16', [[50280, 768], [4500, 2048], [12000, 1024], [77, 1001], [192, 5120], [3, 64]], false);
    await checkLinearArgmax('cuda', 'bfloat16', [[50280, 768], [300, 2560]], true);
    await checkLinearArgmax('cuda', 'float32', [[1000, 256]], true);
  });

  // Small matrices' launches are shaped for latency by default (columns per warp, K split);
  // STATESPACE_GEMV_SMALL=0 gives the general shapes: the same checks, and the folded norms, there
  it('linear with STATESPACE_GEMV_SMALL=0 (small matrices shaped as the large ones)', async () => {
    process.env.STATESPACE_GEMV_SMALL = '0';
    try {
      await checkGemm('bfloat16');
      await checkGemm('float32');
      await checkLinearExtras('cuda', [
        { M: 1, N: 3072, K: 768, dtype: 'bfloat16', residual: true },
        { M: 1, N: 80, K: 1536, dtype: 'bfloat16', xInWeightDtype: true },
        { M: 1, N: 768, K: 1536, dtype: 'bfloat16', xInWeightDtype: true, residual: true, bias: true },
      ], 1.5e-2);
    } finally {
      delete process.env.STATESPACE_GEMV_SMALL;
    }
  });

  it('linear: odd K (scalar staging) and a misaligned x view in bf16, builtin kernel', async () => {
    process.env.STATESPACE_CUBLAS = '0';
    const M = 9, N = 77, K = 24;
    const flat = randnInput([M * K + 1], 'bfloat16', 'cuda');
    const x = flat.t.slice(0, 1).reshape([M, K]);
    const w = randnInput([N, K], 'bfloat16', 'cuda');
    const y = await linear({ x, weight: w.t }).data();
    expectClose(y, linearRef(flat.v.subarray(1), w.v, M, N, K), TOL.bfloat16, 'misaligned');
  });

  // The decode step's folded norms: one row without a gate goes through the matrix-vector
  // kernel's on-the-fly norm (an f32 row, or a row in the weight's dtype) and residual epilogue;
  // a gated row of a 16-bit weight over 8 MB through the weight-streaming kernel's (2560 x 5120);
  // other gated rows and several rows through rmsNorm, linear and add in turn. Shapes: four columns per
  // warp (in_proj), one column per warp (130m in_proj, Mamba-2 out_proj), K split over warps
  // (x_proj shape), K not a multiple of the vector width (scalar path), f32 and f16 weights.
  it('linear normWeight / normGate / residual extras against rmsNorm → linear → add (fused for one row)', async () => {
    await checkLinearExtras('cuda', [
      { M: 1, N: 10240, K: 2560, dtype: 'bfloat16' },
      { M: 1, N: 3072, K: 768, dtype: 'bfloat16', bias: true },
      { M: 1, N: 192, K: 5120, dtype: 'bfloat16', residual: true },
      { M: 1, N: 2560, K: 5120, dtype: 'bfloat16', gate: true, residual: true },
      { M: 1, N: 2560, K: 5120, dtype: 'bfloat16', xInWeightDtype: true, residual: true },
      { M: 1, N: 77, K: 1001, dtype: 'bfloat16', xInWeightDtype: true },
      { M: 1, N: 192, K: 5120, dtype: 'bfloat16', xInWeightDtype: true, bias: true },
      { M: 1, N: 77, K: 1001, dtype: 'bfloat16', residual: true },
      { M: 1, N: 77, K: 1001, dtype: 'bfloat16', gate: true },
      { M: 1, N: 300, K: 512, dtype: 'float16', gate: true, residual: true },
      { M: 1, N: 2051, K: 2560, dtype: 'bfloat16', residual: true, bias: true },
      // over 8 MB, one row (long rows, f16 weights)
      { M: 1, N: 1100, K: 4104, dtype: 'bfloat16', bias: true },
      { M: 1, N: 4200, K: 1024, dtype: 'float16', residual: true },
      { M: 2, N: 300, K: 512, dtype: 'bfloat16', residual: true },
      { M: 5, N: 64, K: 96, dtype: 'bfloat16', gate: true },
    ], 1.5e-2);
    await checkLinearExtras('cuda', [
      { M: 1, N: 300, K: 512, dtype: 'float32', residual: true },
      { M: 1, N: 130, K: 4100, dtype: 'float32', gate: true },
      { M: 1, N: 33, K: 7, dtype: 'float32' },
    ], 1e-4);
    await checkNormedLinearConv('cuda', 'bfloat16', 1e-2);
    await checkNormedLinearConv('cuda', 'float32', 1e-5);
    await checkRestOnSide('cuda', 'float32', 1e-5, false);
  });

  // streamWeights: one row of a 16-bit matrix over 8 MB (rows >= 1024) through the weight-streaming
  // kernel (a block per SM, bulk copies into a shared-memory ring): whole rows per piece (K 1024,
  // 1536; gated: up to 12 KB, K 1032, 4104, 5120, each piece split over two warps), rows cut in
  // parts (K 4104: 3 parts; 5120; gated K 8200: 5), a partly filled last share (N not a multiple
  // of the SMs), each input form (f32 row normalised on the fly, row in W's dtype normalised, plain),
  // residual, bias, the conv epilogue and the argmax; then the same with STATESPACE_GEMV_STREAM=0
  // (the register kernel). Smaller or shorter-row matrices ignore the hint.
  for (const off of [false, true]) {
    it(`linear streamWeights (weight-streaming kernel${off ? ', STATESPACE_GEMV_STREAM=0' : ''}) against the reference`, async () => {
      if (off) process.env.STATESPACE_GEMV_STREAM = '0';
      try {
        await checkLinearExtras('cuda', [
          { M: 1, N: 2560, K: 5120, dtype: 'bfloat16', xInWeightDtype: true, residual: true, stream: true }, // mamba2 out_proj
          { M: 1, N: 2560, K: 5120, dtype: 'bfloat16', residual: true, stream: true },
          { M: 1, N: 2560, K: 5120, dtype: 'bfloat16', gate: true, residual: true, stream: true }, // mamba2 out_proj, gated
          { M: 1, N: 1100, K: 4104, dtype: 'float16', gate: true, bias: true, stream: true },
          { M: 1, N: 4201, K: 1032, dtype: 'bfloat16', gate: true, residual: true, stream: true }, // gated, 5 rows a piece
          { M: 1, N: 600, K: 8200, dtype: 'bfloat16', gate: true, stream: true }, // gated, rows in 5 parts
          { M: 1, N: 1100, K: 4104, dtype: 'bfloat16', bias: true, stream: true },
          { M: 1, N: 4201, K: 1024, dtype: 'float16', residual: true, stream: true },
          { M: 1, N: 3001, K: 1536, dtype: 'bfloat16', xInWeightDtype: true, stream: true },
          { M: 1, N: 300, K: 512, dtype: 'bfloat16', residual: true, stream: true }, // small: the register kernel
          { M: 2, N: 2560, K: 5120, dtype: 'bfloat16', residual: true, stream: true }, // two rows: the register kernel
          { M: 1, N: 330, K: 4100, dtype: 'float32', stream: true }, // f32: the register kernel
        ], 1.5e-2);
        await checkNormedLinearConv('cuda', 'bfloat16', 1e-2, true);
        await checkRestOnSide('cuda', 'bfloat16', 1e-2);
        await checkLinearArgmax('cuda', 'bfloat16', [[12000, 1024], [4500, 2048]], false, true);
        await checkLinearArgmax('cuda', 'bfloat16', [[4500, 2048]], true, true);
      } finally {
        delete process.env.STATESPACE_GEMV_STREAM;
      }
    });
  }

  // The models pass transposed views and column slices (prefill runs its projections
  // channel-major): cuBLAS reads them in place, other paths copy them first; all must agree.
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    it(`linear ${dtype}: transposed and column-sliced views of x and weight (cuBLAS in place, builtin copies)`, async () => {
      const r = rng();
      const transposed = (v: Float64Array, rows: number, cols: number) => {
        const o = new Float64Array(v.length);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) o[j * rows + i] = v[i * cols + j];
        return o;
      };
      for (const [M, N, K] of [[37, 129, 65], [300, 70, 24], [3, 50, 77]] as Array<[number, number, number]>) {
        // x: (1, M, K) as the transpose of a stored (1, K, M); w: columns [3, 3+K) of a stored (N, K+5);
        // wT: the transpose of a stored (K, N).
        const xs = randnInput([1, K, M], dtype, 'cuda', 1, r);
        const x = xs.t.transpose(1, 2);
        const xv = transposed(xs.v, K, M);
        const ws = randnInput([N, K + 5], dtype, 'cuda', 1 / Math.sqrt(K), r);
        const w = ws.t.slice(1, 3, 3 + K);
        const wv = Float64Array.from({ length: N * K }, (_, i) => ws.v[Math.floor(i / K) * (K + 5) + 3 + (i % K)]);
        const wts = randnInput([K, N], dtype, 'cuda', 1 / Math.sqrt(K), r);
        const wt = wts.t.transpose(0, 1);
        const wtv = transposed(wts.v, K, N);
        const b = randnInput([N], 'float32', 'cuda', 1, r);
        for (const backend of ['default', 'builtin']) {
          if (backend === 'builtin') process.env.STATESPACE_CUBLAS = '0';
          const tag = `${dtype} ${M}x${N}x${K} ${backend}`;
          const y1 = await linear({ x, weight: w, bias: b.t }).data();
          expectNoNaN(y1, 'linear');
          expectClose(y1, linearRef(xv, wv, M, N, K, b.v), TOL[dtype], `${tag}: xᵀ view, column-sliced w`);
          const y2 = await linear({ x: x.squeeze(0), weight: wt }).data();
          expectClose(y2, linearRef(xv, wtv, M, N, K), TOL[dtype], `${tag}: xᵀ view, wᵀ view`);
          const xr = randnInput([M, K], dtype, 'cuda', 1, r);
          const y3 = await linear({ x: xr.t, weight: wt }).data();
          expectClose(y3, linearRef(xr.v, wtv, M, N, K), TOL[dtype], `${tag}: contiguous x, wᵀ view`);
          delete process.env.STATESPACE_CUBLAS;
        }
      }
    });
  }

  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: embedding, rmsNorm (+ residual), gatedRmsNorm (groups), elementwise vs reference`, async () => {
      const r = rng();
      const vocab = 50, d = 160;
      const w = randnInput([vocab, d], dtype, 'cuda', 1, r);
      const ids = Int32Array.from({ length: 3 * 7 }, () => Math.floor(r() * vocab));
      const e = await embedding({ ids: tensor(ids, [3, 7], { device: 'cuda' }), weight: w.t }).data();
      const eref = new Float64Array(ids.length * d);
      ids.forEach((id, i) => eref.set(w.v.subarray(id * d, (id + 1) * d), i * d));
      expect(Array.from(e)).toEqual(Array.from(eref));

      const rows = 9, D = 1000;
      const x = randnInput([rows, D], dtype, 'cuda', 1, r);
      const nw = randnInput([D], 'float32', 'cuda', 1, r);
      const res = randnInput([rows, D], 'float32', 'cuda', 1, r);
      const z = randnInput([rows, D], dtype, 'cuda', 1, r);
      const plain = rmsNorm({ x: x.t, weight: nw.t, eps: 1e-5 });
      expectClose(await plain.y.data(), rmsNormRef(x.v, nw.v, D, 1e-5).y, TOL[dtype], 'rmsNorm');
      const fused = rmsNorm({ x: x.t, weight: nw.t, eps: 1e-5, residual: res.t });
      const fref = rmsNormRef(x.v, nw.v, D, 1e-5, { residual: res.v });
      expectClose(await fused.y.data(), fref.y, TOL[dtype], 'rmsNorm + residual');
      expectClose(await fused.residualOut!.data(), fref.residualOut, 1e-6, 'residualOut');
      for (const groupSize of [1000, 250, 8]) {
        const g = await gatedRmsNorm({ x: x.t, z: z.t, weight: nw.t, eps: 1e-5, groupSize }).data();
        expectNoNaN(g, 'gatedRmsNorm');
        expectClose(g, rmsNormRef(x.v, nw.v, D, 1e-5, { z: z.v, group: groupSize }).y, TOL[dtype], `gated ${groupSize}`);
      }
      // Long rows (several vectors per thread, odd thread counts) and a residual in the data dtype.
      for (const D2 of [20000, 5120, 40]) {
        const x2 = randnInput([2, D2], dtype, 'cuda', 1, r);
        const w2 = randnInput([D2], dtype, 'cuda', 1, r);
        const r2 = randnInput([2, D2], dtype, 'cuda', 1, r);
        const z2 = randnInput([2, D2], dtype, 'cuda', 1, r);
        const f2 = rmsNorm({ x: x2.t, weight: w2.t, eps: 1e-5, residual: r2.t });
        const f2ref = rmsNormRef(x2.v, w2.v, D2, 1e-5, { residual: r2.v });
        expectClose(await f2.y.data(), f2ref.y, TOL[dtype], `rmsNorm + residual, d ${D2}`);
        expectClose(await f2.residualOut!.data(), f2ref.residualOut, TOL[dtype], `residualOut, d ${D2}`);
        const g2 = await gatedRmsNorm({ x: x2.t, z: z2.t, weight: w2.t, eps: 1e-5 }).data();
        expectClose(g2, rmsNormRef(x2.v, w2.v, D2, 1e-5, { z: z2.v, group: D2 }).y, TOL[dtype], `gated, d ${D2}`);
      }
      const a = randnInput([3, 4097], dtype, 'cuda', 4, r), b = randnInput([3, 4097], dtype, 'cuda', 1, r);
      const ref = (f: (i: number) => number) => Float64Array.from({ length: a.v.length }, (_, i) => f(i));
      expectClose(await silu(a.t).data(), ref((i) => siluRef(a.v[i])), TOL[dtype], 'silu');
      expectClose(await softplus(a.t).data(), ref((i) => softplusRef(a.v[i])), TOL[dtype], 'softplus');
      expectClose(await add(a.t, b.t).data(), ref((i) => a.v[i] + b.v[i]), TOL[dtype], 'add');
      expectClose(await mul(a.t, b.t).data(), ref((i) => a.v[i] * b.v[i]), TOL[dtype], 'mul');
    });
  }

  // The models hand the norms column slices of a fused projection (rows with a stride), read in
  // place on CUDA; the vectorised kernel takes 8-aligned groups, the general one the rest.
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    it(`${dtype}: rmsNorm / gatedRmsNorm on row-strided views, vectorised and general kernels`, async () => {
      const r = rng();
      const rows = 37;
      for (const [D, start, width] of [[5120, 0, 5400], [2560, 8, 2600], [1000, 1, 1003]] as Array<[number, number, number]>) {
        const slice = (wide: Input): [Tensor, Float64Array] => [
          wide.t.slice(1, start, start + D),
          Float64Array.from({ length: rows * D }, (_, i) => wide.v[Math.floor(i / D) * width + start + (i % D)]),
        ];
        const [x, xv] = slice(randnInput([rows, width], dtype, 'cuda', 1, r));
        const [z, zv] = slice(randnInput([rows, width], dtype, 'cuda', 1, r));
        const nw = randnInput([D], dtype, 'cuda', 1, r);
        const tag = `${dtype} D=${D} columns [${start}, ${start + D}) of ${width}`;
        for (const groupSize of [D, D / 8]) {
          const g = await gatedRmsNorm({ x, z, weight: nw.t, eps: 1e-5, groupSize }).data();
          expectNoNaN(g, 'gatedRmsNorm');
          expectClose(g, rmsNormRef(xv, nw.v, D, 1e-5, { z: zv, group: groupSize }).y, TOL[dtype], `${tag} gated, group ${groupSize}`);
        }
        for (const resDtype of ['float32', dtype] as DType[]) {
          const res = randnInput([rows, D], resDtype, 'cuda', 1, r);
          const f = rmsNorm({ x, weight: nw.t, eps: 1e-5, residual: res.t });
          const fref = rmsNormRef(xv, nw.v, D, 1e-5, { residual: res.v });
          expectClose(await f.y.data(), fref.y, TOL[dtype], `${tag} + ${resDtype} residual`);
          expectClose(await f.residualOut!.data(), fref.residualOut, resDtype === 'float32' ? 1e-6 : TOL[dtype], `${tag} residualOut`);
        }
      }
    });
  }

  // Many rows (prefill) launch narrower blocks, several vectors per thread.
  it('bfloat16: gatedRmsNorm and rmsNorm over 1030 rows (prefill launch shape) vs reference', async () => {
    const r = rng();
    const rows = 1030;
    for (const D of [5120, 2560, 12288]) {
      const wide = randnInput([rows, D + 64], 'bfloat16', 'cuda', 1, r);
      const z = wide.t.slice(1, 64, 64 + D);
      const zv = Float64Array.from({ length: rows * D }, (_, i) => wide.v[Math.floor(i / D) * (D + 64) + 64 + (i % D)]);
      const x = randnInput([rows, D], 'bfloat16', 'cuda', 1, r);
      const nw = randnInput([D], 'bfloat16', 'cuda', 1, r);
      const g = await gatedRmsNorm({ x: x.t, z, weight: nw.t, eps: 1e-5, groupSize: D }).data();
      expectNoNaN(g, 'gatedRmsNorm');
      expectClose(g, rmsNormRef(x.v, nw.v, D, 1e-5, { z: zv, group: D }).y, TOL.bfloat16, `gated ${rows}x${D}`);
      const res = randnInput([rows, D], 'float32', 'cuda', 1, r);
      const f = rmsNorm({ x: x.t, weight: nw.t, eps: 1e-5, residual: res.t });
      const fref = rmsNormRef(x.v, nw.v, D, 1e-5, { residual: res.v });
      expectClose(await f.y.data(), fref.y, TOL.bfloat16, `rmsNorm + residual ${rows}x${D}`);
      expectClose(await f.residualOut!.data(), fref.residualOut, 1e-6, `residualOut ${rows}x${D}`);
    }
  });

  it('embedding: an id outside the vocabulary gives a NaN row on CUDA', async () => {
    const out = await embedding({ ids: tensor(new Int32Array([0, 99]), [1, 2], { device: 'cuda' }), weight: randnInput([4, 3], 'float32', 'cuda').t }).data();
    expect(Number.isNaN(out[3]) && Number.isNaN(out[5])).toBe(true);
    expect(Number.isFinite(out[0])).toBe(true);
  });

  it('mixed devices are ERR_DEVICE and name the argument', () => {
    const g = (shape: number[]) => zeros(shape, { device: 'cuda' });
    expectCode(() => linear({ x: g([2, 3]), weight: zeros([4, 3]) }), 'ERR_DEVICE', 'weight');
    expectCode(() => rmsNorm({ x: g([2, 3]), weight: zeros([3]) }), 'ERR_DEVICE', 'weight');
    expectCode(() => causalConv1d({ x: g([1, 3, 5]), weight: zeros([3, 4]) }), 'ERR_DEVICE', 'weight');
    expectCode(
      () => selectiveStateUpdate({ state: g([1, 2, 4, 8]), x: g([1, 2, 4]), dt: g([1, 2]), A: zeros([2]), B: g([1, 1, 8]), C: g([1, 1, 8]) }),
      'ERR_DEVICE',
      'A',
    );
  });
});
