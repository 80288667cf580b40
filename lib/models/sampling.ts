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

/** Indices of the k largest values (any order), by a size-k min-heap: O(n log k). */
function topKIndices(row: ArrayLike<number>, k: number): Int32Array {
  const heap = new Int32Array(k);
  let size = 0;
  const less = (a: number, b: number) => row[a] < row[b];
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < size && less(heap[l], heap[m])) m = l;
      if (r < size && less(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let v = 0; v < row.length; v++) {
    if (size < k) {
      heap[size] = v;
      for (let i = size++; i > 0; ) {
        const p = (i - 1) >> 1;
        if (!less(heap[i], heap[p])) break;
        [heap[i], heap[p]] = [heap[p], heap[i]];
        i = p;
      }
    } else if (row[v] > row[heap[0]]) {
      heap[0] = v;
      down(0);
    }
  }
  return heap;
}

/**
 * One token from softmax(row / temperature) restricted to the top-k tokens and then to the
 * nucleus of probability topP. Costs O(vocab), plus O(vocab log k) for top-k and, for top-p, a
 * sort of the few candidates whose weights straddle the nucleus' edge.
 */
export function sampleToken(row: ArrayLike<number>, o: SamplingOptions, random: () => number): number {
  if (o.temperature === 0) return argmax(row);
  const n = row.length;
  const cand: ArrayLike<number> = o.topK > 0 && o.topK < n ? topKIndices(row, o.topK) : { length: n };
  const at = (j: number) => (cand instanceof Int32Array ? cand[j] : j);
  let max = -Infinity;
  for (let j = 0; j < cand.length; j++) max = Math.max(max, row[at(j)]);
  const invT = 1 / o.temperature;
  const weight = new Float64Array(cand.length);
  let total = 0;
  for (let j = 0; j < cand.length; j++) total += weight[j] = Math.exp((row[at(j)] - max) * invT);
  if (o.topP >= 1) {
    let r = random() * total;
    for (let j = 0; j < cand.length; j++) {
      r -= weight[j];
      if (r < 0) return at(j);
    }
    return at(cand.length - 1);
  }
  // The nucleus is the shortest prefix of the candidates sorted by weight holding topP of the
  // mass. Bucket the weights by -log2 (eighths of an octave): whole buckets above the one where
  // the mass crosses topP are in, and only that bucket needs sorting.
  const NB = 256;
  const bucketOf = (w: number) => Math.min(NB - 1, Math.floor(-Math.log2(w) * 8));
  const mass = new Float64Array(NB);
  for (let j = 0; j < cand.length; j++) mass[bucketOf(weight[j])] += weight[j];
  const target = o.topP * total;
  let edge = 0;
  let above = 0;
  while (edge < NB - 1 && above + mass[edge] < target) above += mass[edge++];
  const kept: number[] = [];
  const border: number[] = [];
  for (let j = 0; j < cand.length; j++) {
    const b = bucketOf(weight[j]);
    if (b < edge) kept.push(j);
    else if (b === edge) border.push(j);
  }
  border.sort((a, b) => weight[b] - weight[a] || at(a) - at(b));
  let acc = above;
  for (const j of border) {
    kept.push(j);
    acc += weight[j];
    if (acc >= target) break;
  }
  let r = random() * acc;
  for (const j of kept) {
    r -= weight[j];
    if (r < 0) return at(j);
  }
  return at(kept[kept.length - 1]);
}
