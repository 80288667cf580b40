import { beforeAll, describe, expect, it } from 'vitest';
import { DType, causalConv1d, causalConv1dBackward, causalConv1dUpdate, tensor, zeros } from '../lib/index';
import { debugPoison } from '../lib/index';
import { expectClose, expectCode, expectNoNaN, randnArray, relErr, rng } from './helpers';
import { Input, fromValues, randnInput, seqIdxInput } from './model_inputs';
import { conv1dRef } from './reference/conv1d';
import { checkConvFinalStatesOut } from './state_out_checks';

const TOL: Record<string, number> = { float64: 1e-12, float32: 1e-5, float16: 5e-3, bfloat16: 2e-2 };

interface Case {
  batch: number;
  dim: number;
  seqlen: number;
  width: number;
  bias: boolean;
  silu: boolean;
  init: boolean;
  seq: boolean;
}

function makeInputs(c: Case, dtype: DType) {
  const r = rng();
  const x = randnInput([c.batch, c.dim, c.seqlen], dtype, 'cpu', 1, r);
  const weight = randnInput([c.dim, c.width], dtype === 'float64' ? 'float64' : 'float32', 'cpu', 0.5, r);
  const bias = c.bias ? randnInput([c.dim], 'float32', 'cpu', 1, r) : undefined;
  const init = c.init ? randnInput([c.batch, c.dim, c.width - 1], dtype, 'cpu', 1, r) : undefined;
  const seq = c.seq ? seqIdxInput(c.batch, c.seqlen, 3, 'cpu', r) : undefined;
  return { x, weight, bias, init, seq };
}

function refOf(c: Case, i: ReturnType<typeof makeInputs>) {
  return conv1dRef({
    ...c,
    x: i.x.v,
    weight: i.weight.v,
    bias: i.bias?.v,
    initialStates: i.init?.v,
    seqIdx: i.seq?.v,
  });
}

const cases: Case[] = [];
for (const width of [1, 2, 4, 5])
  for (const [seqlen, seq] of [[1, false], [3, true], [37, false], [37, true]] as const)
    cases.push({ batch: 2, dim: 3 + width, seqlen, width, bias: width % 2 === 0, silu: seqlen !== 3, init: width > 1 && seqlen !== 1, seq });

// New memory starts as NaN: an output element a kernel forgets to write shows up.
beforeAll(() => debugPoison(true));

