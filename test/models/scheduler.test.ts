import { describe, expect, it } from 'vitest';
import { DecodeEngine, SampleRow, Scheduler, SequenceRequest } from '../../lib/models/scheduler';
import { argmax, sampleToken, seededRandom } from '../../lib/models/sampling';

const V = 37;
const fold = (s: number, t: number) => (Math.imul(s ^ (t + 0x9e37), 0x01000193) >>> 0) % 1_000_003;
/** Logits whose argmax is a function of the state, with a spread for sampling tests. */
function logitsOf(state: number): Float32Array {
  const row = new Float32Array(V);
  for (let v = 0; v < V; v++) row[v] = Math.sin(state * 0.37 + v * 1.3);
  row[state % V] += 3;
  return row;
}

/** A recurrent "model" whose state is one number per slot. */
class FakeEngine implements DecodeEngine {
  states: number[];
  maxRows = 0;
  calls: string[] = [];
  failPrefill = new Set<number>();
  failNextStep = false;
  delayMs = 0;
  constructor(readonly maxBatch: number) {
    this.states = new Array(maxBatch).fill(-1);
  }
  private async tick() {
    await new Promise((r) => setTimeout(r, this.delayMs));
  }
  prefillChunk?: number;
  async prefill(ids: Int32Array, slot: number, from: number, to: number): Promise<Float32Array | null> {
    await this.tick();
    this.calls.push(from === 0 ? `prefill@${slot}` : `piece@${slot}`);
    if (slot < 0 || slot >= this.maxBatch) throw new Error(`bad slot ${slot}`);
    if (this.failPrefill.has(ids[0])) throw new Error('prefill failed');
    if (from > 0 && this.states[slot] < 0) throw new Error(`slot ${slot} lost its partial state`);
    this.states[slot] = ids.subarray(from, to).reduce(fold, from === 0 ? 1 : this.states[slot]);
    return to === ids.length ? logitsOf(this.states[slot]) : null;
  }
  async step(tokens: Int32Array): Promise<Float32Array[]> {
    await this.tick();
    this.calls.push(`step${tokens.length}`);
    this.maxRows = Math.max(this.maxRows, tokens.length);
    if (tokens.length > this.maxBatch) throw new Error('too many rows');
    if (this.failNextStep) {
      this.failNextStep = false;
      throw new Error('step failed');
    }
    return Array.from(tokens, (t, i) => {
      if (this.states[i] < 0) throw new Error(`slot ${i} has no state`);
      this.states[i] = fold(this.states[i], t);
      return logitsOf(this.states[i]);
    });
  }
  moveSlot(from: number, to: number): void {
    this.states[to] = this.states[from];
    this.states[from] = -1;
  }
}

/** The same model with greedy choice inside the step (as CausalLM.stepGreedy on a device). */
class GreedyEngine extends FakeEngine {
  async stepGreedy(tokens: Int32Array): Promise<Int32Array> {
    const rows = await this.step(tokens);
    this.calls.push('greedy');
    return Int32Array.from(rows, (r) => argmax(r));
  }
}

/** The greedy engine with several steps per call (as CausalLM.stepGreedyMany on a device). */
class ManyStepEngine extends GreedyEngine {
  perCall: number[] = [];
  async stepGreedyMany(tokens: Int32Array, steps: number): Promise<Int32Array> {
    this.perCall.push(steps);
    const out: number[] = [];
    let t = tokens;
    for (let j = 0; j < steps; j++) {
      t = await this.stepGreedy(t);
      out.push(...t);
    }
    return Int32Array.from(out);
  }
}

/** The greedy engine that also draws sampled tokens inside the step (as CausalLM.stepSample on a device). */
class SampleEngine extends GreedyEngine {
  async stepSample(tokens: Int32Array, rows: SampleRow[]): Promise<Int32Array> {
    const logits = await this.step(tokens);
    this.calls.push('sample');
    return Int32Array.from(logits, (l, i) => sampleToken(l, rows[i], () => rows[i].uniform));
  }
}

/** What one sequence alone must produce: the same recurrence, run directly. */
function reference(prompt: number[], n: number, opts: Partial<SequenceRequest> = {}): number[] {
  let s = prompt.reduce(fold, 1);
  const out: number[] = [];
  const random = seededRandom(opts.seed ?? 0);
  for (let i = 0; i < n; i++) {
    const t = sampleToken(logitsOf(s), { temperature: opts.temperature ?? 0, topK: opts.topK ?? 0, topP: opts.topP ?? 1 }, random);
    if (opts.stop?.includes(t)) break;
    out.push(t);
    s = fold(s, t);
  }
  return out;
}

