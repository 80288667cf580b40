/**
 * Mamba / Mamba-2 models against the float64 reference (test/reference/mamba_model.ts), on tiny
 * random checkpoints written by the test: forward logits, greedy decoding with recurrent state,
 * batched generation, text generation, cancellation, and broken checkpoints.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../lib/models/load';
import { tensor, tidy } from '../../lib/tensor';
import { sampleTokens } from '../../lib/ops/sampling';
import { ReferenceModel } from '../reference/mamba_model';
import { expectNoNaN, relErr } from '../helpers';
import { TensorStore } from '../../lib/models/safetensors';
import { writeSharded } from './safetensors_writer';
import { TinySpec, writeTinyCheckpoint } from './tiny_checkpoint';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ss-model-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
async function tiny(spec: TinySpec) {
  const ck = writeTinyCheckpoint(path.join(tmp, `m${n++}`), spec);
  const model = await loadModel(ck.dir, { device: 'cpu', dtype: 'float32', maxBatch: 6 });
  return { ...ck, model, ref: new ReferenceModel(ck.config, ck.weights) };
}

const randomIds = (len: number, V: number) => Array.from({ length: len }, () => Math.floor(Math.random() * V));

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

/** Greedy tokens must agree until the reference's top-2 gap gets too small to decide in f32. */
function expectSameGreedy(got: number[], ref: ReferenceModel, prompt: number[], what: string) {
  const st = ref.newState();
  let logits = new Float64Array(0);
  for (const id of prompt) logits = ref.step(st, id);
  for (let i = 0; i < got.length; i++) {
    const sorted = Array.from(logits).map((v, k) => [v, k]).sort((a, b) => b[0] - a[0]);
    if (sorted[0][0] - sorted[1][0] < 1e-4 * Math.max(1, Math.abs(sorted[0][0]))) return; // a near tie: stop comparing
    expect(got[i], `${what}: token ${i}`).toBe(sorted[0][1]);
    logits = ref.step(st, got[i]);
  }
}

const specs: Array<[string, TinySpec]> = [
  ['mamba', { architecture: 'mamba' }],
  ['mamba, biases, kernel 3, untied', { architecture: 'mamba', useBias: true, kernel: 3, tie: false, state: 5, hidden: 18 }],
  ['falcon-mamba', { architecture: 'mamba', falcon: true, rank: 3 }],
  ['mamba2, 2 groups', { architecture: 'mamba2' }],
  ['mamba2, dt limit, tied, 3 groups, kernel 3', { architecture: 'mamba2', limit: [0.05, 0.6], tie: true, groups: 3, kernel: 3, heads: 6 }],
  ['mamba2, 1 group, head_dim 4, biases', { architecture: 'mamba2', groups: 1, heads: 12, useBias: true, state: 20 }],
];

