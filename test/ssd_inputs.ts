/** Random SSD problems shared by the CPU and GPU tests: float64 arrays for the reference and tensors for the op. */
import { DType, Device, Tensor, ssdChunkScanBackward, tensor } from '../lib/index';
import { SsdChunkScanGradients, SsdChunkScanOptions } from '../lib/ops/ssd';
import { randnArray, rng, uniformArray, values } from './helpers';
import { SsdRefInputs } from './reference/ssd';

export interface SsdCase {
  batch: number;
  seqlen: number;
  heads: number;
  headdim: number;
  dstate: number;
  groups: number;
  z?: boolean;
  D?: 'head' | 'channel';
  dtBias?: boolean;
  dtSoftplus?: boolean;
  dtLimit?: [number, number];
  initialStates?: boolean;
  /** sequence boundaries (start positions > 0) for every row */
  seqStarts?: number[];
  /** range of raw dt */
  dtRange?: [number, number];
  /** range of A (negative) */
  aRange?: [number, number];
}

export function makeSsdProblem(c: SsdCase, r = rng()): SsdRefInputs {
  const { batch: b, seqlen: l, heads: h, headdim: p, dstate: n, groups: g } = c;
  const softplus = c.dtSoftplus ?? true;
  const dtRange = c.dtRange ?? (softplus ? [-4, -1] : [0.01, 0.3]);
  const aRange = c.aRange ?? [-4, -0.5];
  let seqIdx: Int32Array | undefined;
  if (c.seqStarts) {
    seqIdx = new Int32Array(b * l);
    for (let bi = 0; bi < b; bi++)
      for (let t = 0, s = 0; t < l; t++) {
        if (c.seqStarts.includes(t)) s++;
        seqIdx[bi * l + t] = s;
      }
  }
  return {
    batch: b, seqlen: l, heads: h, headdim: p, dstate: n, groups: g,
    x: randnArray(b * l * h * p, r),
    dt: uniformArray(b * l * h, dtRange[0], dtRange[1], r),
    A: uniformArray(h, aRange[0], aRange[1], r),
    B: randnArray(b * l * g * n, r, 0.5),
    C: randnArray(b * l * g * n, r, 0.5),
    D: c.D ? randnArray(c.D === 'head' ? h : h * p, r) : undefined,
    dPerChannel: c.D === 'channel',
    z: c.z ? randnArray(b * l * h * p, r) : undefined,
    dtBias: c.dtBias ? uniformArray(h, -0.5, 0.5, r) : undefined,
    dtSoftplus: softplus,
    dtLimit: c.dtLimit,
    initialStates: c.initialStates ? randnArray(b * h * p * n, r, 0.5) : undefined,
    seqIdx,
  };
}

/** Op options for a problem: activations in `dtype`, parameters in float32 (float64 when dtype is). */
export function ssdTensors(pr: SsdRefInputs, dtype: DType, device: Device = 'cpu', chunkSize?: number): SsdChunkScanOptions {
  const { batch: b, seqlen: l, heads: h, headdim: p, dstate: n, groups: g } = pr;
  const par: DType = dtype === 'float64' ? 'float64' : 'float32';
  const t = (a: Float64Array, shape: number[], d: DType) => tensor(a, shape, { dtype: d, device });
  const o: SsdChunkScanOptions = {
    x: t(pr.x, [b, l, h, p], dtype),
    dt: t(pr.dt, [b, l, h], dtype),
    A: t(pr.A, [h], par),
    B: t(pr.B, [b, l, g, n], dtype),
    C: t(pr.C, [b, l, g, n], dtype),
    dtSoftplus: pr.dtSoftplus,
  };
  if (chunkSize !== undefined) o.chunkSize = chunkSize;
  if (pr.D) o.D = t(pr.D, pr.dPerChannel ? [h, p] : [h], par);
  if (pr.z) o.z = t(pr.z, [b, l, h, p], dtype);
  if (pr.dtBias) o.dtBias = t(pr.dtBias, [h], par);
  if (pr.dtLimit) o.dtLimit = pr.dtLimit;
  if (pr.initialStates) o.initialStates = t(pr.initialStates, [b, h, p, n], par);
  if (pr.seqIdx) o.seqIdx = tensor(pr.seqIdx, [b, l], { dtype: 'int32', device });
  return o;
}

/** The input values as the op sees them (rounded to `dtype`), so references compare like with like. */
export function roundedTo(pr: SsdRefInputs, dtype: DType): SsdRefInputs {
  if (dtype === 'float64' || dtype === 'float32') return pr;
  const round = (a: Float64Array | undefined) =>
    a ? Float64Array.from(tensor(a, [a.length], { dtype }).dataSync()) : undefined;
  return { ...pr, x: round(pr.x)!, dt: round(pr.dt)!, B: round(pr.B)!, C: round(pr.C)!, z: round(pr.z) };
}

export function disposeAll(o: object): void {
  for (const v of Object.values(o)) if (v instanceof Tensor) v.dispose();
}

/** Every gradient of ssdChunkScanBackward for upstream gradients dy (shaped like x) and dFinalStates, as float64 arrays. */
export async function ssdGrads(o: SsdChunkScanOptions, dy: Float64Array, dfin: Float64Array, dtype: DType, device: Device): Promise<Record<string, Float64Array>> {
  const [b, l, h, p] = o.x.shape;
  const n = o.B.shape[3];
  const g = ssdChunkScanBackward({
    ...o,
    dy: tensor(dy, [b, l, h, p], { dtype, device }),
    dFinalStates: tensor(dfin, [b, h, p, n], { dtype: 'float32', device }),
  });
  const out: Record<string, Float64Array> = {};
  for (const [k, t] of Object.entries(g as SsdChunkScanGradients)) out[k] = await values(t);
  return out;
}
