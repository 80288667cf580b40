import { beforeAll, describe, expect, it } from 'vitest';
import { DType, selectiveStateUpdate, tensor, zeros } from '../lib/index';
import { debugPoison } from '../lib/index';
import { expectClose, expectCode, relErr, rng } from './helpers';
import { Input, randnInput, uniformInput } from './model_inputs';
import { stateUpdateRef } from './reference/state_update';

interface Form {
  m1: boolean;
  batch: number;
  heads: number; // dim for Mamba-1
  headdim: number; // 1 for Mamba-1
  dstate: number;
  groups: number;
  groupedBC?: boolean; // Mamba-1: B/C as (batch, groups, dstate) instead of (batch, dstate)
  z: boolean;
  D: boolean;
  dPerRow?: boolean;
  dtBias: boolean;
  softplus: boolean;
}

function inputs(f: Form, dtype: DType, stateDtype: DType) {
  const r = rng();
  const pdt: DType = dtype === 'float64' ? 'float64' : 'float32';
  const rowShape = f.m1 ? [f.batch, f.heads] : [f.batch, f.heads, f.headdim];
  const stateShape = [...rowShape, f.dstate];
  const bcShape = f.m1 && !f.groupedBC ? [f.batch, f.dstate] : [f.batch, f.groups, f.dstate];
  return {
    state: randnInput(stateShape, stateDtype, 'cpu', 1, r),
    x: randnInput(rowShape, dtype, 'cpu', 1, r),
    dt: f.softplus ? randnInput([f.batch, f.heads], dtype, 'cpu', 1, r) : uniformInput([f.batch, f.heads], 0.01, 0.5, dtype, 'cpu', r),
    A: uniformInput(f.m1 ? [f.heads, f.dstate] : [f.heads], -3, -0.1, pdt, 'cpu', r),
    B: randnInput(bcShape, dtype, 'cpu', 1, r),
    C: randnInput(bcShape, dtype, 'cpu', 1, r),
    D: f.D ? randnInput(f.dPerRow ? [f.heads, f.headdim] : [f.heads], pdt, 'cpu', 1, r) : undefined,
    z: f.z ? randnInput(rowShape, dtype, 'cpu', 1, r) : undefined,
    dtBias: f.dtBias ? uniformInput([f.heads], -1, 0.5, pdt, 'cpu', r) : undefined,
  };
}

type Inputs = ReturnType<typeof inputs>;

function step(f: Form, i: Inputs, refState: Float64Array): { y: ReturnType<typeof selectiveStateUpdate>; ref: Float64Array } {
  const y = selectiveStateUpdate({
    state: i.state.t,
    x: i.x.t,
    dt: i.dt.t,
    A: i.A.t,
    B: i.B.t,
    C: i.C.t,
    D: i.D?.t,
    z: i.z?.t,
    dtBias: i.dtBias?.t,
    dtSoftplus: f.softplus,
  });
  const ref = stateUpdateRef({
    batch: f.batch,
    heads: f.heads,
    headdim: f.headdim,
    dstate: f.dstate,
    groups: f.groups,
    state: refState,
    x: i.x.v,
    dt: i.dt.v,
    A: i.A.v,
    aPerState: f.m1,
    B: i.B.v,
    C: i.C.v,
    D: i.D?.v,
    dPerRow: f.dPerRow,
    z: i.z?.v,
    dtBias: i.dtBias?.v,
    dtSoftplus: f.softplus,
  });
  return { y, ref };
}

const forms: Form[] = [
  { m1: true, batch: 2, heads: 7, headdim: 1, dstate: 16, groups: 1, z: true, D: true, dtBias: true, softplus: true },
  { m1: true, batch: 3, heads: 6, headdim: 1, dstate: 5, groups: 3, groupedBC: true, z: false, D: false, dtBias: false, softplus: false },
  { m1: false, batch: 2, heads: 4, headdim: 5, dstate: 16, groups: 2, z: true, D: true, dtBias: true, softplus: true },
  { m1: false, batch: 3, heads: 8, headdim: 3, dstate: 7, groups: 8, z: false, D: true, dPerRow: true, dtBias: false, softplus: true },
  { m1: false, batch: 1, heads: 2, headdim: 64, dstate: 128, groups: 1, z: true, D: false, dtBias: true, softplus: false },
];
const label = (f: Form) =>
  `${f.m1 ? 'Mamba-1' : 'Mamba-2'} b${f.batch} h${f.heads} p${f.headdim} n${f.dstate} g${f.groups}${f.z ? ' z' : ''}${f.D ? ' D' : ''}${f.dtBias ? ' dtBias' : ''}${f.softplus ? ' softplus' : ''}`;

