/** CUDA selective scan: against the float64 reference, CPU gradients, poisoning, determinism. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DType, debugPoison, selectiveScan, selectiveScanBackward, tensor, Tensor } from '../../lib/index';
import type { SelectiveScanGradients } from '../../lib/index';
import { describeGpu, expectClose, expectCode, expectNoNaN, randnArray, relErr, rng } from '../helpers';
import { refSelectiveScan } from '../reference/selective_scan';
import { build, randomData, ScanCase } from '../selective_scan_case';
import { checkScanLastStateOut } from '../state_out_checks';

const f64 = (t?: Tensor) => (t ? Float64Array.from(t.dataSync()) : new Float64Array(0));
const gradNames: Array<keyof SelectiveScanGradients> = ['du', 'ddelta', 'dA', 'dB', 'dC', 'dD', 'dz', 'dDeltaBias', 'dInitialState'];

const cases: ScanCase[] = [
  { batch: 1, dim: 3, seqlen: 1, dstate: 1, B: 'ti', C: 'ti' },
  { batch: 2, dim: 3, seqlen: 7, dstate: 16, B: 'step', C: 3, z: true, D: true, deltaBias: true, softplus: true, initialState: true },
  { batch: 2, dim: 64, seqlen: 2049, dstate: 16, B: 'step', C: 'step', z: true, D: true, deltaBias: true, softplus: true },
  { batch: 2, dim: 64, seqlen: 77, dstate: 64, B: 4, C: 2, D: true, deltaBias: true, softplus: true, initialState: true },
  { batch: 1, dim: 64, seqlen: 33, dstate: 256, B: 'ti', C: 'step', z: true, initialState: true },
  { batch: 1, dim: 40, seqlen: 45, dstate: 200, B: 'step', C: 'ti', D: true, softplus: true },
  { batch: 1, dim: 3, seqlen: 5000, dstate: 16, B: 'step', C: 'ti', D: true, initialState: true, z: true },
  { batch: 3, dim: 6, seqlen: 71, dstate: 9, B: 2, C: 3, z: true, D: true, packed: [[70, 1], [1, 70], [20, 30, 21]] },
  { batch: 2, dim: 96, seqlen: 100, dstate: 16, B: 3, C: 'step', z: true, D: true, softplus: true, initialState: true, packed: [[31, 69], [100]] },
  // more blocks than SMs, a partial last chunk after whole 16-byte staged ones
  { batch: 2, dim: 4096, seqlen: 200, dstate: 16, B: 'step', C: 'step', z: true, D: true, deltaBias: true, softplus: true },
  // the layouts whose lanes per row stay a run-time value in the kernels: 2, 8 and 32 lanes of 4 states
  { batch: 2, dim: 5, seqlen: 70, dstate: 7, B: 'step', C: 'step', z: true, D: true, softplus: true },
  { batch: 1, dim: 33, seqlen: 130, dstate: 32, B: 'step', C: 'ti', z: true, deltaBias: true, softplus: true, initialState: true },
  { batch: 2, dim: 10, seqlen: 40, dstate: 100, B: 2, C: 'step', D: true, softplus: true },
  // few rows: the forward splits time into segments (64 steps here); restarts inside a segment and
  // on a segment boundary (128)
  { batch: 2, dim: 4, seqlen: 600, dstate: 16, B: 'step', C: 'step', z: true, D: true, softplus: true, initialState: true, packed: [[128, 300, 172], [600]] },
  // 8 states per lane (dstate > 128) with per-step B and C: the forward's packed 2-byte B|C tile
  // read as two 16-byte groups per step; whole 16-byte staged chunks, then element-wise ones
  { batch: 1, dim: 40, seqlen: 64, dstate: 144, B: 'step', C: 'step', z: true, D: true, softplus: true, initialState: true },
  { batch: 2, dim: 8, seqlen: 45, dstate: 129, B: 2, C: 'step', z: true, D: true },
  // few rows, per-step B/C, seqlen a multiple of 8: the time-parallel forward with whole 16-byte
  // slices, a partial last window; one slice only
  { batch: 2, dim: 24, seqlen: 1000, dstate: 16, B: 'step', C: 'step', z: true, D: true, deltaBias: true, softplus: true, initialState: true },
  { batch: 1, dim: 16, seqlen: 8, dstate: 16, B: 'step', C: 'step', z: true, D: true, softplus: true },
  // packed (the sequential forward), seqlen a multiple of 8: 2-byte whole chunks come in by bulk
  // copies; dstate 12 of 16 padded states, 20-row blocks (C in 2 groups), time segments
  { batch: 2, dim: 40, seqlen: 520, dstate: 12, B: 'step', C: 2, z: true, D: true, deltaBias: true, softplus: true, initialState: true, packed: [[200, 320], [520]] },
  // dstate 9-16, blocks partly filled (100 and 72 rows), a time-invariant B with restarts, then a
  // time-invariant C; bulk-copied whole chunks, time segments
  { batch: 1, dim: 100, seqlen: 1000, dstate: 16, B: 'ti', C: 'step', z: true, D: true, deltaBias: true, softplus: true, initialState: true, packed: [[333, 600, 67]] },
  { batch: 2, dim: 72, seqlen: 264, dstate: 13, B: 'step', C: 'ti', z: true, D: true, softplus: true },
  // dstate 16 with every block full and no time segments (272 blocks): bulk-copied whole chunks,
  // y stored by the next chunk's staging, a partial last chunk (the staging's item map)
  { batch: 2, dim: 4352, seqlen: 264, dstate: 16, B: 'step', C: 'step', z: true, D: true, deltaBias: true, softplus: true },
  // the same staging without z, bias or softplus, over time segments of two whole chunks
  { batch: 1, dim: 2112, seqlen: 1024, dstate: 16, B: 'step', C: 'step', D: true },
];
const label = (c: ScanCase) => `batch ${c.batch} dim ${c.dim} seqlen ${c.seqlen} dstate ${c.dstate} B ${c.B} C ${c.C}${c.packed ? ' packed' : ''}`;

function backwardOn(c: ScanCase, dtype: DType, device: 'cpu' | 'cuda', data: Record<string, Float64Array>, wy: Float64Array, wl: Float64Array) {
  const { opts } = build(c, dtype, device, data);
  return selectiveScanBackward({
    ...opts,
    dy: tensor(wy, [c.batch, c.dim, c.seqlen], { dtype, device }),
    dLastState: tensor(wl, [c.batch, c.dim, c.dstate], { dtype: dtype === 'float64' ? 'float64' : 'float32', device }),
  });
}

describeGpu('selectiveScan on CUDA', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));

  for (const c of cases) {
    for (const [dtype, tol] of [['float32', 1e-4], ['bfloat16', 1e-2], ['float16', 5e-3]] as Array<[DType, number]>) {
      it(`forward ${dtype} ${label(c)}`, () => {
        const { opts, ref } = build(c, dtype, 'cuda');
        const out = selectiveScan({ ...opts, returnLastState: true });
        expect(out.y.device).toBe('cuda:0');
        expect(out.y.dtype).toBe(dtype);
        const want = refSelectiveScan(ref);
        const y = f64(out.y), last = f64(out.lastState);
        expectNoNaN(y, 'y (poisoned output fully written)');
        expectNoNaN(last, 'lastState');
        expectClose(y, want.y, tol, `y ${dtype}`);
        expectClose(last, want.lastState, 1e-4, 'lastState');
      });
    }
  }

  for (const c of cases.filter((x) => x.batch * x.dim * x.seqlen * x.dstate < 3e6)) {
    it(`gradients equal the CPU float64 gradients: ${label(c)}`, () => {
      const data = randomData(c);
      const r = rng();
      const wy = randnArray(c.batch * c.dim * c.seqlen, r), wl = randnArray(c.batch * c.dim * c.dstate, r);
      const want = backwardOn(c, 'float64', 'cpu', data, wy, wl);
      const got = backwardOn(c, 'float32', 'cuda', data, wy, wl);
      const gotBf = backwardOn(c, 'bfloat16', 'cuda', data, wy, wl);
      for (const g of gradNames) {
        expect(got[g] === undefined, g).toBe(want[g] === undefined);
        if (!want[g]) continue;
        expect(got[g]!.shape, g).toEqual(want[g]!.shape);
        const w = f64(want[g]);
        const v = f64(got[g]);
        expectNoNaN(v, `${g} (poisoned)`);
        expectClose(v, w, 1e-4, `${g} f32`);
        const vb = f64(gotBf[g]);
        expectNoNaN(vb, `${g} bf16`);
        // bf16 inputs are rounded on the way in, so compare against a CPU run on the rounded data
        void vb;
      }
      const wantBf = backwardOn(c, 'bfloat16', 'cpu', data, wy, wl);
      for (const g of gradNames) if (want[g]) expectClose(f64(gotBf[g]), f64(wantBf[g]), 2e-2, `${g} bf16 vs CPU bf16`);
    });
  }

  it('bfloat16 forward: y as accurate as the exact y rounded to bfloat16, and unbiased', () => {
    // a guard for any approximation in the 16-bit fast paths (the state and sums are f32): the
    // kernel's error must stay close to the output rounding's, with no drift of scale
    for (const c of [
      { batch: 2, dim: 64, seqlen: 1030, dstate: 16, B: 'step', C: 'step', z: true, D: true, deltaBias: true, softplus: true, initialState: true },
      { batch: 1, dim: 96, seqlen: 777, dstate: 11, B: 'step', C: 2, initialState: true },
    ] as ScanCase[]) {
      const { opts, ref } = build(c, 'bfloat16', 'cuda');
      const out = selectiveScan({ ...opts, returnLastState: true });
      const y = f64(out.y);
      const want = refSelectiveScan(ref);
      const rounded = f64(tensor(want.y, [c.batch, c.dim, c.seqlen], { dtype: 'bfloat16' }));
      const eKernel = relErr(y, want.y), eRound = relErr(rounded, want.y);
      expect(eKernel, `${label(c)}: rel err ${eKernel} against bf16 rounding's ${eRound}`).toBeLessThan(1.3 * eRound);
      // the least-squares slope of y against the exact y (a truncation bias of 2^-11 shows as ~1 - 3.5e-4)
      let num = 0, den = 0;
      for (let i = 0; i < y.length; i++) (num += y[i] * want.y[i]), (den += want.y[i] * want.y[i]);
      expect(Math.abs(num / den - 1), `${label(c)}: slope ${num / den}`).toBeLessThan(1e-4);
      expectClose(f64(out.lastState), want.lastState, 1e-5, 'lastState');
    }
  });

  it('backward is bitwise reproducible', () => {
    const c = cases[8];
    const data = randomData(c);
    const r = rng();
    const wy = randnArray(c.batch * c.dim * c.seqlen, r), wl = randnArray(c.batch * c.dim * c.dstate, r);
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      const a = backwardOn(c, dtype, 'cuda', data, wy, wl);
      const b = backwardOn(c, dtype, 'cuda', data, wy, wl);
      for (const g of gradNames) if (a[g]) expect(f64(b[g]), `${g} ${dtype}`).toEqual(f64(a[g]));
    }
  });

  it('the forward\'s checkpoints give the backward bitwise the same gradients, and the same y', () => {
    // packed: the sequential forward; not packed (few rows, per-step B/C): the time-parallel one
    const packedCase: ScanCase = { batch: 2, dim: 40, seqlen: 300, dstate: 16, B: 'step', C: 2, z: true, D: true, softplus: true, deltaBias: true, initialState: true, packed: [[100, 200], [300]] };
    // (seqlen 296, packed: whole 16-byte chunks, bulk-copied in 2-byte dtypes, 32-step chunks)
    // (dim 100, one C group: a partly filled last block)
    const partBlock: ScanCase = { ...packedCase, batch: 1, dim: 100, seqlen: 296, C: 'step', packed: [[96, 200]] };
    for (const c of [packedCase, { ...packedCase, packed: undefined }, { ...packedCase, packed: undefined, seqlen: 296 }, { ...packedCase, seqlen: 296, packed: [[96, 200], [296]] }, partBlock]) checkpointsAgree(c);
    const c = packedCase;
    const data = randomData(c);
    const { opts } = build(c, 'float32', 'cuda', data);
    const dy = tensor(randnArray(c.batch * c.dim * c.seqlen), [c.batch, c.dim, c.seqlen], { dtype: 'float32', device: 'cuda' });
    const wrong = tensor(new Float64Array(c.batch * c.dim * 3 * c.dstate), [c.batch, c.dim, 3, c.dstate], { dtype: 'float32', device: 'cuda' });
    expectCode(() => selectiveScanBackward({ ...opts, dy, checkpoints: wrong }), 'ERR_SHAPE', 'checkpoints');
  });

  it('lastStateOut: the last state written into a cache slot (also when it is the initial state)', () => {
    // few rows with per-step B/C: the time-parallel forward; dstate 32: the sequential one in time
    // segments, whose first segment reads the initial state while the last writes the last state
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      checkScanLastStateOut({ batch: 1, dim: 24, seqlen: 700, dstate: 16, B: 'step', C: 'step', z: true, D: true, softplus: true, deltaBias: true }, dtype, 'cuda');
      checkScanLastStateOut({ batch: 2, dim: 8, seqlen: 3000, dstate: 32, B: 'step', C: 'ti', z: true, D: true, softplus: true }, dtype, 'cuda');
    }
  });

  function checkpointsAgree(c: ScanCase): void {
    const data = randomData(c);
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      const { opts } = build(c, dtype, 'cuda', data);
      const plain = selectiveScan(opts);
      const withCk = selectiveScan({ ...opts, returnCheckpoints: true });
      expect(withCk.checkpoints!.shape).toEqual([c.batch, c.dim, Math.ceil(c.seqlen / 32), c.dstate]);
      expectClose(f64(withCk.y), f64(plain.y), dtype === 'float32' ? 1e-5 : 1e-2, `y with checkpoints ${dtype}`);
      const dy = tensor(randnArray(c.batch * c.dim * c.seqlen), [c.batch, c.dim, c.seqlen], { dtype, device: 'cuda' });
      const a = selectiveScanBackward({ ...opts, dy });
      const b = selectiveScanBackward({ ...opts, dy, checkpoints: withCk.checkpoints });
      for (const g of gradNames) if (a[g]) expect(f64(b[g]), `${g} ${dtype}${c.packed ? ' packed' : ''}`).toEqual(f64(a[g]));
    }
  }

  it('large delta*|A| in bf16 gives no NaN or Inf, forward and backward', () => {
    const c: ScanCase = { batch: 2, dim: 64, seqlen: 300, dstate: 16, z: true, D: true, softplus: true, deltaBias: true, deltaScale: 60 };
    const data = randomData(c);
    for (let i = 0; i < data.A.length; i++) data.A[i] *= 50;
    const { opts, ref } = build(c, 'bfloat16', 'cuda', data);
    const y = f64(selectiveScan(opts).y);
    expectNoNaN(y, 'y');
    expectClose(y, refSelectiveScan(ref).y, 1e-2, 'y');
    const grads = selectiveScanBackward({ ...opts, dy: tensor(randnArray(c.batch * c.dim * c.seqlen), [c.batch, c.dim, c.seqlen], { dtype: 'bfloat16', device: 'cuda' }) });
    for (const g of gradNames) if (grads[g]) expectNoNaN(f64(grads[g]), g);
  });

  it('long sequence (5000 steps) carries the state across chunks, with initialState continuation', () => {
    const c: ScanCase = { batch: 2, dim: 8, seqlen: 5000, dstate: 16, z: true, D: true, softplus: true, initialState: true };
    const { opts, ref } = build(c, 'float32', 'cuda');
    const out = selectiveScan({ ...opts, returnLastState: true });
    const want = refSelectiveScan(ref);
    expectClose(f64(out.y), want.y, 1e-4, 'y');
    expectClose(f64(out.lastState), want.lastState, 1e-4, 'lastState');
    // the same sequence in two calls (strided slices along seqlen), the second from the first's lastState
    const L1 = 2345;
    const part = (t: Tensor, a: number, b: number) => t.slice(-1, a, b);
    const first = selectiveScan({ ...opts, u: part(opts.u, 0, L1), delta: part(opts.delta, 0, L1), z: part(opts.z!, 0, L1), B: part(opts.B, 0, L1), C: part(opts.C, 0, L1), returnLastState: true });
    const second = selectiveScan({ ...opts, u: part(opts.u, L1, c.seqlen), delta: part(opts.delta, L1, c.seqlen), z: part(opts.z!, L1, c.seqlen), B: part(opts.B, L1, c.seqlen), C: part(opts.C, L1, c.seqlen), initialState: first.lastState, returnLastState: true });
    const y = f64(out.y), y1 = f64(first.y), y2 = f64(second.y);
    const joined = new Float64Array(y.length);
    const L = c.seqlen, L2 = L - L1;
    for (let r = 0; r < c.batch * c.dim; r++) {
      joined.set(y1.subarray(r * L1, (r + 1) * L1), r * L);
      joined.set(y2.subarray(r * L2, (r + 1) * L2), r * L + L1);
    }
    expectClose(joined, y, 1e-5, 'split scan');
    expectClose(f64(second.lastState), f64(out.lastState), 1e-5, 'split last state');
  });

  it('inputs on different devices are refused', () => {
    const c: ScanCase = { batch: 1, dim: 4, seqlen: 5, dstate: 3 };
    const { opts } = build(c, 'float32', 'cuda');
    const cpuA = opts.A.to('cpu');
    expectCode(() => selectiveScan({ ...opts, A: cpuA }), 'ERR_DEVICE', 'A');
  });
});
