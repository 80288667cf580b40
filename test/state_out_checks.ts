/**
 * The in-place state outputs of the prefill ops (selectiveScan's lastStateOut, causalConv1d's
 * finalStatesOut), shared by the CPU and GPU tests: the state lands in a slot of a larger cache
 * bitwise equal to the returned state of a plain call, the rest of the cache is untouched, y is
 * unchanged, the slot may also be the call's initial state (continuing in place), and malformed
 * outputs are refused.
 */
import { expect } from 'vitest';
import { DType, Device, Tensor, causalConv1d, copyInto, selectiveScan, tensor } from '../lib/index';
import { expectCode, randnArray, rng } from './helpers';
import { build, ScanCase } from './selective_scan_case';

const f64 = (t?: Tensor) => (t ? Float64Array.from(t.dataSync()) : new Float64Array(0));

/** A (slots, ...rest) cache of random values and the view of slots [1, 1 + n). */
function cacheWithSlot(n: number, rest: number[], dtype: DType, device: Device) {
  const slots = n + 2;
  const cache = tensor(randnArray(slots * rest.reduce((a, b) => a * b, 1), rng()), [slots, ...rest], { dtype, device });
  return { cache, before: f64(cache), slot: cache.slice(0, 1, 1 + n) };
}

/** The cache outside the slot is as it was; the slot holds `want`. */
function expectSlot(cache: Tensor, before: Float64Array, n: number, want: Float64Array, what: string): void {
  const now = f64(cache);
  const per = now.length / (n + 2);
  expect(now.subarray(0, per), `${what}: slot before`).toEqual(before.subarray(0, per));
  expect(now.subarray((n + 1) * per), `${what}: slot after`).toEqual(before.subarray((n + 1) * per));
  expect(now.subarray(per, (n + 1) * per), `${what}: slot`).toEqual(want);
}

export function checkScanLastStateOut(c: ScanCase, dtype: DType, device: Device): void {
  const { opts } = build({ ...c, initialState: true }, dtype, device);
  const wt: DType = dtype === 'float64' ? 'float64' : 'float32';
  const plain = selectiveScan({ ...opts, returnLastState: true });
  const want = f64(plain.lastState);

  const a = cacheWithSlot(c.batch, [c.dim, c.dstate], wt, device);
  const r = selectiveScan({ ...opts, lastStateOut: a.slot });
  expect(f64(r.y), 'y').toEqual(f64(plain.y));
  expect(f64(r.lastState), 'returned lastState').toEqual(want);
  expectSlot(a.cache, a.before, c.batch, want, 'lastStateOut');

  // continuing in place: the slot is both the initial state and the output
  const b = cacheWithSlot(c.batch, [c.dim, c.dstate], wt, device);
  copyInto(b.slot, opts.initialState!);
  const before = f64(b.cache);
  const r2 = selectiveScan({ ...opts, initialState: b.slot, lastStateOut: b.slot });
  expect(f64(r2.y), 'y (slot as initialState)').toEqual(f64(plain.y));
  expectSlot(b.cache, before, c.batch, want, 'lastStateOut = initialState');

  const kept = f64(a.cache);
  const bad = (lastStateOut: Tensor) => () => selectiveScan({ ...opts, lastStateOut });
  expectCode(bad(a.cache), 'ERR_SHAPE', 'lastStateOut');
  expectCode(bad(tensor(want, [c.batch, c.dim, c.dstate], { dtype: 'bfloat16', device })), 'ERR_DTYPE', 'lastStateOut');
  const wide = tensor(randnArray(c.batch * c.dstate * c.dim), [c.batch, c.dstate, c.dim], { dtype: wt, device });
  expectCode(bad(wide.transpose(1, 2)), 'ERR_INVALID_ARG', 'lastStateOut', 'contiguous');
  if (device !== 'cpu') expectCode(bad(tensor(want, [c.batch, c.dim, c.dstate], { dtype: wt })), 'ERR_DEVICE', 'lastStateOut');
  expect(f64(a.cache), 'refused calls leave the cache untouched').toEqual(kept);
}

export function checkConvFinalStatesOut(shape: { batch: number; dim: number; seqlen: number; width: number }, dtype: DType, device: Device): void {
  const { batch, dim, seqlen, width: W } = shape;
  const r = rng();
  const mk = (s: number[], dt: DType) => tensor(randnArray(s.reduce((p, q) => p * q, 1), r), s, { dtype: dt, device });
  const x = mk([batch, dim, seqlen], dtype);
  const weight = mk([dim, W], 'float32');
  const bias = mk([dim], 'float32');
  const init = mk([batch, dim, W - 1], dtype);
  const plain = causalConv1d({ x, weight, bias, activation: 'silu', initialStates: init, returnFinalStates: true });
  const want = f64(plain.finalStates);

  const a = cacheWithSlot(batch, [dim, W - 1], dtype, device);
  const out = causalConv1d({ x, weight, bias, activation: 'silu', initialStates: init, finalStatesOut: a.slot });
  expect(f64(out.y), 'y').toEqual(f64(plain.y));
  expect(f64(out.finalStates), 'returned finalStates').toEqual(want);
  expectSlot(a.cache, a.before, batch, want, 'finalStatesOut');

  // continuing in place (with seqlen < width-1 the final states come partly from the initial ones)
  const b = cacheWithSlot(batch, [dim, W - 1], dtype, device);
  copyInto(b.slot, init);
  const before = f64(b.cache);
  const out2 = causalConv1d({ x, weight, bias, activation: 'silu', initialStates: b.slot, finalStatesOut: b.slot });
  expect(f64(out2.y), 'y (slot as initialStates)').toEqual(f64(plain.y));
  expectSlot(b.cache, before, batch, want, 'finalStatesOut = initialStates');

  const kept = f64(a.cache);
  const bad = (finalStatesOut: Tensor) => () => causalConv1d({ x, weight, finalStatesOut });
  expectCode(bad(a.cache), 'ERR_SHAPE', 'finalStatesOut');
  expectCode(bad(mk([batch, dim, W - 1], dtype === 'float32' ? 'bfloat16' : 'float32')), 'ERR_DTYPE', 'finalStatesOut');
  if (W > 2) expectCode(bad(mk([batch, W - 1, dim], dtype).transpose(1, 2)), 'ERR_INVALID_ARG', 'finalStatesOut', 'contiguous');
  if (device !== 'cpu') expectCode(bad(tensor(want, [batch, dim, W - 1], { dtype })), 'ERR_DEVICE', 'finalStatesOut');
  expect(f64(a.cache), 'refused calls leave the cache untouched').toEqual(kept);
}
