import { beforeAll, describe, expect, it } from 'vitest';
import { DType, add, embedding, gatedRmsNorm, linear, linearConvUpdate, mul, rmsNorm, silu, softplus, tensor, zeros } from '../lib/index';
import { checkLinearArgmax, checkLinearExtras, checkNormedLinearConv, checkRestOnSide } from './linear_extras';
import { debugPoison } from '../lib/index';
import { expectClose, expectCode, rng } from './helpers';
import { randnInput } from './model_inputs';
import { linearRef, rmsNormRef, siluRef, softplusRef } from './reference/dense';

const TOL: Record<string, number> = { float64: 1e-10, float32: 1e-5, float16: 5e-3, bfloat16: 2e-2 };

// New memory starts as NaN: an output element a kernel forgets to write shows up.
beforeAll(() => debugPoison(true));

describe('linear (CPU GEMM) vs float64 reference', () => {
  // [M, N, K]: odd shapes over the four paths — small M (matrix-vector, M <= 32), batched decode
  // (32 < M <= 256: w read in place, partial token panels and row blocks), the same with x and w
  // swapped (M > 256, 32 < N <= 256) and the packed path (the rest: block edges in K).
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1],
    [37, 129, 65],
    [2, 768, 1536],
    [9, 17, 300],
    [8, 33, 7],
    [27, 40, 515],
    [100, 48, 257],
    [33, 1, 5],
    [256, 13, 9],
    [300, 70, 260],
    [270, 300, 40],
    [290, 300, 600],
    [260, 20, 33],
    [5, 3, 0],
    [40, 3, 0],
  ];
  for (const dtype of ['float32', 'float64'] as DType[]) {
    it(`${dtype}: odd shapes, with and without bias`, async () => {
      for (const [M, N, K] of shapes) {
        const r = rng();
        const x = randnInput([M, K], dtype, 'cpu', 1, r);
        const w = randnInput([N, K], dtype, 'cpu', 1 / Math.sqrt(K + 1), r);
        const b = randnInput([N], 'float32', 'cpu', 1, r);
        for (const bias of [undefined, b]) {
          const y = linear({ x: x.t, weight: w.t, bias: bias?.t });
          expect(y.shape).toEqual([M, N]);
          const ref = linearRef(x.v, w.v, M, N, K, bias?.v);
          expectClose(await y.data(), ref, TOL[dtype], `${M}x${N}x${K}${bias ? ' +bias' : ''}`);
        }
      }
    });
  }

  it('bfloat16 and float16 inputs accumulate in float32; leading dimensions are flattened', async () => {
    for (const dtype of ['bfloat16', 'float16'] as DType[]) {
      for (const [M, N, K] of [[3, 50, 77], [64, 40, 130]]) {
        const x = randnInput([1, M, K], dtype);
        const w = randnInput([N, K], dtype, 'cpu', 0.1);
        const y = linear({ x: x.t, weight: w.t });
        expect(y.shape).toEqual([1, M, N]);
        expect(y.dtype).toBe(dtype);
        expectClose(await y.data(), linearRef(x.v, w.v, M, N, K), TOL[dtype], `${dtype} ${M}x${N}x${K}`);
      }
    }
  });

  it('non-contiguous x is accepted', async () => {
    const x = randnInput([7, 11], 'float32');
    const w = randnInput([5, 7], 'float32');
    const y = linear({ x: x.t.transpose(0, 1), weight: w.t });
    const xt = Float64Array.from(await x.t.transpose(0, 1).contiguous().data());
    expectClose(await y.data(), linearRef(xt, w.v, 11, 5, 7), 1e-6);
  });

  it('strided views (transposes, column slices) in every path, read in place where the batched paths take them', async () => {
    // [M, N, K, x transposed, x column slice, w transposed, w column slice, dtype]
    const cases: Array<[number, number, number, boolean, boolean, boolean, boolean, DType]> = [
      [80, 300, 96, false, false, true, false, 'float32'], // prefill x_proj: the weight a transposed activation
      [40, 70, 64, true, false, false, true, 'float32'],
      [33, 7, 50, false, true, true, false, 'bfloat16'],
      [300, 70, 40, true, false, false, false, 'float32'], // the swapped path: x read in place, w packed
      [300, 70, 40, false, true, true, false, 'float64'],
      [12, 30, 20, true, false, true, false, 'float32'], // small M: copied first
      [300, 300, 20, false, true, false, true, 'float32'], // the packed path: copied first
    ];
    const view = async (rows: number, cols: number, transposed: boolean, slice: boolean, dtype: DType, std: number) => {
      // a (rows, cols) view stored transposed or as a column slice of a wider matrix, and its values
      const wide = slice ? cols + 5 : cols;
      const base = transposed ? randnInput([wide, rows], dtype, 'cpu', std) : randnInput([rows, wide], dtype, 'cpu', std);
      let t = transposed ? base.t.transpose(0, 1) : base.t;
      if (slice) t = t.slice(1, 2, 2 + cols);
      return { t, v: Float64Array.from(await t.contiguous().data()) };
    };
    for (const [M, N, K, xt, xs, wt, ws, dtype] of cases) {
      const x = await view(M, K, xt, xs, dtype, 1);
      const w = await view(N, K, wt, ws, dtype, 1 / Math.sqrt(K));
      const y = linear({ x: x.t, weight: w.t });
      expect(y.shape).toEqual([M, N]);
      expectClose(await y.data(), linearRef(x.v, w.v, M, N, K), dtype === 'bfloat16' ? 1.5e-2 : 1e-5, `${M}x${N}x${K} ${dtype}`);
    }
  });

  it('errors are coded', () => {
    expectCode(() => linear({ x: zeros([2, 3]), weight: zeros([4, 5]) }), 'ERR_SHAPE', 'weight', 'in = 3');
    expectCode(() => linear({ x: zeros([2, 3]), weight: zeros([4, 3], { dtype: 'bfloat16' }) }), 'ERR_DTYPE', 'weight');
    expectCode(() => linear({ x: zeros([2, 3]), weight: zeros([4, 3]), bias: zeros([3]) }), 'ERR_SHAPE', 'bias');
    expectCode(() => linear({ x: zeros([2, 3], { dtype: 'int32' }), weight: zeros([4, 3]) }), 'ERR_DTYPE', 'x');
  });

  it('normWeight / normGate / residual extras equal rmsNorm, linear and the add in turn', async () => {
    await checkLinearExtras('cpu', [
      { M: 3, N: 20, K: 37, dtype: 'float32' },
      { M: 1, N: 9, K: 64, dtype: 'float32', gate: true, residual: true, bias: true },
      { M: 2, N: 33, K: 16, dtype: 'float32', residual: true },
      { M: 1, N: 12, K: 40, dtype: 'float32', xInWeightDtype: true, bias: true },
    ], 1e-5);
    // bfloat16 weights with a float32 row: the normalised row is rounded to bfloat16 first
    await checkLinearExtras('cpu', [{ M: 1, N: 30, K: 48, dtype: 'bfloat16', residual: true }], 1.5e-2);
    await checkNormedLinearConv('cpu', 'float32', 1e-5);
    await checkRestOnSide('cpu', 'float32', 1e-6, false); // ignored on the CPU: the same product
    const ok = { x: zeros([1, 8]), weight: zeros([4, 8]) };
    expectCode(() => linear({ ...ok, normGate: zeros([1, 8]) }), 'ERR_INVALID_ARG', 'normGate', 'normWeight');
    expectCode(() => linear({ ...ok, normWeight: zeros([7]) }), 'ERR_SHAPE', 'normWeight');
    expectCode(() => linear({ ...ok, normWeight: zeros([8]), normGate: zeros([1, 8], { dtype: 'bfloat16' }) }), 'ERR_DTYPE', 'normGate');
    expectCode(() => linear({ ...ok, residual: zeros([1, 8]) }), 'ERR_SHAPE', 'residual');
    expectCode(() => linear({ ...ok, normWeight: zeros([8]), normEps: -1 }), 'ERR_INVALID_ARG', 'normEps');
    expectCode(
      () => linearConvUpdate({ ...ok, residual: zeros([1, 4]), convState: zeros([1, 4, 3]), convWeight: zeros([4, 4]), convStart: 0 }),
      'ERR_INVALID_ARG',
      'residual',
    );
    // a non-boolean restOnSide is refused before anything runs: the conv state stays as it was
    const state = tensor(Float32Array.from({ length: 12 }, (_, i) => i + 1), [1, 4, 3]);
    expectCode(
      () => linearConvUpdate({ ...ok, convState: state, convWeight: zeros([4, 4]), convStart: 0, restOnSide: 'yes' as unknown as boolean }),
      'ERR_INVALID_ARG',
      'restOnSide',
    );
    expect(Array.from(await state.data())).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it('argmaxOut receives the argmax of the result rows', async () => {
    await checkLinearArgmax('cpu', 'float32', [[37, 20], [5, 3]], false);
    await checkLinearArgmax('cpu', 'float32', [[40, 16]], true);
    const ok = { x: zeros([2, 8]), weight: zeros([4, 8]) };
    expectCode(() => linear({ ...ok, argmaxOut: zeros([2]) }), 'ERR_DTYPE', 'argmaxOut');
    expectCode(() => linear({ ...ok, argmaxOut: zeros([3], { dtype: 'int32' }) }), 'ERR_SHAPE', 'argmaxOut');
    expectCode(() => linear({ ...ok, argmaxOut: zeros([2], { dtype: 'int32' }), residual: zeros([2, 4]) }), 'ERR_INVALID_ARG', 'argmaxOut');
  });
});