// New memory starts as NaN: an output element a kernel forgets to write shows up.
beforeAll(() => debugPoison(true));

describe('selectiveStateUpdate (CPU): decode steps equal the recurrence run step by step', () => {
  const combos: Array<[DType, DType, number, number]> = [
    // x dtype, state dtype, y tolerance, state tolerance
    ['float32', 'float32', 1e-5, 1e-6],
    ['float64', 'float64', 1e-12, 1e-13],
    ['bfloat16', 'float32', 1e-2, 1e-5],
    ['float32', 'bfloat16', 2e-2, 1e-2],
  ];
  for (const [dtype, sdtype, ytol, stol] of combos) {
    it(`x ${dtype}, state ${sdtype}: both forms, 5 steps`, async () => {
      for (const f of forms) {
        const start = inputs(f, dtype, sdtype);
        const state = start.state.t;
        const refState = Float64Array.from(start.state.v);
        for (let s = 0; s < 5; s++) {
          const i = s === 0 ? start : { ...inputs(f, dtype, sdtype), state: start.state };
          const { y, ref } = step(f, i, refState);
          expect(y.shape).toEqual(i.x.t.shape);
          expect(y.dtype).toBe(dtype);
          expectClose(await y.data(), ref, ytol, `${label(f)} step ${s} y`);
          const got = await state.data();
          expectClose(got, refState, stol, `${label(f)} step ${s} state`);
          if (sdtype === 'bfloat16') refState.set(got); // the kernel continues from the rounded state
        }
      }
    });
  }

  it('Mamba-1 form equals one step of the selective scan (B/C time-varying, seqlen 1)', async () => {
    // The scan step written out: x_t = exp(δ'A)x_{t-1} + δ'·B·u, y = C·x + D·u, y·silu(z).
    const batch = 2, dim = 3, N = 4;
    const r = rng();
    const st = randnInput([batch, dim, N], 'float32', 'cpu', 1, r);
    const u = randnInput([batch, dim], 'float32', 'cpu', 1, r);
    const delta = randnInput([batch, dim], 'float32', 'cpu', 1, r);
    const A = uniformInput([dim, N], -2, -0.5, 'float32', 'cpu', r);
    const B = randnInput([batch, N], 'float32', 'cpu', 1, r);
    const C = randnInput([batch, N], 'float32', 'cpu', 1, r);
    const y = await selectiveStateUpdate({ state: st.t, x: u.t, dt: delta.t, A: A.t, B: B.t, C: C.t, dtSoftplus: true }).data();
    for (let b = 0; b < batch; b++)
      for (let d = 0; d < dim; d++) {
        const dl = Math.log1p(Math.exp(delta.v[b * dim + d]));
        let out = 0;
        for (let n = 0; n < N; n++) {
          const xs = Math.exp(dl * A.v[d * N + n]) * st.v[(b * dim + d) * N + n] + dl * B.v[b * N + n] * u.v[b * dim + d];
          out += C.v[b * N + n] * xs;
        }
        expect(y[b * dim + d]).toBeCloseTo(out, 4);
      }
  });
});

describe('selectiveStateUpdate dtLimit (transformers time_step_limit)', () => {
  it('clamps dt\' after the softplus; an open end is Infinity or null', async () => {
    const f = forms[2];
    for (const [lim, refLim] of [
      [[0.2, 0.6], [0.2, 0.6]],
      [[0, Infinity], [0, Infinity]],
      [[null, 0.3], [-Infinity, 0.3]],
    ] as Array<[[number | null, number | null], [number, number]]>) {
      const i = inputs(f, 'float32', 'float32');
      const refState = Float64Array.from(i.state.v);
      const y = selectiveStateUpdate({
        state: i.state.t, x: i.x.t, dt: i.dt.t, A: i.A.t, B: i.B.t, C: i.C.t, D: i.D?.t, z: i.z?.t, dtBias: i.dtBias?.t,
        dtSoftplus: true, dtLimit: lim,
      });
      const ref = stateUpdateRef({
        batch: f.batch, heads: f.heads, headdim: f.headdim, dstate: f.dstate, groups: f.groups, state: refState,
        x: i.x.v, dt: i.dt.v, A: i.A.v, aPerState: false, B: i.B.v, C: i.C.v, D: i.D?.v, z: i.z?.v, dtBias: i.dtBias?.v,
        dtSoftplus: true, dtLimit: refLim,
      });
      expectClose(await y.data(), ref, 1e-5, `dtLimit ${JSON.stringify(lim)}`);
      expectClose(await i.state.t.data(), refState, 1e-6, 'state');
    }
    const i = inputs(f, 'float32', 'float32');
    expectCode(
      () => selectiveStateUpdate({ state: i.state.t, x: i.x.t, dt: i.dt.t, A: i.A.t, B: i.B.t, C: i.C.t, dtLimit: [1, 0] }),
      'ERR_INVALID_ARG',
      'dtLimit',
    );
  });
});

