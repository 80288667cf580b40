import { describe, expect, it } from 'vitest';
import { argmax, sampleToken, seededRandom } from '../../lib/models/sampling';
import { sampleTokens } from '../../lib/ops/sampling';
import { full, tensor } from '../../lib/tensor';

const logits = (probs: number[]) => probs.map(Math.log);
/** Frequencies of `draws` samples of the row: sampleToken's rule (sampleTokens) on `draws` copies in one call, plus a few through sampleToken itself that must agree. */
function histogram(row: number[], o: { temperature: number; topK: number; topP: number }, draws: number, seed = 5): number[] {
  const rnd = seededRandom(seed);
  const u = Float32Array.from({ length: draws }, () => rnd());
  const t = sampleTokens({
    logits: tensor(Float32Array.from({ length: draws * row.length }, (_, i) => row[i % row.length]), [draws, row.length]),
    temperature: full([draws], o.temperature),
    topK: full([draws], o.topK, { dtype: 'int32' }),
    topP: full([draws], o.topP),
    uniform: tensor(u, [draws]),
  }).dataSync() as Int32Array;
  for (let i = 0; i < 20; i++) expect(sampleToken(row, o, () => u[i])).toBe(t[i]);
  const h = new Array(row.length).fill(0);
  for (const k of t) h[k]++;
  return h.map((c) => c / draws);
}

describe('sampling', () => {
  it('is greedy at temperature 0 and with topK 1', () => {
    const row = [0.1, 2.5, -1, 2.4, 2.5];
    expect(argmax(row)).toBe(1);
    expect(sampleToken(row, { temperature: 0, topK: 0, topP: 1 }, Math.random)).toBe(1);
    for (let i = 0; i < 50; i++) expect(sampleToken(row, { temperature: 1.5, topK: 1, topP: 1 }, Math.random)).toBe(1);
  });

  it('draws from softmax(logits / T)', () => {
    const p = [0.5, 0.25, 0.15, 0.1];
    const h = histogram(logits(p), { temperature: 1, topK: 0, topP: 1 }, 40000);
    h.forEach((f, i) => expect(Math.abs(f - p[i])).toBeLessThan(0.01));
    // T = 0.5 squares the probabilities (renormalised)
    const sq = p.map((x) => x * x);
    const z = sq.reduce((a, b) => a + b);
    const h2 = histogram(logits(p), { temperature: 0.5, topK: 0, topP: 1 }, 40000);
    h2.forEach((f, i) => expect(Math.abs(f - sq[i] / z)).toBeLessThan(0.01));
  });

  it('restricts to the top k and to the nucleus', () => {
    const p = [0.1, 0.6, 0.05, 0.25];
    const hk = histogram(logits(p), { temperature: 1, topK: 2, topP: 1 }, 20000);
    expect(hk[0] + hk[2]).toBe(0);
    expect(Math.abs(hk[1] - 0.6 / 0.85)).toBeLessThan(0.015);
    expect(histogram(logits(p), { temperature: 1, topK: 0, topP: 0.5 }, 2000)).toEqual([0, 1, 0, 0]);
    const h8 = histogram(logits(p), { temperature: 1, topK: 0, topP: 0.8 }, 20000);
    expect(h8[0] + h8[2]).toBe(0);
    expect(Math.abs(h8[1] - 0.6 / 0.85)).toBeLessThan(0.015);
    // top-p over many tiny tail tokens still sums correctly (the all-candidates fallback)
    const flat = new Array(1000).fill(0);
    const hf = histogram(flat, { temperature: 1, topK: 0, topP: 0.5 }, 5000);
    expect(hf.filter((f) => f > 0).length).toBeGreaterThan(400);
    expect(hf.filter((f) => f > 0).length).toBeLessThanOrEqual(500);
  });
});
