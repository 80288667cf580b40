/** CPU selective scan against the float64 reference; gradients against finite differences. */
import { describe, expect, it } from 'vitest';
import { DType, selectiveScan, selectiveScanBackward, tensor, Tensor } from '../lib/index';
import type { SelectiveScanGradients } from '../lib/index';
import { expectClose, expectCode, expectNoNaN, randnArray, rng } from './helpers';
import { refSelectiveScan, RefScanInputs } from './reference/selective_scan';
import { build, ScanCase } from './selective_scan_case';
import { checkScanLastStateOut } from './state_out_checks';

const t32 = (a: Float64Array, shape: number[]) => tensor(a, shape, { dtype: 'float32' });
const f64 = (t?: Tensor) => (t ? Float64Array.from(t.dataSync()) : new Float64Array(0));

function checkForward(c: ScanCase, dtype: DType, tol: number): void {
  const { opts, ref } = build(c, dtype, 'cpu');
  const out = selectiveScan({ ...opts, returnLastState: true });
  expect(out.y.dtype).toBe(dtype);
  expect(out.y.shape).toEqual([c.batch, c.dim, c.seqlen]);
  expect(out.lastState!.shape).toEqual([c.batch, c.dim, c.dstate]);
  const want = refSelectiveScan(ref);
  const y = f64(out.y);
  expectNoNaN(y, 'y');
  expectClose(y, want.y, tol, `y ${dtype} ${JSON.stringify(c)}`);
  expectClose(f64(out.lastState), want.lastState, dtype === 'float64' ? tol : 1e-5, 'lastState');
}

describe('selectiveScan forward (CPU) vs float64 reference', () => {
  const cases: ScanCase[] = [
    { batch: 1, dim: 3, seqlen: 1, dstate: 1, B: 'ti', C: 'ti' },
    { batch: 2, dim: 3, seqlen: 7, dstate: 16, B: 'step', C: 3, z: true, D: true, deltaBias: true, softplus: true, initialState: true },
    { batch: 1, dim: 3, seqlen: 2049, dstate: 16, B: 1, C: 'step', z: true, D: true, softplus: true },
    { batch: 2, dim: 64, seqlen: 7, dstate: 64, B: 4, C: 4, D: true, deltaBias: true, softplus: true, initialState: true },
    { batch: 1, dim: 64, seqlen: 33, dstate: 256, B: 'ti', C: 'step', z: true },
    { batch: 1, dim: 64, seqlen: 2049, dstate: 16, B: 'step', C: 'step', z: true, D: true, deltaBias: true, softplus: true },
    { batch: 1, dim: 3, seqlen: 5000, dstate: 16, B: 'step', C: 'ti', D: true, initialState: true },
    { batch: 2, dim: 6, seqlen: 7, dstate: 9, B: 2, C: 3, z: true, D: true },
    { batch: 1, dim: 3, seqlen: 7, dstate: 1, B: 'step', C: 'step', initialState: true, softplus: true },
  ];
  for (const c of cases) {
    it(`f32 batch ${c.batch} dim ${c.dim} seqlen ${c.seqlen} dstate ${c.dstate} B ${c.B} C ${c.C}`, () => checkForward(c, 'float32', 1e-5));
  }
  it('float64 path', () => checkForward(cases[1], 'float64', 1e-12));
  it('returns no checkpoints on the CPU, and its backward ignores given ones', () => {
    const { opts } = build(cases[1], 'float32', 'cpu');
    expect(selectiveScan({ ...opts, returnCheckpoints: true }).checkpoints).toBeUndefined();
    const c = cases[1];
    const dy = t32(randnArray(c.batch * c.dim * c.seqlen), [c.batch, c.dim, c.seqlen]);
    const a = selectiveScanBackward({ ...opts, dy });
    const b = selectiveScanBackward({ ...opts, dy, checkpoints: t32(new Float64Array(4), [4]) });
    expect(f64(b.du)).toEqual(f64(a.du));
  });
  it('float64 path, grouped, long', () => checkForward({ ...cases[3], seqlen: 300 }, 'float64', 1e-12));
  it('bfloat16 and float16 inputs', () => {
    checkForward(cases[1], 'bfloat16', 1e-2);
    checkForward(cases[3], 'float16', 1e-2);
  });
  it('large delta*|A| gives no NaN (bf16)', () => {
    const c: ScanCase = { batch: 1, dim: 8, seqlen: 65, dstate: 16, z: true, D: true, softplus: true, deltaScale: 40 };
    const { opts, ref } = build(c, 'bfloat16', 'cpu');
    const y = f64(selectiveScan(opts).y);
    expectNoNaN(y, 'y');
    expectClose(y, refSelectiveScan(ref).y, 1e-2, 'y');
  });
});

