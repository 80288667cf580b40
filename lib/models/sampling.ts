/**
 * Next-token choice from a row of logits: greedy at temperature 0, otherwise softmax sampling
 * with temperature, top-k and top-p (nucleus) filtering, from a seeded generator so that a seed
 * reproduces a completion (on either device: the generator stays on the host).
 */
import { argError } from '../errors';
import { sampleTokens } from '../ops/sampling';
import { tensor, tidy } from '../tensor';

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

/**
 * One token from softmax(row / temperature) restricted to the top-k tokens and then to the
 * nucleus of probability topP: sampleTokens' rule (lib/ops/sampling.ts) on the CPU, with one
 * draw of `random` (none at temperature 0). The decode steps of a model apply the same rule where
 * their logits are (CausalLM.stepSample).
 */
export function sampleToken(row: ArrayLike<number>, o: SamplingOptions, random: () => number): number {
  if (o.temperature === 0) return argmax(row);
  const u = random();
  return tidy(() => {
    const t = sampleTokens({
      logits: tensor(Float32Array.from(row), [1, row.length]),
      temperature: tensor(Float32Array.of(o.temperature), [1]),
      topK: tensor(Int32Array.of(o.topK), [1], { dtype: 'int32' }),
      topP: tensor(Float32Array.of(o.topP), [1]),
      uniform: tensor(Float32Array.of(u), [1]),
    });
    return (t.dataSync() as Int32Array)[0];
  });
}
