/**
 * Next-token choice from a row of logits: greedy at temperature 0, otherwise softmax sampling
 * with temperature, top-k and top-p (nucleus) filtering, from a seeded generator so that a seed
 * reproduces a completion.
 */
import { argError } from '../errors';

export interface SamplingOptions {
  /** 0 (greedy) or more. */
  temperature: number;
  /** Keep the k most likely tokens (0: all). */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches topP (1: all). */
  topP: number;
}

export function checkSampling(o: SamplingOptions): void {
  if (!(Number.isFinite(o.temperature) && o.temperature >= 0)) throw argError(`temperature: expected a number >= 0, got ${o.temperature}`);
  if (!(Number.isInteger(o.topK) && o.topK >= 0)) throw argError(`topK: expected an integer >= 0, got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw argError(`topP: expected a number in (0, 1], got ${o.topP}`);
}

/** A seeded uniform [0, 1) generator (splitmix32: fast, well mixed, one 32-bit state). */
export function seededRandom(seed: number): () => number {
  let s = (Math.floor(seed) ^ Math.floor(seed / 2 ** 32)) >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

/** Index of the largest value (the first one on ties, as torch.argmax). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export function sampleToken(row: ArrayLike<number>, o: SamplingOptions, random: () => number): number {
  if (o.temperature === 0) return argmax(row);
  const n = row.length;
  let idx = Array.from({ length: n }, (_, i) => i);
  if (o.topK > 0 && o.topK < n) {
    idx.sort((a, b) => row[b] - row[a]);
    idx = idx.slice(0, o.topK);
  }
  let max = -Infinity;
  for (const i of idx) max = Math.max(max, row[i]);
  let probs = idx.map((i) => Math.exp((row[i] - max) / o.temperature));
  if (o.topP < 1) {
    const order = probs.map((_, j) => j).sort((a, b) => probs[b] - probs[a]);
    const total = probs.reduce((a, b) => a + b, 0);
    let acc = 0;
    const keep: number[] = [];
    for (const j of order) {
      keep.push(j);
      acc += probs[j] / total;
      if (acc >= o.topP) break;
    }
    idx = keep.map((j) => idx[j]);
    probs = keep.map((j) => probs[j]);
  }
  const total = probs.reduce((a, b) => a + b, 0);
  let r = random() * total;
  for (let j = 0; j < probs.length; j++) {
    r -= probs[j];
    if (r < 0) return idx[j];
  }
  return idx[idx.length - 1];
}