describe('selectiveScan sequences', () => {
  it('packed seqIdx rows equal the sequences run apart', () => {
    const lens = [[5, 1, 9], [15]];
    const c: ScanCase = { batch: 2, dim: 5, seqlen: 15, dstate: 16, B: 'step', C: 'step', z: true, D: true, softplus: true, deltaBias: true, initialState: true, packed: lens };
    const { opts, ref, data } = build(c, 'float32', 'cpu');
    const packed = f64(selectiveScan(opts).y);
    expectClose(packed, refSelectiveScan(ref).y, 1e-5, 'packed vs reference');
    // Each sequence alone: the initial state applies to the first sequence of each row only.
    lens.forEach((row, b) => {
      let t0 = 0;
      row.forEach((len, k) => {
        const sl = (name: string, perRow: number) => {
          const src = data[name];
          const out = new Float64Array(perRow * len);
          for (let r = 0; r < perRow; r++) for (let t = 0; t < len; t++) out[r * len + t] = src[(b * perRow + r) * c.seqlen + t0 + t];
          return out;
        };
        const io = [1, c.dim, len];
        const alone = selectiveScan({
          u: t32(sl('u', c.dim), io),
          delta: t32(sl('delta', c.dim), io),
          z: t32(sl('z', c.dim), io),
          A: opts.A,
          B: t32(sl('B', c.dstate), [1, c.dstate, len]),
          C: t32(sl('C', c.dstate), [1, c.dstate, len]),
          D: opts.D,
          deltaBias: opts.deltaBias,
          deltaSoftplus: true,
          initialState: k === 0 ? t32(data.initialState.slice(b * c.dim * c.dstate, (b + 1) * c.dim * c.dstate), [1, c.dim, c.dstate]) : undefined,
        });
        const got = f64(alone.y);
        const want = new Float64Array(c.dim * len);
        for (let d = 0; d < c.dim; d++) for (let t = 0; t < len; t++) want[d * len + t] = packed[(b * c.dim + d) * c.seqlen + t0 + t];
        expectClose(got, want, 1e-6, `row ${b} sequence ${k}`);
        t0 += len;
      });
    });
  });

  it('scan(L1) then scan(L2, initialState = lastState) equals scan(L1 + L2)', () => {
    const L1 = 37, L2 = 29, L = L1 + L2;
    const c: ScanCase = { batch: 2, dim: 5, seqlen: L, dstate: 16, B: 'step', C: 'step', z: true, D: true, softplus: true, initialState: true };
    const { opts, data } = build(c, 'float32', 'cpu');
    const whole = selectiveScan({ ...opts, returnLastState: true });
    const part = (name: string, rows: number, a: number, b: number) => {
      const out = new Float64Array(rows * (b - a));
      for (let r = 0; r < rows; r++) for (let t = a; t < b; t++) out[r * (b - a) + t - a] = data[name][r * L + t];
      return out;
    };
    const run = (a: number, b: number, init: Tensor) =>
      selectiveScan({
        u: t32(part('u', 2 * c.dim, a, b), [2, c.dim, b - a]),
        delta: t32(part('delta', 2 * c.dim, a, b), [2, c.dim, b - a]),
        z: t32(part('z', 2 * c.dim, a, b), [2, c.dim, b - a]),
        B: t32(part('B', 2 * c.dstate, a, b), [2, c.dstate, b - a]),
        C: t32(part('C', 2 * c.dstate, a, b), [2, c.dstate, b - a]),
        A: opts.A,
        D: opts.D,
        deltaSoftplus: true,
        initialState: init,
        returnLastState: true,
      });
    const first = run(0, L1, opts.initialState!);
    const second = run(L1, L, first.lastState!);
    const y = f64(whole.y), y1 = f64(first.y), y2 = f64(second.y);
    const joined = new Float64Array(y.length);
    for (let r = 0; r < 2 * c.dim; r++) {
      joined.set(y1.subarray(r * L1, (r + 1) * L1), r * L);
      joined.set(y2.subarray(r * L2, (r + 1) * L2), r * L + L1);
    }
    expectClose(joined, y, 1e-6, 'split scan');
    expectClose(f64(second.lastState), f64(whole.lastState), 1e-6, 'last state');
  });

  it('lastStateOut: the last state written into a cache slot (also when it is the initial state)', () => {
    checkScanLastStateOut({ batch: 2, dim: 5, seqlen: 37, dstate: 16, B: 'step', C: 'step', z: true, D: true, softplus: true, deltaBias: true }, 'float32', 'cpu');
    checkScanLastStateOut({ batch: 1, dim: 4, seqlen: 9, dstate: 4, B: 'ti', C: 2 }, 'float64', 'cpu');
  });

  it('strided (non-contiguous) B is accepted', () => {
    const c: ScanCase = { batch: 2, dim: 4, seqlen: 9, dstate: 8, B: 'step', C: 'step' };
    const { opts, ref } = build(c, 'float32', 'cpu');
    const Bt = t32(f64(opts.B.transpose(1, 2).contiguous()), [2, 9, 8]).transpose(1, 2);
    expect(Bt.isContiguous).toBe(false);
    expectClose(f64(selectiveScan({ ...opts, B: Bt }).y), refSelectiveScan(ref).y, 1e-5, 'y');
  });
});

