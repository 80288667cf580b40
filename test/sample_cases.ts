/**
 * sampleTokens cases shared by the CPU and CUDA tests: random and tied logits (small integers:
 * the top-k / top-p cuts fall inside a run of equal logits), -Infinity entries, NaN / +Infinity
 * rows, greedy rows, every filter, bf16 / f16 logits, a vocabulary-sized row; each draw checked
 * against the float64 rule (reference/sampling.ts), the distribution by many draws of one row,
 * and repeat calls bit for bit.
 */
import { expect, it } from 'vitest';
import { DType, Device, Tensor, sampleTokens, tensor } from '../lib/index';
import { rng } from './helpers';
import { SampleRowParams, argmaxRef, sampleAllowed, sampleProbabilities } from './reference/sampling';

/** Logits of a case, exactly representable in bf16 (kind 0: 1/64 steps; 1: integers 0..4, many ties). */
function logitRows(kind: number, R: number, n: number, r: () => number): Float64Array {
  const v = new Float64Array(R * n);
  for (let i = 0; i < v.length; i++) v[i] = kind === 0 ? Math.round((r() * 2 - 1) * 512) / 64 : Math.floor(r() * 5);
  for (let row = 0; row < R; row++) {
    const at = (i: number) => row * n + i;
    if (row % 6 === 2 && n > 3) v[at(1)] = v[at(n - 2)] = -Infinity;
    if (row % 13 === 5) v[at(Math.floor(n / 3))] = NaN;
    if (row % 17 === 7) v[at(n - 1)] = Infinity;
  }
  return v;
}

function rowParams(R: number, n: number, r: () => number): SampleRowParams[] {
  return Array.from({ length: R }, (_, i) => ({
    temperature: i % 9 === 0 ? 0 : [0.3, 0.8, 1, 1.7][i % 4],
    topK: [0, 1, 3, 40, n, n + 5][i % 6],
    topP: [1, 0.9, 0.5, 1e-6, 0.999][i % 5],
    uniform: i % 11 === 3 ? 0 : i % 11 === 4 ? 0.99999994 : r(),
  }));
}

function paramTensors(ps: SampleRowParams[], device: Device, shape = [ps.length]) {
  return {
    temperature: tensor(Float32Array.from(ps, (p) => p.temperature), shape, { device }),
    topK: tensor(Int32Array.from(ps, (p) => p.topK), shape, { dtype: 'int32', device }),
    topP: tensor(Float32Array.from(ps, (p) => p.topP), shape, { device }),
    uniform: tensor(Float32Array.from(ps, (p) => p.uniform), shape, { device }),
  };
}

const f32 = (v: number) => Math.fround(v);

/** Every draw of random cases is one the float64 rule allows; greedy rows are argmax's choice. */
export async function checkSampleDraws(device: Device, dtype: DType): Promise<void> {
  const r = rng();
  // On an H100 (132 SMs) the CUDA kernel splits the larger rows over clusters of 16 blocks (8 x
  // 50280, 2 x 70001), 8 (16 x 20000) and 4 (33 x 5000); 70 x 60001 runs a block a row with the
  // keys read from L2 (they do not fit in shared memory; a CUDA-only case); the small rows a block each.
  const cases: Array<[number, number]> = [[1, 1], [40, 7], [30, 300], [8, 50280], [2, 70001], [16, 20000], [33, 5000]];
  if (device !== 'cpu') cases.push([70, 60001]);
  for (const [R, n] of cases) {
    for (const kind of [0, 1]) {
      const ps = rowParams(R, n, r);
      const logits = tensor(Float32Array.from(logitRows(kind, R, n, r)), [R, n], { device }).astype(dtype);
      const v = Float64Array.from(await logits.astype('float32').data()); // the values as stored
      const got = await sampleTokens({ logits, ...paramTensors(ps, device) }).data();
      const greedy = argmaxRef(v, R, n);
      for (let i = 0; i < R; i++) {
        const row = v.subarray(i * n, (i + 1) * n);
        // the rule with the parameters as the kernel sees them (float32)
        const p = { ...ps[i], temperature: f32(ps[i].temperature), topP: f32(ps[i].topP), uniform: f32(ps[i].uniform) };
        if (!(p.temperature > 0)) expect(got[i], `${device} ${dtype} ${R}x${n} row ${i} greedy`).toBe(greedy[i]);
        expect(sampleAllowed(row, p, got[i]), `${device} ${dtype} ${R}x${n} kind ${kind} row ${i}: token ${got[i]} for ${JSON.stringify(p)}`).toBe(true);
      }
      // the same inputs give the same tokens; without topK / topP tensors, no filtering
      const again = await sampleTokens({ logits, ...paramTensors(ps, device) }).data();
      expect(Array.from(again)).toEqual(Array.from(got));
      const { temperature, uniform } = paramTensors(ps, device);
      const plain = await sampleTokens({ logits, temperature, uniform }).data();
      for (let i = 0; i < R; i++) {
        const p = { ...ps[i], topK: 0, topP: 1, temperature: f32(ps[i].temperature), uniform: f32(ps[i].uniform) };
        expect(sampleAllowed(v.subarray(i * n, (i + 1) * n), p, plain[i]), `${device} ${dtype} unfiltered row ${i}`).toBe(true);
      }
    }
  }
}