describe('embedding', () => {
  for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
    it(`${dtype}: gathers rows`, async () => {
      const vocab = 13, d = 7;
      const w = randnInput([vocab, d], dtype);
      const ids = Int32Array.from({ length: 2 * 5 }, () => Math.floor(Math.random() * vocab));
      const out = embedding({ ids: tensor(ids, [2, 5]), weight: w.t });
      expect(out.shape).toEqual([2, 5, d]);
      const ref = new Float64Array(10 * d);
      ids.forEach((id, i) => ref.set(w.v.subarray(id * d, (id + 1) * d), i * d));
      expect(Array.from(await out.data())).toEqual(Array.from(ref));
    });
  }
  it('an id outside the vocabulary is an error when read; a float id tensor is ERR_DTYPE', async () => {
    const out = embedding({ ids: tensor(new Int32Array([1, 13]), [1, 2]), weight: zeros([13, 4]) });
    await expect(out.data()).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
    expectCode(() => embedding({ ids: zeros([1, 2]), weight: zeros([13, 4]) }), 'ERR_DTYPE', 'ids');
  });
});

describe('rmsNorm and gatedRmsNorm vs float64 reference', () => {
  for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: plain, with fused residual add, gated and grouped`, async () => {
      const rows = 5, d = 96;
      const x = randnInput([rows, d], dtype);
      const w = randnInput([d], 'float32');
      const y = rmsNorm({ x: x.t, weight: w.t, eps: 1e-5 });
      expectClose(await y.y.data(), rmsNormRef(x.v, w.v, d, 1e-5).y, TOL[dtype], 'plain');
      expect(y.residualOut).toBeUndefined();

      const res = randnInput([rows, d], dtype === 'float64' ? 'float64' : 'float32');
      const yr = rmsNorm({ x: x.t, weight: w.t, eps: 1e-6, residual: res.t });
      const ref = rmsNormRef(x.v, w.v, d, 1e-6, { residual: res.v });
      expectClose(await yr.y.data(), ref.y, TOL[dtype], 'fused residual y');
      expect(yr.residualOut!.dtype).toBe(res.t.dtype);
      expectClose(await yr.residualOut!.data(), ref.residualOut, dtype === 'float64' ? 1e-15 : 1e-7, 'residualOut');

      const z = randnInput([rows, d], dtype);
      for (const groupSize of [d, 32, 8]) {
        const g = gatedRmsNorm({ x: x.t, z: z.t, weight: w.t, eps: 1e-5, groupSize });
        expectClose(await g.data(), rmsNormRef(x.v, w.v, d, 1e-5, { z: z.v, group: groupSize }).y, TOL[dtype], `gated group ${groupSize}`);
      }
      const ng = gatedRmsNorm({ x: x.t, weight: w.t, groupSize: 48 });
      expectClose(await ng.data(), rmsNormRef(x.v, w.v, d, 1e-5, { group: 48 }).y, TOL[dtype], 'grouped without gate');
    });
  }
  it('errors are coded', () => {
    expectCode(() => rmsNorm({ x: zeros([2, 8]), weight: zeros([7]) }), 'ERR_SHAPE', 'weight');
    expectCode(() => rmsNorm({ x: zeros([2, 8]), weight: zeros([8]), residual: zeros([2, 7]) }), 'ERR_SHAPE', 'residual');
    expectCode(() => gatedRmsNorm({ x: zeros([2, 8]), weight: zeros([8]), groupSize: 3 }), 'ERR_SHAPE', 'groupSize');
    expectCode(() => gatedRmsNorm({ x: zeros([2, 8]), z: zeros([2, 8], { dtype: 'bfloat16' }), weight: zeros([8]) }), 'ERR_DTYPE', 'z');
  });
});

describe('elementwise', () => {
  for (const dtype of ['float32', 'float64', 'bfloat16'] as DType[]) {
    it(`${dtype}: silu, softplus, add, mul`, async () => {
      const a = randnInput([3, 1001], dtype, 'cpu', 4);
      const b = randnInput([3, 1001], dtype);
      const ref = (f: (i: number) => number) => Float64Array.from({ length: a.v.length }, (_, i) => f(i));
      expectClose(await silu(a.t).data(), ref((i) => siluRef(a.v[i])), TOL[dtype], 'silu');
      expectClose(await softplus(a.t).data(), ref((i) => softplusRef(a.v[i])), TOL[dtype], 'softplus');
      expectClose(await add(a.t, b.t).data(), ref((i) => a.v[i] + b.v[i]), TOL[dtype], 'add');
      expectClose(await mul(a.t, b.t).data(), ref((i) => a.v[i] * b.v[i]), TOL[dtype], 'mul');
    });
  }
  it('softplus is finite for large inputs; errors are coded', async () => {
    const v = await softplus(tensor([-100, 0, 30, 1000], [4])).data();
    expect(v[3]).toBe(1000);
    expect(v[1]).toBeCloseTo(Math.LN2, 6);
    expectCode(() => add(zeros([2, 3]), zeros([3, 2])), 'ERR_SHAPE', 'b');
    expectCode(() => mul(zeros([2]), zeros([2], { dtype: 'float16' })), 'ERR_DTYPE', 'b');
  });
});