/** Central finite differences of L = sum(wy * y) + sum(wl * lastState) through the reference. */
function fdGrad(ref: RefScanInputs, wy: Float64Array, wl: Float64Array, key: keyof RefScanInputs): Float64Array {
  const arr = ref[key] as Float64Array;
  const loss = () => {
    const o = refSelectiveScan(ref);
    let s = 0;
    for (let i = 0; i < wy.length; i++) s += wy[i] * o.y[i];
    for (let i = 0; i < wl.length; i++) s += wl[i] * o.lastState[i];
    return s;
  };
  const g = new Float64Array(arr.length);
  const eps = 1e-5;
  for (let i = 0; i < arr.length; i++) {
    const v = arr[i];
    arr[i] = v + eps;
    const lp = loss();
    arr[i] = v - eps;
    const lm = loss();
    arr[i] = v;
    g[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

const gradKeys: Array<[keyof SelectiveScanGradients, keyof RefScanInputs]> = [
  ['du', 'u'], ['ddelta', 'delta'], ['dA', 'A'], ['dB', 'B'], ['dC', 'C'], ['dD', 'D'], ['dz', 'z'], ['dDeltaBias', 'deltaBias'], ['dInitialState', 'initialState'],
];

function backward(c: ScanCase, dtype: DType, seed?: number, withLast = true) {
  const b = build(c, dtype, 'cpu');
  const r = rng(seed);
  const wy = randnArray(c.batch * c.dim * c.seqlen, r);
  const wl = withLast ? randnArray(c.batch * c.dim * c.dstate, r) : new Float64Array(0);
  const wt = dtype === 'float64' ? 'float64' : 'float32';
  const grads = selectiveScanBackward({
    ...b.opts,
    dy: tensor(wy, [c.batch, c.dim, c.seqlen], { dtype }),
    dLastState: withLast ? tensor(wl, [c.batch, c.dim, c.dstate], { dtype: wt }) : undefined,
  });
  return { ...b, grads, wy, wl };
}

describe('selectiveScanBackward (CPU) vs finite differences', () => {
  const cases: ScanCase[] = [
    { batch: 2, dim: 4, seqlen: 6, dstate: 3, B: 2, C: 'step', z: true, D: true, deltaBias: true, softplus: true, initialState: true },
    { batch: 2, dim: 3, seqlen: 5, dstate: 9, B: 'ti', C: 'ti', z: true, D: true, deltaBias: true, initialState: true },
    { batch: 2, dim: 4, seqlen: 8, dstate: 2, B: 'step', C: 2, D: true, softplus: true, initialState: true, packed: [[3, 5], [1, 2, 5]] },
    // longer than the CPU backward's 512-step recomputation segments, restarts on and off their edges
    { batch: 1, dim: 2, seqlen: 700, dstate: 2, B: 'step', C: 'ti', z: true, D: true, deltaBias: true, softplus: true, initialState: true, packed: [[512, 100, 88]] },
  ];
  for (const c of cases) {
    it(`float64 B ${c.B} C ${c.C}${c.packed ? ' packed' : ''}`, () => {
      const { grads, ref, wy, wl } = backward(c, 'float64');
      for (const [g, k] of gradKeys) {
        if (ref[k] === undefined) {
          expect(grads[g], g).toBeUndefined();
          continue;
        }
        expectClose(f64(grads[g]), fdGrad(ref, wy, wl, k), 1e-6, g);
      }
    });
  }

  it('gradient shapes follow the inputs', () => {
    const c = cases[0];
    const { grads, opts } = backward(c, 'float32');
    expect(grads.du.shape).toEqual(opts.u.shape);
    expect(grads.dB.shape).toEqual(opts.B.shape);
    expect(grads.dC.shape).toEqual(opts.C.shape);
    expect(grads.dA.shape).toEqual(opts.A.shape);
    expect(grads.dInitialState!.shape).toEqual(opts.initialState!.shape);
    expect(grads.dB.dtype).toBe('float32');
  });

  const f32Cases: ScanCase[] = [
    { batch: 2, dim: 12, seqlen: 1100, dstate: 16, B: 3, C: 'step', z: true, D: true, deltaBias: true, softplus: true, initialState: true, packed: [[100, 412, 588], [1100]] },
    { batch: 2, dim: 5, seqlen: 77, dstate: 8, B: 'ti', C: 'ti', z: true, D: true, deltaBias: true, softplus: true, initialState: true, packed: [[7, 70], [77]] },
    { batch: 1, dim: 4, seqlen: 50, dstate: 32, B: 'ti', C: 2, D: true, initialState: true },
    { batch: 2, dim: 4, seqlen: 40, dstate: 13, B: 'step', C: 'ti', z: true, softplus: true },
  ];
  for (const c of f32Cases) {
    it(`float32 gradients equal float64 gradients: dstate ${c.dstate} B ${c.B} C ${c.C}`, () => {
      const seed = 1 + Math.floor(Math.random() * 1e9);
      const base = build(c, 'float64', 'cpu');
      const run = (dtype: DType) => {
        const b = build(c, dtype, 'cpu', base.data);
        const r = rng(seed);
        const wy = randnArray(c.batch * c.dim * c.seqlen, r);
        const wl = randnArray(c.batch * c.dim * c.dstate, r);
        return selectiveScanBackward({
          ...b.opts,
          dy: tensor(wy, [c.batch, c.dim, c.seqlen], { dtype }),
          dLastState: tensor(wl, [c.batch, c.dim, c.dstate], { dtype: dtype === 'float64' ? 'float64' : 'float32' }),
        });
      };
      const g32 = run('float32'), g64 = run('float64');
      for (const [g] of gradKeys) {
        expect(g32[g] === undefined, g).toBe(g64[g] === undefined);
        if (g64[g]) expectClose(f64(g32[g]), f64(g64[g]), 1e-4, g);
      }
      // and the float32 backward is reproducible bit for bit
      const again = run('float32');
      for (const [g] of gradKeys) if (g32[g]) expect(f64(again[g])).toEqual(f64(g32[g]));
    });
  }
});

describe('selectiveScan errors', () => {
  const c: ScanCase = { batch: 2, dim: 4, seqlen: 5, dstate: 3 };
  const { opts } = build(c, 'float32', 'cpu');
  it('shapes', () => {
    expectCode(() => selectiveScan({ ...opts, delta: tensor(new Float32Array(2 * 4 * 6), [2, 4, 6]) }), 'ERR_SHAPE', 'delta', '(2, 4, 6)');
    expectCode(() => selectiveScan({ ...opts, A: tensor(new Float32Array(12), [3, 4]) }), 'ERR_SHAPE', 'A');
    expectCode(() => selectiveScan({ ...opts, A: tensor(new Float32Array(4 * 257), [4, 257]) }), 'ERR_SHAPE', 'dstate');
    expectCode(() => selectiveScan({ ...opts, B: tensor(new Float32Array(2 * 3 * 4), [2, 3, 4]) }), 'ERR_SHAPE', 'B');
    expectCode(() => selectiveScan({ ...opts, C: tensor(new Float32Array(2 * 3 * 3 * 5), [2, 3, 3, 5]) }), 'ERR_SHAPE', 'C', 'groups (3) must divide dim (4)');
    expectCode(() => selectiveScan({ ...opts, D: tensor(new Float32Array(3), [3]) }), 'ERR_SHAPE', 'D');
    expectCode(() => selectiveScan({ ...opts, initialState: tensor(new Float32Array(2 * 4 * 4), [2, 4, 4]) }), 'ERR_SHAPE', 'initialState');
    expectCode(() => selectiveScan({ ...opts, seqIdx: tensor(new Int32Array(2 * 4), [2, 4]) }), 'ERR_SHAPE', 'seqIdx');
    expectCode(() => selectiveScan({ ...opts, u: tensor(new Float32Array(2 * 4 * 0), [2, 4, 0]), delta: tensor(new Float32Array(0), [2, 4, 0]) }), 'ERR_SHAPE', 'seqlen');
    expectCode(() => selectiveScanBackward({ ...opts, dy: tensor(new Float32Array(8), [2, 4, 1]) }), 'ERR_SHAPE', 'dy');
  });
  it('dtypes', () => {
    expectCode(() => selectiveScan({ ...opts, A: opts.A.astype('bfloat16') }), 'ERR_DTYPE', 'A', 'float32');
    expectCode(() => selectiveScan({ ...opts, delta: opts.delta.astype('float16') }), 'ERR_DTYPE', 'delta');
    expectCode(() => selectiveScan({ ...opts, B: opts.B.astype('bfloat16') }), 'ERR_DTYPE', 'B');
    expectCode(() => selectiveScan({ ...opts, seqIdx: tensor(new Float32Array(10), [2, 5]) }), 'ERR_DTYPE', 'seqIdx', 'int32');
    expectCode(() => selectiveScan({ ...opts, u: opts.u.astype('int32'), delta: opts.delta.astype('int32') }), 'ERR_DTYPE', 'u');
  });
  it('missing and disposed arguments', () => {
    expectCode(() => selectiveScan({ ...opts, B: undefined as unknown as Tensor }), 'ERR_INVALID_ARG', 'B');
    const d = opts.D ?? tensor(new Float32Array(4), [4]);
    d.dispose();
    expectCode(() => selectiveScan({ ...opts, D: d }), 'ERR_DISPOSED');
  });
});