/**
 * Cuts inside runs of tied logits: top-k splits the run of 1s (keeping indices 0 and 1), then top-p
 * keeps the whole run of 2s, which sits at higher indices than top-k's cut.
 */
export async function checkSampleTiedCuts(device: Device, dtype: DType): Promise<void> {
  const row = [1, 1, 1, 1, 2, 2, 2, 0];
  const us = [0, 0.1, 0.34, 0.5, 0.9, 0.99999994];
  for (const [topK, topP, allowed] of [
    [5, 0.7, [4, 5, 6]],
    [5, 1, [0, 1, 4, 5, 6]],
    [6, 0.9, [0, 1, 2, 4, 5, 6]],
    [0, 0.4, [4, 5]],
  ] as Array<[number, number, number[]]>) {
    const R = us.length;
    const logits = tensor(Float32Array.from({ length: R * row.length }, (_, i) => row[i % row.length]), [R, row.length], { device }).astype(dtype);
    const ps = us.map((uniform) => ({ temperature: 1, topK, topP, uniform }));
    const got = await sampleTokens({ logits, ...paramTensors(ps, device) }).data();
    for (let i = 0; i < R; i++) {
      const p = { ...ps[i], topP: f32(topP), uniform: f32(us[i]) };
      expect(allowed, `${device} ${dtype} topK ${topK} topP ${topP} u ${us[i]}: token ${got[i]}`).toContain(got[i]);
      expect(sampleAllowed(row, p, got[i]), `${device} ${dtype} topK ${topK} topP ${topP} u ${us[i]}`).toBe(true);
    }
  }
}

/** Many draws of one row: the frequencies follow the rule's probabilities (within 5 sigma). */
export async function checkSampleDistribution(device: Device): Promise<void> {
  const r = rng();
  const n = 24, R = 40000;
  const row = Float64Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 1.5 : Math.round((r() * 2 - 1) * 128) / 64));
  for (const o of [
    { temperature: 1, topK: 0, topP: 1 },
    { temperature: 0.7, topK: 8, topP: 1 },
    { temperature: 1.3, topK: 0, topP: 0.6 },
    { temperature: 0.9, topK: 12, topP: 0.8 },
  ]) {
    const logits = tensor(Float32Array.from({ length: R * n }, (_, i) => row[i % n]), [R, n], { device });
    const ps = Array.from({ length: R }, () => ({ ...o, uniform: r() }));
    const got = await sampleTokens({ logits, ...paramTensors(ps, device) }).data();
    const count = new Float64Array(n);
    for (const t of got) count[t]++;
    const p = sampleProbabilities(row, o);
    for (let i = 0; i < n; i++) {
      const sd = Math.sqrt(R * p[i] * (1 - p[i]));
      expect(Math.abs(count[i] - R * p[i]), `${device} ${JSON.stringify(o)} token ${i}: ${count[i]} draws, p ${p[i]}`).toBeLessThanOrEqual(5 * sd + 1e-9);
    }
  }
}

/** Shapes: (..., n) logits with per-row parameters of shape (...); a strided view of logits. */
export async function checkSampleShapes(device: Device): Promise<void> {
  const r = rng();
  const v = logitRows(0, 6, 40, r);
  const ps = rowParams(6, 40, r);
  const x = tensor(Float32Array.from(v), [2, 3, 40], { device });
  const y: Tensor = sampleTokens({ logits: x, ...paramTensors(ps, device, [2, 3]) });
  expect(y.shape).toEqual([2, 3]);
  expect(y.dtype).toBe('int32');
  const flat = await sampleTokens({ logits: x.reshape([6, 40]), ...paramTensors(ps, device) }).data();
  expect(Array.from(await y.data())).toEqual(Array.from(flat));
  const sl = x.slice(2, 3, 40);
  const got = await sampleTokens({ logits: sl, ...paramTensors(ps, device, [2, 3]) }).data();
  for (let i = 0; i < 6; i++) {
    const row = Float64Array.from({ length: 37 }, (_, j) => v[i * 40 + 3 + j]);
    const p = { ...ps[i], temperature: f32(ps[i].temperature), topP: f32(ps[i].topP), uniform: f32(ps[i].uniform) };
    expect(sampleAllowed(row, p, got[i]), `strided row ${i}`).toBe(true);
  }
}

/** The cases above as tests of one device (inside its describe block), logits in `dtypes`. */
export function defineSampleTests(device: Device, dtypes: readonly DType[]): void {
  for (const dtype of dtypes) {
    it(`${dtype}: every draw one the float64 rule allows (temperature, top-k, top-p, ties, -inf, NaN, +inf, greedy rows), repeatable`, async () => {
      await checkSampleDraws(device, dtype);
    });
  }
  it('cuts inside runs of tied logits (top-k, then top-p above its cut)', async () => {
    for (const dtype of ['float32', 'bfloat16'] as const) await checkSampleTiedCuts(device, dtype);
  });
  it('frequencies of many draws follow the probabilities of the kept set', async () => {
    await checkSampleDistribution(device);
  });
  it('(..., n) logits with (...) parameters; strided logits', async () => {
    await checkSampleShapes(device);
  });
}
