/**
 * Tests against checkpoints made by Hugging Face transformers (scripts/make_fixtures.py writes
 * test/fixtures/<name>/ on a machine with torch): logits of fixed prompts (float64 reference run
 * of transformers' own PyTorch code, stored as float32) and greedy continuations.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../lib/models/load';
import type { LoadOptions } from '../../lib/models/load';
import { loadConfig } from '../../lib/models/config';
import { TensorStore } from '../../lib/models/safetensors';
import { ReferenceModel, RefWeights } from '../reference/mamba_model';
import { relErr } from '../helpers';

export const fixturesDir = process.env.STATESPACE_FIXTURES ?? path.resolve(__dirname, '..', 'fixtures');

export interface FixturePrompt {
  ids: number[];
  logits: string;
  greedy: number[];
  margins: number[];
}
export interface FixtureMeta {
  name: string;
  transformers: string;
  new_tokens: number;
  prompts: FixturePrompt[];
  batch: { ids: number[][]; logits: string };
  text: { prompt: string; ids: number[]; greedy: number[]; margins: number[]; completion: string } | null;
  notes: string[];
  /** Set by make_fixtures.py when that transformers version is known to compute this config wrongly. */
  invalid_reason?: string | null;
}

/** Fixtures usable as references (others are reported and skipped). */
function usableFixtures(): string[] {
  return listFixtures().filter((n) => {
    const why = readMeta(n).invalid_reason;
    if (why) console.log(`[fixtures] ${n} skipped: ${why}`);
    return !why;
  });
}

export function listFixtures(): string[] {
  if (!fs.existsSync(fixturesDir)) return [];
  return fs
    .readdirSync(fixturesDir)
    .filter((d) => fs.existsSync(path.join(fixturesDir, d, 'expected.json')))
    .sort();
}

export function readMeta(name: string): FixtureMeta {
  return JSON.parse(fs.readFileSync(path.join(fixturesDir, name, 'expected.json'), 'utf8'));
}

export async function expectedLogits(name: string, key: string): Promise<Float32Array> {
  const store = await TensorStore.open(path.join(fixturesDir, name, 'expected.safetensors'));
  return (await store.get(key)).data as Float32Array;
}

/** Number of leading greedy steps whose top-2 margin decides the token even with float32 noise. */
export function decidedSteps(margins: number[], tol = 1e-3): number {
  const k = margins.findIndex((m) => m < tol);
  return k < 0 ? margins.length : k;
}

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

export function defineFixtureTests(title: string, opts: LoadOptions = { device: 'cpu', dtype: 'float32' }, tol = 1e-4): void {
  const names = usableFixtures();
  if (!names.length) {
    console.log(`[${title}] skipped: no fixtures in ${fixturesDir} (run scripts/make_fixtures.py test/fixtures where torch and transformers are installed)`);
  }
  describe.skipIf(!names.length)(title, () => {
    for (const name of names) {
      it(`${name}: logits match transformers, greedy continuations match token for token`, async () => {
        const meta = readMeta(name);
        process.env.STATESPACE_TOKENIZER = 'builtin';
        const model = await loadModel(path.join(fixturesDir, name), opts);
        const V = model.config.vocabSize;
        for (const [i, p] of meta.prompts.entries()) {
          const want = await expectedLogits(name, p.logits);
          const t = model.forward([p.ids]);
          const got = await t.data();
          t.dispose();
          const e = relErr(got, want);
          expect(e, `${name} prompt ${i} (len ${p.ids.length}): rel err ${e}`).toBeLessThan(tol);
          const n = decidedSteps(p.margins, tol < 1e-3 ? 1e-3 : 0.5);
          const gen = await collect(model.generate(p.ids, { maxNewTokens: meta.new_tokens, temperature: 0, stop: [] }));
          expect(gen.slice(0, n), `${name} prompt ${i}: greedy (first ${n} decided steps)`).toEqual(p.greedy.slice(0, n));
          if (n === p.greedy.length) expect(gen).toEqual(p.greedy);
        }
        const bt = model.forward(meta.batch.ids);
        const bwant = await expectedLogits(name, meta.batch.logits);
        expect(relErr(await bt.data(), bwant)).toBeLessThan(tol);
        expect(bt.shape).toEqual([meta.batch.ids.length, meta.batch.ids[0].length, V]);
        bt.dispose();
        if (meta.text && model.tokenizer) {
          expect(model.encode(meta.text.prompt)).toEqual(meta.text.ids);
          if (decidedSteps(meta.text.margins, tol < 1e-3 ? 1e-3 : 0.5) === meta.text.greedy.length) {
            let text = '';
            for await (const s of model.generateText(meta.text.prompt, { maxNewTokens: meta.text.greedy.length, temperature: 0, stop: [] })) text += s;
            expect(text).toBe(meta.text.completion);
          }
        }
        model.dispose();
      });
    }
  });
}

/** The float64 reference itself against transformers (needs no ops). */
export function defineReferenceFixtureTests(): void {
  const names = usableFixtures();
  describe.skipIf(!names.length)('float64 reference against transformers fixtures', () => {
    for (const name of names) {
      it(`${name}: reference logits match (rel err < 1e-5)`, async () => {
        const dir = path.join(fixturesDir, name);
        const cfg = loadConfig(dir);
        const store = await TensorStore.openDir(dir);
        const W: RefWeights = {};
        for (const k of store.tensors.keys()) {
          const raw = await store.get(k);
          if (raw.dtype !== 'F32') throw new Error(`fixture ${name}: ${k} is ${raw.dtype}, expected F32`);
          W[k] = Float64Array.from(raw.data as Float32Array);
        }
        const ref = new ReferenceModel(cfg, W);
        const meta = readMeta(name);
        for (const p of meta.prompts) {
          const e = relErr(ref.forward(p.ids), await expectedLogits(name, p.logits));
          expect(e, `${name} len ${p.ids.length}: rel err ${e}`).toBeLessThan(1e-5);
          const n = decidedSteps(p.margins, 1e-6);
          expect(ref.greedy(p.ids, n)).toEqual(p.greedy.slice(0, n));
        }
      });
    }
  });
}
