/**
 * Random selective-scan problems for the CPU and GPU tests: float64 data, the matching tensors
 * in a chosen dtype/device, and the float64 reference inputs built from the values the tensors
 * actually hold (so f16/bf16 rounding of the inputs is not counted as kernel error).
 */
import { DType, Device, Tensor, tensor } from '../lib/index';
import type { SelectiveScanOptions } from '../lib/index';
import { randnArray, rng, uniformArray } from './helpers';
import { RefScanInputs } from './reference/selective_scan';

/** 'ti' = (dim, dstate); 'step' = (batch, dstate, seqlen); a number = that many groups (4-D form). */
export type BCForm = 'ti' | 'step' | number;

export interface ScanCase {
  batch: number;
  dim: number;
  seqlen: number;
  dstate: number;
  B?: BCForm;
  C?: BCForm;
  z?: boolean;
  D?: boolean;
  deltaBias?: boolean;
  softplus?: boolean;
  initialState?: boolean;
  /** Sequence lengths packed into each row (must sum to seqlen). */
  packed?: number[][];
  /** Scale of delta (large values stress exp(delta A)). */
  deltaScale?: number;
}

export interface BuiltCase {
  opts: SelectiveScanOptions;
  ref: RefScanInputs;
  data: Record<string, Float64Array>;
}

export function bcShape(form: BCForm, c: ScanCase): number[] {
  if (form === 'ti') return [c.dim, c.dstate];
  if (form === 'step') return [c.batch, c.dstate, c.seqlen];
  return [c.batch, form, c.dstate, c.seqlen];
}

const groupsOf = (form: BCForm) => (form === 'ti' ? 0 : form === 'step' ? 1 : form);
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

export function seqIdxOf(c: ScanCase): Int32Array | undefined {
  if (!c.packed) return undefined;
  const out = new Int32Array(c.batch * c.seqlen);
  c.packed.forEach((lens, b) => {
    let t = 0;
    lens.forEach((len, k) => {
      for (let i = 0; i < len; i++) out[b * c.seqlen + t++] = k;
    });
    if (t !== c.seqlen) throw new Error('packed lengths must sum to seqlen');
  });
  return out;
}

/** Fresh random data for a case (float64). */
export function randomData(c: ScanCase, seed?: number): Record<string, Float64Array> {
  const r = rng(seed);
  const n = c.batch * c.dim * c.seqlen;
  const bForm = c.B ?? 'step', cForm = c.C ?? 'step';
  const d: Record<string, Float64Array> = {
    u: randnArray(n, r),
    delta: c.softplus ? randnArray(n, r, c.deltaScale ?? 1).map((v) => v - 1) : uniformArray(n, 0.01, c.deltaScale ?? 0.3, r),
    A: uniformArray(c.dim * c.dstate, -2, -0.1, r),
    B: randnArray(prod(bcShape(bForm, c)), r),
    C: randnArray(prod(bcShape(cForm, c)), r),
  };
  if (c.D) d.D = randnArray(c.dim, r);
  if (c.z) d.z = randnArray(n, r);
  if (c.deltaBias) d.deltaBias = uniformArray(c.dim, c.softplus ? -1 : 0, c.softplus ? 0.5 : 0.1, r);
  if (c.initialState) d.initialState = randnArray(c.batch * c.dim * c.dstate, r);
  return d;
}

/** Tensors for the data in `dtype` on `device` (A, D, deltaBias, states f32, or f64 with f64). */
export function build(c: ScanCase, dtype: DType, device: Device, data = randomData(c)): BuiltCase {
  const wt: DType = dtype === 'float64' ? 'float64' : 'float32';
  const bForm = c.B ?? 'step', cForm = c.C ?? 'step';
  const io = [c.batch, c.dim, c.seqlen];
  const mk = (name: string, shape: number[], dt: DType) => tensor(data[name], shape, { dtype: dt, device });
  const opts: SelectiveScanOptions = {
    u: mk('u', io, dtype),
    delta: mk('delta', io, dtype),
    A: mk('A', [c.dim, c.dstate], wt),
    B: mk('B', bcShape(bForm, c), dtype),
    C: mk('C', bcShape(cForm, c), dtype),
    deltaSoftplus: !!c.softplus,
  };
  if (data.D) opts.D = mk('D', [c.dim], wt);
  if (data.z) opts.z = mk('z', io, dtype);
  if (data.deltaBias) opts.deltaBias = mk('deltaBias', [c.dim], wt);
  if (data.initialState) opts.initialState = mk('initialState', [c.batch, c.dim, c.dstate], wt);
  const seqIdx = seqIdxOf(c);
  if (seqIdx) opts.seqIdx = tensor(seqIdx, [c.batch, c.seqlen], { dtype: 'int32', device });
  const held = (t?: Tensor) => (t ? Float64Array.from(t.dataSync()) : undefined);
  const ref: RefScanInputs = {
    batch: c.batch,
    dim: c.dim,
    seqlen: c.seqlen,
    dstate: c.dstate,
    u: held(opts.u)!,
    delta: held(opts.delta)!,
    A: held(opts.A)!,
    B: held(opts.B)!,
    bGroups: groupsOf(bForm),
    C: held(opts.C)!,
    cGroups: groupsOf(cForm),
    D: held(opts.D),
    z: held(opts.z),
    deltaBias: held(opts.deltaBias),
    deltaSoftplus: !!c.softplus,
    initialState: held(opts.initialState),
    seqIdx,
  };
  return { opts, ref, data };
}