describe('selectiveStateUpdate errors', () => {
  const f = forms[2];
  const i = inputs(f, 'float32', 'float32');
  const base = { state: i.state.t, x: i.x.t, dt: i.dt.t, A: i.A.t, B: i.B.t, C: i.C.t };
  it('are coded and leave the state untouched', async () => {
    const before = await i.state.t.data();
    expectCode(() => selectiveStateUpdate({ ...base, state: zeros([2, 4]) }), 'ERR_SHAPE', 'state');
    expectCode(() => selectiveStateUpdate({ ...base, state: zeros([2, 4, 5, 16], { dtype: 'float16' }) }), 'ERR_DTYPE', 'state');
    expectCode(() => selectiveStateUpdate({ ...base, x: zeros([2, 4, 6]) }), 'ERR_SHAPE', 'x');
    expectCode(() => selectiveStateUpdate({ ...base, dt: zeros([2, 4, 5]) }), 'ERR_SHAPE', 'dt', '(batch, heads)');
    expectCode(() => selectiveStateUpdate({ ...base, A: zeros([4, 16]) }), 'ERR_SHAPE', 'A', '(heads)');
    expectCode(() => selectiveStateUpdate({ ...base, A: zeros([4], { dtype: 'bfloat16' }) }), 'ERR_DTYPE', 'A');
    expectCode(() => selectiveStateUpdate({ ...base, B: zeros([2, 3, 16]) }), 'ERR_SHAPE', 'groups');
    expectCode(() => selectiveStateUpdate({ ...base, C: zeros([2, 1, 16]) }), 'ERR_SHAPE', 'C');
    expectCode(() => selectiveStateUpdate({ ...base, B: zeros([2, 2, 15]) }), 'ERR_SHAPE', 'B');
    expectCode(() => selectiveStateUpdate({ ...base, D: zeros([4, 4]) }), 'ERR_SHAPE', 'D');
    expectCode(() => selectiveStateUpdate({ ...base, z: zeros([2, 4, 5], { dtype: 'bfloat16' }) }), 'ERR_DTYPE', 'z');
    expectCode(() => selectiveStateUpdate({ ...base, state: zeros([2, 4, 5, 32]).slice(3, 0, 16) }), 'ERR_INVALID_ARG', 'contiguous');
    expectCode(() => selectiveStateUpdate({ ...base, readStateEarly: 'yes' as unknown as boolean }), 'ERR_INVALID_ARG', 'readStateEarly');
    expect(relErr(await i.state.t.data(), before)).toBe(0);
  });
});

describe('selectiveStateUpdate readStateEarly', () => {
  // a promise about the ops before the update, acted on only by CUDA's batched Mamba-1 kernel:
  // on the CPU the same y and state, bit for bit
  it('on the CPU changes nothing (Mamba-1 and Mamba-2 forms)', async () => {
    for (const f of [forms[0], forms[2]]) {
      const i = inputs(f, 'float32', 'float32');
      const s2 = i.state.t.clone();
      const args = { x: i.x.t, dt: i.dt.t, A: i.A.t, B: i.B.t, C: i.C.t, D: i.D?.t, z: i.z?.t, dtBias: i.dtBias?.t, dtSoftplus: f.softplus };
      const a = await selectiveStateUpdate({ ...args, state: i.state.t }).data();
      const b = await selectiveStateUpdate({ ...args, state: s2, readStateEarly: true }).data();
      expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer)), label(f)).toBe(0);
      const sa = await i.state.t.data(), sb = await s2.data();
      expect(Buffer.compare(Buffer.from(sa.buffer), Buffer.from(sb.buffer)), `${label(f)} state`).toBe(0);
    }
  });
});

export type { Input };
void tensor;