const req = (prompt: number[], n: number, extra: Partial<SequenceRequest> = {}): SequenceRequest => ({
  prompt: Int32Array.from(prompt),
  maxNewTokens: n,
  temperature: 0,
  topK: 0,
  topP: 1,
  stop: [],
  ...extra,
});

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

const randomPrompt = (len: number) => Array.from({ length: len }, () => Math.floor(Math.random() * V));

describe('scheduler', () => {
  it('decodes one sequence like the recurrence run alone', async () => {
    const s = new Scheduler(new FakeEngine(4));
    const p = randomPrompt(5);
    expect(await collect(s.submit(req(p, 20)))).toEqual(reference(p, 20));
  });

  it('batches many concurrent sequences, each equal to running it alone', async () => {
    const engine = new FakeEngine(5);
    const s = new Scheduler(engine, { prefillsPerStep: 2 });
    const prompts = Array.from({ length: 13 }, (_, i) => randomPrompt(1 + (i % 6)));
    const lens = prompts.map((_, i) => 3 + ((i * 7) % 17));
    const results = await Promise.all(prompts.map((p, i) => collect(s.submit(req(p, lens[i])))));
    results.forEach((r, i) => expect(r, `sequence ${i}`).toEqual(reference(prompts[i], lens[i])));
    expect(engine.maxRows).toBe(5);
    const st = s.stats();
    expect(st.stepRows / st.steps).toBeGreaterThan(2);
    expect(st.running + st.waiting).toBe(0);
  });

  it('admits newcomers while others decode (prefill interleaved with decode steps)', async () => {
    const engine = new FakeEngine(4);
    const s = new Scheduler(engine);
    const long = collect(s.submit(req(randomPrompt(3), 40)));
    await new Promise((r) => setTimeout(r, 5));
    const shortP = randomPrompt(2);
    const short = await collect(s.submit(req(shortP, 3)));
    expect(short).toEqual(reference(shortP, 3));
    const stepsBeforeShortDone = engine.calls.filter((c) => c.startsWith('step')).length;
    await long;
    expect(engine.calls.filter((c) => c.startsWith('step')).length).toBeGreaterThan(stepsBeforeShortDone + 10);
    expect(engine.calls).toContain('step2');
  });

  it('stops at stop tokens (not emitted) and at maxNewTokens', async () => {
    const s = new Scheduler(new FakeEngine(2));
    const p = randomPrompt(4);
    const full = reference(p, 30);
    const stopTok = full[7];
    const got = await collect(s.submit(req(p, 30, { stop: [stopTok] })));
    expect(got).toEqual(full.slice(0, full.indexOf(stopTok)));
    expect(await collect(s.submit(req(p, 0)))).toEqual([]);
    expect(await collect(s.submit(req(p, 1)))).toEqual(full.slice(0, 1));
  });

  it('samples reproducibly with a seed', async () => {
    const s = new Scheduler(new FakeEngine(3));
    const p = randomPrompt(3);
    const o = { temperature: 0.9, topK: 10, topP: 0.95, seed: 1234 };
    const [a, b] = await Promise.all([collect(s.submit(req(p, 25, o))), collect(s.submit(req(p, 25, o)))]);
    expect(a).toEqual(b);
    expect(a).toEqual(reference(p, 25, o));
    expect(a).not.toEqual(reference(p, 25)); // not greedy
  });

  it('draws sampled tokens inside the step where the engine can: each sequence its own seeded uniforms, greedy ones none', async () => {
    const engine = new SampleEngine(4);
    const s = new Scheduler(engine);
    const prompts = Array.from({ length: 5 }, (_, i) => randomPrompt(2 + i));
    const opts: Array<Partial<SequenceRequest>> = [
      { temperature: 0.9, topK: 10, topP: 0.95, seed: 1234 },
      {},
      { temperature: 1.3, topP: 0.8, seed: 5 },
      { temperature: 0.7, topK: 3, seed: 99 },
      { temperature: 1.1, seed: 42 },
    ];
    const got = await Promise.all(prompts.map((p, i) => collect(s.submit(req(p, 15 + i, opts[i])))));
    got.forEach((g, i) => expect(g, `sequence ${i}`).toEqual(reference(prompts[i], 15 + i, opts[i])));
    expect(engine.calls).toContain('sample');
    expect(engine.maxRows).toBeGreaterThan(1);
  });

  it('cancels with an AbortSignal and frees the slot for the next request', async () => {
    const engine = new FakeEngine(1);
    engine.delayMs = 1;
    const s = new Scheduler(engine);
    const ac = new AbortController();
    const p1 = randomPrompt(3);
    const got: number[] = [];
    const first = (async () => {
      for await (const t of s.submit(req(p1, 1000, { signal: ac.signal }))) {
        got.push(t);
        if (got.length === 5) ac.abort();
      }
    })();
    const p2 = randomPrompt(2);
    const second = collect(s.submit(req(p2, 6))); // waits for the only slot
    await expect(first).rejects.toMatchObject({ name: 'AbortError' });
    expect(got).toEqual(reference(p1, 5));
    expect(await second).toEqual(reference(p2, 6));
    await s.idle();
    expect(s.stats()).toMatchObject({ running: 0, waiting: 0 });
    // already aborted: rejected at once, nothing runs
    const calls = engine.calls.length;
    await expect(collect(s.submit(req(p2, 5, { signal: AbortSignal.abort() })))).rejects.toMatchObject({ name: 'AbortError' });
    expect(engine.calls.length).toBe(calls);
  });

  it('cancels a waiting request and a consumer that stops reading', async () => {
    const engine = new FakeEngine(1);
    engine.delayMs = 1;
    const s = new Scheduler(engine);
    const pA = randomPrompt(2);
    const a = s.submit(req(pA, 50));
    const ac = new AbortController();
    const b = collect(s.submit(req(randomPrompt(2), 5, { signal: ac.signal })));
    ac.abort(); // still waiting for the slot
    await expect(b).rejects.toMatchObject({ name: 'AbortError' });
    const taken: number[] = [];
    for await (const t of a) {
      taken.push(t);
      if (taken.length === 3) break; // return() cancels
    }
    expect(taken).toEqual(reference(pA, 3));
    const pC = randomPrompt(3);
    expect(await collect(s.submit(req(pC, 4)))).toEqual(reference(pC, 4));
    expect(engine.calls.filter((c) => c === 'prefill@0').length).toBe(2); // b never prefilled
  });

  it('keeps slots packed when sequences retire out of order', async () => {
    const engine = new FakeEngine(4);
    const s = new Scheduler(engine, { prefillsPerStep: 4 });
    const prompts = [randomPrompt(2), randomPrompt(3), randomPrompt(4), randomPrompt(5)];
    const lens = [2, 9, 4, 12];
    const out = await Promise.all(prompts.map((p, i) => collect(s.submit(req(p, lens[i])))));
    out.forEach((r, i) => expect(r).toEqual(reference(prompts[i], lens[i])));
  });

  it('fails only the affected requests when the engine throws', async () => {
    const engine = new FakeEngine(3);
    const s = new Scheduler(engine);
    engine.failPrefill.add(5);
    await expect(collect(s.submit(req([5, 1], 4)))).rejects.toThrow('prefill failed');
    const p = randomPrompt(3).map((x) => (x === 5 ? 6 : x));
    const okRun = collect(s.submit(req(p, 4)));
    expect(await okRun).toEqual(reference(p, 4));
    engine.failNextStep = true;
    await expect(collect(s.submit(req(p, 4)))).rejects.toThrow('step failed');
    expect(await collect(s.submit(req(p, 4)))).toEqual(reference(p, 4));
  });

  it('prefills long prompts in pieces between decode steps, surviving retirements and cancellation', async () => {
    const engine = new FakeEngine(3);
    engine.prefillChunk = 3;
    engine.delayMs = 1;
    const s = new Scheduler(engine);
    const shortP = randomPrompt(2), longP = randomPrompt(40);
    // The long prompt arrives once the short sequence is decoding (its first token out, five steps
    // of 1 ms to go: a loaded machine cannot finish it first), and it retires while the prompt is
    // going in.
    const got: number[] = [];
    let long: Promise<number[]> | undefined;
    for await (const t of s.submit(req(shortP, 6))) {
      got.push(t);
      if (got.length === 1) {
        long = collect(s.submit(req(longP, 5)));
        long.catch(() => {}); // awaited below; a failure above must not leave it unhandled
      }
    }
    expect(got).toEqual(reference(shortP, 6));
    expect(await long!).toEqual(reference(longP, 5));
    // pieces and decode steps alternate while something is decoding
    const firstPiece = engine.calls.indexOf('piece@1');
    expect(firstPiece).toBeGreaterThan(0);
    expect(engine.calls.slice(firstPiece, firstPiece + 4).some((c) => c.startsWith('step'))).toBe(true);
    // the short sequence retired mid-prompt: the partial state moved down to slot 0 and carried on
    expect(engine.calls.indexOf('piece@0')).toBeGreaterThan(firstPiece);
    // cancelled half way through its prompt: nothing is emitted, the next request runs normally
    const ac = new AbortController();
    const cancelled = collect(s.submit(req(randomPrompt(60), 5, { signal: ac.signal })));
    setTimeout(() => ac.abort(), 8);
    await expect(cancelled).rejects.toMatchObject({ name: 'AbortError' });
    const after = randomPrompt(7);
    expect(await collect(s.submit(req(after, 4)))).toEqual(reference(after, 4));
    await s.idle();
    expect(s.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('fails the requests in flight, not the process, when the loop itself breaks', async () => {
    const engine = new FakeEngine(2);
    engine.delayMs = 1;
    const s = new Scheduler(engine, { prefillsPerStep: 2 });
    engine.moveSlot = () => {
      throw new Error('slot move failed');
    };
    const a = collect(s.submit(req(randomPrompt(2), 1))); // retires first: its hole needs a move
    const b = collect(s.submit(req(randomPrompt(2), 50)));
    await expect(a).resolves.toHaveLength(1);
    await expect(b).rejects.toThrow('slot move failed');
    engine.moveSlot = FakeEngine.prototype.moveSlot;
    const p = randomPrompt(3);
    expect(await collect(s.submit(req(p, 3)))).toEqual(reference(p, 3));
  });

  it('validates requests', () => {
    const s = new Scheduler(new FakeEngine(1));
    expect(() => s.submit(req([], 3))).toThrow(/prompt/);
    expect(() => s.submit(req([1], -1))).toThrow(/maxNewTokens/);
    expect(() => s.submit(req([1], 3, { temperature: -1 }))).toThrow(/temperature/);
    expect(() => s.submit(req([1], 3, { topP: 0 }))).toThrow(/topP/);
    expect(argmax([1, 3, 3, 2])).toBe(1);
  });

  it('uses the engine\'s greedy step when every running sequence is greedy, the logits otherwise', async () => {
    const engine = new GreedyEngine(4);
    const s = new Scheduler(engine);
    const p = randomPrompt(4);
    expect(await collect(s.submit(req(p, 12)))).toEqual(reference(p, 12));
    const greedySteps = engine.calls.filter((c) => c === 'greedy').length;
    expect(greedySteps).toBe(11);
    const q = randomPrompt(3);
    const o = { temperature: 0.8, topK: 5, seed: 7 };
    const [a, b] = await Promise.all([collect(s.submit(req(p, 12))), collect(s.submit(req(q, 12, o)))]);
    expect(a).toEqual(reference(p, 12));
    expect(b).toEqual(reference(q, 12, o));
    expect(engine.calls.filter((c) => c === 'greedy').length).toBeLessThan(greedySteps + 11);
  });

  it('runs several greedy steps per engine call while nobody waits; stops, lengths, newcomers and cancellation as when run alone', async () => {
    const engine = new ManyStepEngine(4);
    const s = new Scheduler(engine, { greedyStepsPerCall: 5 });
    const prompts = Array.from({ length: 6 }, (_, i) => randomPrompt(1 + i));
    const lens = [23, 7, 1, 12, 30, 9];
    const stopTok = reference(prompts[4], 30)[10];
    const opts = (i: number) => (i === 4 ? { stop: [stopTok] } : {});
    const first = prompts.slice(0, 3).map((p, i) => collect(s.submit(req(p, lens[i], opts(i)))));
    // newcomers arrive while the first three decode (more than the 4 slots: some wait for a slot)
    await new Promise((r) => setTimeout(r, 5));
    const later = prompts.slice(3).map((p, j) => collect(s.submit(req(p, lens[3 + j], opts(3 + j)))));
    const got = await Promise.all([...first, ...later]);
    got.forEach((g, i) => expect(g, `sequence ${i}`).toEqual(reference(prompts[i], lens[i], opts(i))));
    expect(got[4].length).toBeLessThan(30); // stopped at the stop token
    expect(Math.max(...engine.perCall)).toBeLessThanOrEqual(5);
    expect(engine.perCall.some((k) => k > 1)).toBe(true);
    // A consumer that stops reading mid-burst frees its slot; the next request is unaffected.
    const p = randomPrompt(3);
    const taken: number[] = [];
    for await (const t of s.submit(req(p, 40))) {
      taken.push(t);
      if (taken.length === 3) break;
    }
    expect(taken).toEqual(reference(p, 3));
    const q = randomPrompt(2);
    expect(await collect(s.submit(req(q, 11)))).toEqual(reference(q, 11));
    await s.idle();
    expect(s.stats()).toMatchObject({ running: 0, waiting: 0 });
  });
});
