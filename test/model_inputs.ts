/** Input construction for the model-op tests: a tensor plus the float64 values it really holds. */
import { DType, Device, Tensor, tensor } from '../lib/index';
import { randnArray, rng, uniformArray } from './helpers';

export interface Input {
  t: Tensor;
  /** The stored values (after rounding to the tensor's dtype), for the float64 reference. */
  v: Float64Array;
}

export function fromValues(data: Float64Array, shape: number[], dtype: DType = 'float32', device: Device = 'cpu'): Input {
  const t = tensor(data, shape, { dtype, device });
  return { t, v: Float64Array.from(t.dataSync()) };
}

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function randnInput(shape: number[], dtype: DType = 'float32', device: Device = 'cpu', scale = 1, r = rng()): Input {
  return fromValues(randnArray(count(shape), r, scale), shape, dtype, device);
}

export function uniformInput(shape: number[], lo: number, hi: number, dtype: DType = 'float32', device: Device = 'cpu', r = rng()): Input {
  return fromValues(uniformArray(count(shape), lo, hi, r), shape, dtype, device);
}

/** (batch, seqlen) int32 sequence ids: 1 to `maxSeqs` runs per row, increasing. */
export function seqIdxInput(batch: number, seqlen: number, maxSeqs: number, device: Device = 'cpu', r = rng()): Input {
  const ids = new Int32Array(batch * seqlen);
  for (let b = 0; b < batch; b++) {
    const cuts = new Set<number>();
    const n = 1 + Math.floor(r() * maxSeqs);
    for (let i = 1; i < n; i++) cuts.add(1 + Math.floor(r() * Math.max(1, seqlen - 1)));
    let id = Math.floor(r() * 3);
    for (let t = 0; t < seqlen; t++) {
      if (cuts.has(t)) id++;
      ids[b * seqlen + t] = id;
    }
  }
  const t = tensor(ids, [batch, seqlen], { device });
  return { t, v: Float64Array.from(ids) };
}