describe('models on the CPU against the float64 reference', () => {
  for (const [name, spec] of specs) {
    it(`${name}: forward logits (f32 rel err < 1e-4)`, async () => {
      const { model, ref, config } = await tiny(spec);
      const V = config.vocabSize;
      for (const L of [1, 5, 19]) {
        const rows = [randomIds(L, V), randomIds(L, V)];
        const logits = model.forward(rows);
        expect(logits.shape).toEqual([2, L, V]);
        if (L === 5) {
          // an int32 tensor of ids gives the same logits as rows of numbers
          const viaTensor = model.forward(tensor(Int32Array.from(rows.flat()), [2, L], { dtype: 'int32' }));
          expect(Array.from(await viaTensor.data())).toEqual(Array.from(await logits.data()));
          viaTensor.dispose();
        }
        expect(logits.dtype).toBe('float32');
        const got = await logits.data();
        expectNoNaN(got, name);
        rows.forEach((r, b) => {
          const e = relErr(got.subarray(b * L * V, (b + 1) * L * V), ref.forward(r));
          expect(e, `${name} L=${L} row ${b}: rel err ${e}`).toBeLessThan(1e-4);
        });
        logits.dispose();
      }
      model.dispose();
    });

    it(`${name}: greedy decoding with recurrent state equals argmax of full forward re-runs`, async () => {
      const { model, ref, config } = await tiny(spec);
      const prompt = randomIds(6, config.vocabSize);
      const got = await collect(model.generate(prompt, { maxNewTokens: 12, temperature: 0, stop: [] }));
      expect(got.length).toBe(12);
      const seq = [...prompt];
      for (const t of got) {
        const logits = model.forward([seq]);
        const v = await logits.data();
        const last = v.subarray((seq.length - 1) * config.vocabSize);
        let best = 0;
        for (let k = 1; k < config.vocabSize; k++) if (last[k] > last[best]) best = k;
        expect(t).toBe(best);
        seq.push(t);
        logits.dispose();
      }
      expectSameGreedy(got, ref, prompt, name);
      model.dispose();
    });
  }

  it('sampled decoding: stepSample draws with sampleTokens from step()\'s logits; a seeded generate() repeats', async () => {
    for (const [name, spec] of [specs[0], specs[3]]) {
      const { model, config, dir } = await tiny(spec);
      const other = await loadModel(dir, { device: 'cpu', dtype: 'float32', maxBatch: 6 }); // the same weights, its own state cache
      const V = config.vocabSize;
      const prompts = [randomIds(4, V), randomIds(7, V), randomIds(2, V)].map((p) => Int32Array.from(p));
      for (const m of [model, other]) for (let i = 0; i < 3; i++) await m.prefill(prompts[i], i);
      let tokens = Int32Array.from(prompts, (p) => p[p.length - 1]);
      for (let step = 0; step < 5; step++) {
        const rows = [
          { temperature: 0.9, topK: 0, topP: 1, uniform: Math.random() },
          { temperature: 0, topK: 0, topP: 1, uniform: 0 },
          { temperature: 1.4, topK: 7, topP: 0.8, uniform: Math.random() },
        ];
        const got = await model.stepSample(tokens, rows);
        const logits = await other.step(tokens);
        const want = await tidy(() =>
          sampleTokens({
            logits: tensor(Float32Array.from(logits.flatMap((r) => Array.from(r))), [3, V]),
            temperature: tensor(Float32Array.from(rows, (r) => r.temperature), [3]),
            topK: tensor(Int32Array.from(rows, (r) => r.topK), [3], { dtype: 'int32' }),
            topP: tensor(Float32Array.from(rows, (r) => r.topP), [3]),
            uniform: tensor(Float32Array.from(rows, (r) => r.uniform), [3]),
          }),
        ).data();
        expect(Array.from(got), `${name} step ${step}`).toEqual(Array.from(want));
        tokens = Int32Array.from(got);
      }
      const o = { maxNewTokens: 12, temperature: 1.2, topP: 0.9, topK: 20, stop: [], seed: 11 };
      const prompt = randomIds(5, V);
      const a = await collect(model.generate(prompt, o));
      const b = await collect(other.generate(prompt, o));
      expect(a.length).toBe(12);
      expect(b, `${name}: the same seed, the same completion`).toEqual(a);
      model.dispose();
      other.dispose();
    }
  });

  it('batched generation of different prompts equals generating each alone', async () => {
    for (const spec of [specs[0][1], specs[4][1]]) {
      const { model, config } = await tiny(spec);
      const prompts = Array.from({ length: 9 }, (_, i) => randomIds(1 + ((i * 5) % 13), config.vocabSize));
      const alone: number[][] = [];
      for (const p of prompts) alone.push(await collect(model.generate(p, { maxNewTokens: 8 + (p.length % 4), temperature: 0, stop: [] })));
      const together = await Promise.all(prompts.map((p) => collect(model.generate(p, { maxNewTokens: 8 + (p.length % 4), temperature: 0, stop: [] }))));
      expect(together).toEqual(alone);
      const st = model.scheduler.stats();
      expect(st.stepRows / st.steps).toBeGreaterThan(1.5); // really decoded together
      // sampling with a seed is reproducible, batched or not
      const o = { maxNewTokens: 10, temperature: 0.8, topK: 20, topP: 0.9, seed: 77, stop: [] };
      const s1 = await collect(model.generate(prompts[3], o));
      const s2 = await Promise.all([collect(model.generate(prompts[3], o)), collect(model.generate(prompts[5], o))]);
      expect(s2[0]).toEqual(s1);
      model.dispose();
    }
  });

  it('loads a sharded checkpoint (model.safetensors.index.json) like the single file', async () => {
    const ck = writeTinyCheckpoint(path.join(tmp, 'sharded'), specs[4][1]);
    const single = await loadModel(ck.dir);
    const shardedDir = path.join(tmp, 'sharded-3');
    fs.mkdirSync(shardedDir);
    fs.copyFileSync(path.join(ck.dir, 'config.json'), path.join(shardedDir, 'config.json'));
    const store = await TensorStore.open(path.join(ck.dir, 'model.safetensors'));
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [name, info] of store.tensors) tensors[name] = { shape: info.shape, data: (await store.get(name)).data as Float32Array };
    writeSharded(shardedDir, tensors, 3);
    const sharded = await loadModel(shardedDir);
    const p = randomIds(11, ck.config.vocabSize);
    expect(Array.from(await sharded.forward([p]).data())).toEqual(Array.from(await single.forward([p]).data()));
    single.dispose();
    sharded.dispose();
  });

  it('loads BF16 and F16 checkpoints, converting to float32 exactly', async () => {
    for (const [dtype, spec] of [['BF16', specs[0][1]], ['F16', specs[3][1]]] as const) {
      const { model, ref, config } = await tiny({ ...spec, dtype });
      const p = randomIds(9, config.vocabSize);
      const t = model.forward([p]);
      expect(relErr(await t.data(), ref.forward(p)), dtype).toBeLessThan(1e-4);
      model.dispose();
    }
  });

  it('prefills long prompts in pieces that carry the state, with the same result', async () => {
    for (const spec of [specs[1][1], specs[4][1]]) {
      const ck = writeTinyCheckpoint(path.join(tmp, `chunk${n++}`), spec);
      const whole = await loadModel(ck.dir, { device: 'cpu', dtype: 'float32' });
      const pieces = await loadModel(ck.dir, { device: 'cpu', dtype: 'float32', prefillChunk: 4 });
      const ref = new ReferenceModel(ck.config, ck.weights);
      for (const len of [3, 4, 5, 17]) {
        const p = randomIds(len, ck.config.vocabSize);
        const a = await whole.prefill(Int32Array.from(p), 0);
        const b = await pieces.prefill(Int32Array.from(p), 2);
        const want = ref.forward(p).subarray((len - 1) * ck.config.vocabSize);
        expect(relErr(b, want), `len ${len}`).toBeLessThan(1e-4);
        expect(relErr(a, want)).toBeLessThan(1e-4);
        const ga = await collect(whole.generate(p, { maxNewTokens: 6, temperature: 0, stop: [] }));
        const gb = await collect(pieces.generate(p, { maxNewTokens: 6, temperature: 0, stop: [] }));
        expect(gb).toEqual(ga);
      }
      whole.dispose();
      pieces.dispose();
    }
  });

  it('keeps its state cache when generate() runs inside a caller\'s tidy()', async () => {
    const { model, config } = await tiny(specs[3][1]);
    const p = randomIds(3, config.vocabSize);
    const first = await tidy(async () => collect(model.generate(p, { maxNewTokens: 4, temperature: 0, stop: [] })));
    const second = await tidy(async () => collect(model.generate(p, { maxNewTokens: 4, temperature: 0, stop: [] })));
    expect(second).toEqual(first);
    model.dispose();
    // a model loaded inside a tidy() keeps its parameters after the scope ends
    const loaded = await tidy(async () => loadModel(path.join(tmp, `m${n - 1}`)));
    expect(Array.from(await loaded.forward([p]).data()).every(Number.isFinite)).toBe(true);
    loaded.dispose();
  });

  it('cancels a generation with an AbortSignal and keeps serving others', async () => {
    const { model, config } = await tiny(specs[3][1]);
    const ac = new AbortController();
    const p = randomIds(4, config.vocabSize);
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const t of model.generate(p, { maxNewTokens: 500, temperature: 0, stop: [], signal: ac.signal })) {
          got.push(t);
          if (got.length === 3) ac.abort();
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    await model.scheduler.idle();
    expect(model.scheduler.stats().running).toBe(0);
    const again = await collect(model.generate(p, { maxNewTokens: 3, temperature: 0, stop: [] }));
    expect(again).toEqual(got);
    model.dispose();
  });

  it('generates text through tokenizer.json', async () => {
    const ck = writeTinyCheckpoint(path.join(tmp, 'text'), { architecture: 'mamba', vocab: 40 });
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`);
    fs.writeFileSync(
      path.join(ck.dir, 'tokenizer.json'),
      JSON.stringify({ model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: 'w0' }, pre_tokenizer: { type: 'WhitespaceSplit' } }),
    );
    process.env.STATESPACE_TOKENIZER = 'builtin';
    const model = await loadModel(ck.dir);
    const ref = new ReferenceModel(ck.config, ck.weights);
    const prompt = 'w3 w17 w5';
    let text = '';
    for await (const piece of model.generateText(prompt, { maxNewTokens: 6, temperature: 0, stop: [] })) text += piece;
    const ids = await collect(model.generate([3, 17, 5], { maxNewTokens: 6, temperature: 0, stop: [] }));
    expect(text).toBe(ids.map((i) => `w${i}`).join(' '));
    expectSameGreedy(ids, ref, [3, 17, 5], 'text');
    model.dispose();
  });

  it('serves concurrent HTTP completions that equal generating each alone', async () => {
    const ck = writeTinyCheckpoint(path.join(tmp, 'served'), { architecture: 'mamba2', vocab: 40 });
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`);
    fs.writeFileSync(
      path.join(ck.dir, 'tokenizer.json'),
      JSON.stringify({ model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: 'w0' }, pre_tokenizer: { type: 'WhitespaceSplit' } }),
    );
    process.env.STATESPACE_TOKENIZER = 'builtin';
    const model = await loadModel(ck.dir, { maxBatch: 4 });
    const { serve } = await import('../../lib/models/server');
    const srv = await serve(model, { port: 0 });
    const prompts = Array.from({ length: 8 }, (_, i) => `w${i + 1} w${(i * 7) % 40} w${(i * 3) % 40}`);
    const alone: string[] = [];
    for (const p of prompts) {
      let t = '';
      for await (const s of model.generateText(p, { maxNewTokens: 7, temperature: 0, stop: [] })) t += s;
      alone.push(t);
    }
    const post = (body: object) => fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const texts = await Promise.all(
      prompts.map(async (p, i) => {
        // stop: [] in generateText disables eos; the server keeps eos, so compare only up to an eos
        const r = await post({ prompt: p, max_tokens: 7, temperature: 0, stream: i % 2 === 0 });
        if (i % 2) return (await r.json()).choices[0].text as string;
        const events = (await r.text()).split('\n\n').filter((e) => e.startsWith('data: {'));
        return events.map((e) => JSON.parse(e.slice(6)).choices[0].text).join('');
      }),
    );
    texts.forEach((t, i) => {
      const eos = alone[i].split(' ').indexOf('w0');
      const want = eos < 0 ? alone[i] : alone[i].split(' ').slice(0, eos).join(' ');
      expect(t, prompts[i]).toBe(want);
    });
    expect((await post({ prompt: 'w1', max_tokens: 0 })).status).toBe(400);
    await srv.close();
    model.dispose();
  });

  it('rejects broken checkpoints and bad ids with coded errors', async () => {
    const ck = writeTinyCheckpoint(path.join(tmp, 'broken'), { architecture: 'mamba2' });
    const cfgFile = path.join(ck.dir, 'config.json');
    const good = fs.readFileSync(cfgFile, 'utf8');
    fs.writeFileSync(cfgFile, good.replace('"hidden_size": 24', '"hidden_size": 28').replace('"num_heads": 6', '"num_heads": 7'));
    await expect(loadModel(ck.dir)).rejects.toMatchObject({ code: 'ERR_FORMAT' });
    fs.writeFileSync(cfgFile, good.replace('"state_size": 16', '"state_size": 8'));
    await expect(loadModel(ck.dir)).rejects.toMatchObject({ code: 'ERR_FORMAT', message: expect.stringContaining('implies') });
    fs.writeFileSync(cfgFile, good.replace('"num_hidden_layers": 2', '"num_hidden_layers": 3'));
    await expect(loadModel(ck.dir)).rejects.toMatchObject({ code: 'ERR_FORMAT', message: expect.stringContaining('layers.2') });
    fs.writeFileSync(cfgFile, good);
    const st = path.join(ck.dir, 'model.safetensors');
    const bytes = fs.readFileSync(st);
    fs.writeFileSync(st, bytes.subarray(0, bytes.length - 100));
    await expect(loadModel(ck.dir)).rejects.toMatchObject({ code: 'ERR_FORMAT' });
    fs.writeFileSync(st, bytes);
    const model = await loadModel(ck.dir);
    expect(() => model.forward([[1, 2, 999]])).toThrow(/outside the vocabulary/);
    expect(() => model.generate([-1])).toThrow(/outside the vocabulary/);
    expect(() => model.forward([[1, 2], [3]])).toThrow(/equal length/);
    model.dispose();
    await expect(loadModel(path.join(tmp, 'nope'))).rejects.toMatchObject({ code: 'ERR_FORMAT' });
  });
});