describe('causalConv1d forward (CPU) vs float64 reference', () => {
  for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: widths 1,2,4,5, odd sizes, bias/silu/initial states/seqIdx`, async () => {
      for (const c of cases) {
        const i = makeInputs(c, dtype);
        const out = causalConv1d({
          x: i.x.t,
          weight: i.weight.t,
          bias: i.bias?.t,
          activation: c.silu ? 'silu' : null,
          initialStates: i.init?.t,
          seqIdx: i.seq?.t,
          returnFinalStates: true,
        });
        const ref = refOf(c, i);
        expect(out.y.shape).toEqual([c.batch, c.dim, c.seqlen]);
        expect(out.y.dtype).toBe(dtype);
        expectClose(await out.y.data(), ref.y, TOL[dtype], `y ${JSON.stringify(c)}`);
        expect(out.finalStates!.shape).toEqual([c.batch, c.dim, c.width - 1]);
        if (c.width > 1) expectClose(await out.finalStates!.data(), ref.finalStates, TOL[dtype], `final ${JSON.stringify(c)}`);
      }
    });
  }

  it('seqlen shorter than width-1: final states take the initial states, zero-padded without them', async () => {
    const c: Case = { batch: 2, dim: 3, seqlen: 2, width: 5, bias: false, silu: false, init: false, seq: false };
    for (const init of [false, true]) {
      const i = makeInputs({ ...c, init }, 'float32');
      const out = causalConv1d({ x: i.x.t, weight: i.weight.t, initialStates: i.init?.t, returnFinalStates: true });
      const fin = await out.finalStates!.data();
      expectClose(fin, refOf({ ...c, init }, i).finalStates, 1e-6);
      if (!init) expect(fin[0]).toBe(0);
    }
  });

  it('a packed seqIdx batch equals the sequences run apart', async () => {
    const r = rng();
    const dim = 5, W = 4, lens = [7, 1, 12];
    const parts = lens.map((L) => randnArray(dim * L, r));
    const weight = tensor(randnArray(dim * W, r), [dim, W]);
    const packed = new Float64Array(dim * 20);
    const ids = new Int32Array(20);
    let off = 0;
    lens.forEach((L, s) => {
      for (let d = 0; d < dim; d++) for (let t = 0; t < L; t++) packed[d * 20 + off + t] = parts[s][d * L + t];
      ids.fill(s + 10, off, off + L);
      off += L;
    });
    const y = await causalConv1d({ x: tensor(packed, [1, dim, 20]), weight, seqIdx: tensor(ids, [1, 20]), activation: 'silu' }).y.data();
    off = 0;
    for (let s = 0; s < lens.length; s++) {
      const L = lens[s];
      const ys = await causalConv1d({ x: tensor(parts[s], [1, dim, L]), weight, activation: 'silu' }).y.data();
      const got = new Float64Array(dim * L);
      for (let d = 0; d < dim; d++) for (let t = 0; t < L; t++) got[d * L + t] = y[d * 20 + off + t];
      expectClose(got, ys, 1e-6, `sequence ${s}`);
      off += L;
    }
  });
});

describe('causalConv1d state continuity and decode', () => {
  it('finalStatesOut: the final states written into a cache slot (also when it is the initial state)', () => {
    for (const seqlen of [2, 13]) {
      checkConvFinalStatesOut({ batch: 2, dim: 7, seqlen, width: 4 }, 'float32', 'cpu');
      checkConvFinalStatesOut({ batch: 1, dim: 5, seqlen, width: 4 }, 'bfloat16', 'cpu');
    }
  });

  it('conv(L1) then conv(L2, initialStates = finalStates) equals conv(L1 + L2)', async () => {
    for (const W of [2, 4, 5]) {
      for (const L1 of [1, 2, 9]) {
        const r = rng();
        const batch = 2, dim = 7, L2 = 11, L = L1 + L2;
        const xa = randnArray(batch * dim * L, r);
        const weight = tensor(randnArray(dim * W, r), [dim, W]);
        const bias = tensor(randnArray(dim, r), [dim]);
        const x = tensor(xa, [batch, dim, L]);
        const full = causalConv1d({ x, weight, bias, activation: 'silu', returnFinalStates: true });
        const a = causalConv1d({ x: x.slice(2, 0, L1), weight, bias, activation: 'silu', returnFinalStates: true });
        const b = causalConv1d({ x: x.slice(2, L1), weight, bias, activation: 'silu', initialStates: a.finalStates, returnFinalStates: true });
        const yf = await full.y.data(), ya = await a.y.data(), yb = await b.y.data();
        const joined = new Float32Array(yf.length);
        for (let r0 = 0; r0 < batch * dim; r0++) {
          joined.set(ya.subarray(r0 * L1, (r0 + 1) * L1), r0 * L);
          joined.set(yb.subarray(r0 * L2, (r0 + 1) * L2), r0 * L + L1);
        }
        expectClose(joined, yf, 1e-6, `W=${W} L1=${L1}`);
        expectClose(await b.finalStates!.data(), await full.finalStates!.data(), 1e-7);
      }
    }
  });

  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    it(`${dtype}: update steps equal the full convolution and end in its final state`, async () => {
      for (const W of [1, 2, 4, 5]) {
        const c: Case = { batch: 3, dim: 6, seqlen: 9, width: W, bias: true, silu: true, init: W > 1, seq: false };
        const i = makeInputs(c, dtype);
        const full = causalConv1d({ x: i.x.t, weight: i.weight.t, bias: i.bias!.t, activation: 'silu', initialStates: i.init?.t, returnFinalStates: true });
        const state = i.init ? i.init.t.clone() : zeros([c.batch, c.dim, 0], { dtype });
        const yfull = await full.y.data();
        for (let t = 0; t < c.seqlen; t++) {
          const xt = i.x.t.slice(2, t, t + 1).reshape([c.batch, c.dim]);
          const yt = await causalConv1dUpdate({ x: xt, convState: state, weight: i.weight.t, bias: i.bias!.t, activation: 'silu' }).data();
          const want = new Float64Array(c.batch * c.dim);
          for (let r0 = 0; r0 < c.batch * c.dim; r0++) want[r0] = yfull[r0 * c.seqlen + t];
          expectClose(yt, want, dtype === 'float32' ? 1e-6 : 1e-2, `W=${W} t=${t}`);
        }
        expect(Array.from(await state.data())).toEqual(Array.from(await full.finalStates!.data()));
      }
    });
  }
});

describe('causalConv1dBackward (CPU) vs finite differences of the reference', () => {
  const configs: Case[] = [
    { batch: 2, dim: 3, seqlen: 6, width: 4, bias: true, silu: true, init: true, seq: true },
    { batch: 1, dim: 2, seqlen: 5, width: 1, bias: true, silu: false, init: false, seq: false },
    { batch: 2, dim: 2, seqlen: 2, width: 5, bias: false, silu: true, init: true, seq: false },
  ];
  for (const c of configs) {
    it(`width ${c.width}, seqlen ${c.seqlen}${c.seq ? ', seqIdx' : ''}${c.init ? ', initial states' : ''}`, async () => {
      const i = makeInputs(c, 'float64');
      const r = rng();
      const dy = randnArray(c.batch * c.dim * c.seqlen, r);
      const dF = randnArray(c.batch * c.dim * (c.width - 1), r);
      const g = causalConv1dBackward({
        x: i.x.t,
        weight: i.weight.t,
        bias: i.bias?.t,
        activation: c.silu ? 'silu' : null,
        initialStates: i.init?.t,
        seqIdx: i.seq?.t,
        dy: tensor(dy, [c.batch, c.dim, c.seqlen]),
        dFinalStates: c.width > 1 ? tensor(dF, [c.batch, c.dim, c.width - 1]) : undefined,
      });
      // loss = Σ dy·y + Σ dF·finalStates, differentiated numerically input by input.
      const loss = (over: Partial<Record<'x' | 'weight' | 'bias' | 'init', Float64Array>>) => {
        const ref = conv1dRef({
          ...c,
          x: over.x ?? i.x.v,
          weight: over.weight ?? i.weight.v,
          bias: over.bias ?? i.bias?.v,
          initialStates: over.init ?? i.init?.v,
          seqIdx: i.seq?.v,
        });
        let s = 0;
        ref.y.forEach((v, k) => (s += v * dy[k]));
        ref.finalStates.forEach((v, k) => (s += v * dF[k]));
        return s;
      };
      const numeric = (name: 'x' | 'weight' | 'bias' | 'init', base: Float64Array) => {
        const out = new Float64Array(base.length);
        const h = 1e-6;
        for (let k = 0; k < base.length; k++) {
          const p = Float64Array.from(base), m = Float64Array.from(base);
          p[k] += h;
          m[k] -= h;
          out[k] = (loss({ [name]: p }) - loss({ [name]: m })) / (2 * h);
        }
        return out;
      };
      expectClose(await g.dx.data(), numeric('x', i.x.v), 1e-7, 'dx');
      expectClose(await g.dweight.data(), numeric('weight', i.weight.v), 1e-7, 'dweight');
      if (c.bias) expectClose(await g.dbias!.data(), numeric('bias', Float64Array.from(i.bias!.v)), 1e-6, 'dbias');
      else expect(g.dbias).toBeUndefined();
      if (c.init) expectClose(await g.dInitialStates!.data(), numeric('init', i.init!.v), 1e-7, 'dInitialStates');
      else expect(g.dInitialStates).toBeUndefined();
    });
  }

  it('float32 and bfloat16 gradients agree with float64 ones', async () => {
    const c: Case = { batch: 2, dim: 5, seqlen: 33, width: 4, bias: true, silu: true, init: true, seq: true };
    const i = makeInputs(c, 'float64');
    const dy = randnArray(c.batch * c.dim * c.seqlen);
    const args = (dtype: DType) => ({
      x: i.x.t.astype(dtype),
      weight: i.weight.t.astype('float32'),
      bias: i.bias!.t,
      initialStates: i.init!.t.astype(dtype),
      seqIdx: i.seq!.t,
      activation: 'silu' as const,
      dy: tensor(dy, [c.batch, c.dim, c.seqlen], { dtype }),
    });
    const g64 = causalConv1dBackward({ ...args('float64'), weight: i.weight.t });
    for (const [dtype, tol] of [['float32', 1e-5], ['bfloat16', 2e-2]] as const) {
      const g = causalConv1dBackward(args(dtype));
      expectClose(await g.dx.data(), await g64.dx.data(), tol, `${dtype} dx`);
      expectClose(await g.dweight.data(), await g64.dweight.data(), tol, `${dtype} dweight`);
      expectClose(await g.dInitialStates!.data(), await g64.dInitialStates!.data(), tol, `${dtype} dInitialStates`);
      expectNoNaN(await g.dbias!.data());
    }
  });
});

describe('causalConv1d errors', () => {
  const x = zeros([2, 3, 5]);
  const w = zeros([3, 4]);
  it('are coded and name the argument', () => {
    expectCode(() => causalConv1d({ x, weight: zeros([4, 4]) }), 'ERR_SHAPE', 'weight', '(4, 4)');
    expectCode(() => causalConv1d({ x: zeros([2, 3]), weight: w }), 'ERR_SHAPE', 'x');
    expectCode(() => causalConv1d({ x, weight: zeros([3, 0]) }), 'ERR_SHAPE', 'width >= 1');
    expectCode(() => causalConv1d({ x, weight: w, bias: zeros([4]) }), 'ERR_SHAPE', 'bias');
    expectCode(() => causalConv1d({ x, weight: w, initialStates: zeros([2, 3, 4]) }), 'ERR_SHAPE', 'initialStates', '(2, 3, 3)');
    expectCode(() => causalConv1d({ x, weight: w, initialStates: zeros([2, 3, 3], { dtype: 'bfloat16' }) }), 'ERR_DTYPE', 'initialStates');
    expectCode(() => causalConv1d({ x, weight: w, seqIdx: zeros([2, 5]) }), 'ERR_DTYPE', 'seqIdx', 'int32');
    expectCode(() => causalConv1d({ x, weight: w, seqIdx: zeros([2, 4], { dtype: 'int32' }) }), 'ERR_SHAPE', 'seqIdx');
    expectCode(() => causalConv1d({ x: zeros([2, 3, 5], { dtype: 'int32' }), weight: w }), 'ERR_DTYPE', 'x');
    expectCode(() => causalConv1d({ x, weight: w, activation: 'relu' as 'silu' }), 'ERR_INVALID_ARG', 'activation');
    expectCode(() => causalConv1dBackward({ x, weight: w, dy: zeros([2, 3, 4]) }), 'ERR_SHAPE', 'dy');
    expectCode(() => causalConv1dUpdate({ x: zeros([2, 3]), convState: zeros([2, 3, 2]), weight: w }), 'ERR_SHAPE', 'convState');
    expectCode(
      () => causalConv1dUpdate({ x: zeros([2, 3]), convState: zeros([2, 6, 3]).slice(1, 0, 3), weight: w }),
      'ERR_INVALID_ARG',
      'convState',
      'contiguous',
    );
    const disposed = zeros([2, 3, 5]);
    disposed.dispose();
    expectCode(() => causalConv1d({ x: disposed, weight: w }), 'ERR_DISPOSED');
  });

  it('a failed call leaves the state untouched', async () => {
    const state = tensor(randnArray(2 * 3 * 3), [2, 3, 3]);
    const before = await state.data();
    expect(() => causalConv1dUpdate({ x: zeros([2, 4]), convState: state, weight: w })).toThrow();
    expect(relErr(await state.data(), before)).toBe(0);
  });
});

// Non-contiguous inputs are made contiguous by the op.
describe('causalConv1d layouts', () => {
  it('accepts a channels-last view (batch, seqlen, dim) transposed to (batch, dim, seqlen)', async () => {
    const r = rng();
    const xs = randnArray(2 * 9 * 5, r);
    const cl = tensor(xs, [2, 9, 5]);
    const w = randnInput([5, 4], 'float32', 'cpu', 1, r);
    const y = await causalConv1d({ x: cl.transpose(1, 2), weight: w.t }).y.data();
    const ref = conv1dRef({ batch: 2, dim: 5, seqlen: 9, width: 4, x: (await cl.transpose(1, 2).contiguous().data()), weight: w.v });
    expectClose(y, ref.y, 1e-6);
  });
});

export type { Input };
void fromValues;
