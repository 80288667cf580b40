/**
 * Continuous batching for recurrent models. Every sequence in flight owns one slot of the
 * engine's batched state (conv + SSM state per layer); the running sequences always occupy slots
 * 0..n-1, so one decode step is one batched call over the first n slots.
 *
 * Each iteration of the loop:
 *   1. retires finished and cancelled sequences: a hole is filled by moving the last running
 *      sequence's state into it, so the slots stay packed;
 *   2. admits waiting requests into free slots, prefilling their prompts in pieces of the
 *      engine's prefillChunk tokens (at most `prefillsPerStep` pieces per iteration while others
 *      are decoding, so a long prompt never stalls the running sequences for long; as fast as
 *      possible when nothing is decoding). The sequence being prefilled owns the slot just past
 *      the running ones and joins the decode batch once its prompt is in;
 *   3. runs one decode step for every running sequence and hands each its next token.
 *
 * Cancelling a request (its AbortSignal, or leaving the for-await loop early) frees its slot at
 * the next iteration. An engine failure fails the sequences it concerns, never the loop.
 */
import { argError } from '../errors';
import { SamplingOptions, checkSampling, sampleToken, seededRandom } from './sampling';
import { untracked } from './scope';

export interface DecodeEngine {
  /** Most sequences in flight at once (state slots). */
  readonly maxBatch: number;
  /** Tokens per prefill piece (default: the whole prompt in one piece). */
  readonly prefillChunk?: number;
  /**
   * Runs prompt tokens [from, to) into `slot`, continuing from the state the slot holds when
   * from > 0 (from zero state when from = 0). Resolves to the logits of position to-1 when `to`
   * is the end of the prompt, else null.
   */
  prefill(ids: Int32Array, slot: number, from: number, to: number): Promise<Float32Array | null>;
  /** One decode step of slots 0..tokens.length-1, fed tokens[i]; one logits row per slot. */
  step(tokens: Int32Array): Promise<Float32Array[]>;
  /**
   * Optional: one decode step whose tokens are chosen greedily (first largest logit) where the
   * logits are, so only token ids come back; used when every running sequence decodes greedily.
   */
  stepGreedy?(tokens: Int32Array): Promise<Int32Array>;
  /**
   * Optional: up to `steps` greedy decode steps of slots 0..n-1 in one call, each fed the tokens
   * the step before chose (the first fed `tokens`); resolves to the tokens of every step it ran,
   * step after step (n per step, at least one step). A device runs them back to back with one
   * host round trip instead of one per step. The scheduler asks for several steps only while no
   * request waits to join and every sequence wants that many more tokens.
   */
  stepGreedyMany?(tokens: Int32Array, steps: number): Promise<Int32Array>;
  /**
   * Optional: one decode step whose tokens are drawn where the logits are, by sampleTokens' rule
   * with each slot's parameters and uniform number (temperature 0: greedy); only token ids come
   * back. Used when some running sequence samples.
   */
  stepSample?(tokens: Int32Array, rows: SampleRow[]): Promise<Int32Array>;
  /** Copies the state of slot `from` into slot `to`. */
  moveSlot(from: number, to: number): void;
}

/** A slot's sampling parameters for one step, with the uniform number its token is drawn with. */
export interface SampleRow extends SamplingOptions {
  uniform: number;
}

export interface SequenceRequest extends SamplingOptions {
  prompt: Int32Array;
  maxNewTokens: number;
  /** Tokens that end the sequence (not emitted). */
  stop: readonly number[];
  seed?: number;
  signal?: AbortSignal;
}

export interface SchedulerStats {
  running: number;
  waiting: number;
  /** Decode steps run so far, and the sequences they covered (their ratio is the mean batch). */
  steps: number;
  stepRows: number;
}

export function abortError(signal?: AbortSignal): Error {
  const r = signal?.reason;
  if (r instanceof Error) return r;
  const e = new Error('the generation was aborted') as Error & { code: string };
  e.name = 'AbortError';
  e.code = 'ABORT_ERR';
  return e;
}

/** A single-consumer async queue of tokens with an end (or a failure). */
class TokenQueue implements AsyncIterableIterator<number> {
  private buf: number[] = [];
  private waiter: ((r: IteratorResult<number>) => void) | null = null;
  private failWaiter: ((e: unknown) => void) | null = null;
  private ended = false;
  private error: unknown = null;

  constructor(private readonly onReturn: () => void) {}

  push(t: number): void {
    if (this.ended) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = this.failWaiter = null;
      w({ value: t, done: false });
    } else this.buf.push(t);
  }
  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error ?? null;
    if (error) this.buf = []; // a failure or cancellation ends the stream now, buffered tokens included
    if (this.waiter) {
      const [w, f] = [this.waiter, this.failWaiter];
      this.waiter = this.failWaiter = null;
      if (error) f?.(error);
      else w({ value: undefined, done: true });
    }
  }
  next(): Promise<IteratorResult<number>> {
    if (this.buf.length) return Promise.resolve({ value: this.buf.shift() as number, done: false });
    if (this.ended) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }
  return(): Promise<IteratorResult<number>> {
    this.onReturn();
    this.end();
    this.buf = [];
    this.error = null;
    return Promise.resolve({ value: undefined, done: true });
  }
  [Symbol.asyncIterator](): this {
    return this;
  }
}

interface Sequence {
  req: SequenceRequest;
  queue: TokenQueue;
  random: () => number;
  last: number;
  emitted: number;
  /** Finished (stop token, length) or cancelled: retire at the next iteration. */
  done: boolean;
  onAbort?: () => void;
}

export interface SchedulerOptions {
  /** Prefill pieces run per iteration while other sequences are decoding (default 1). */
  prefillsPerStep?: number;
  /**
   * Greedy steps per engine call when the engine offers stepGreedyMany (default 8): tokens then
   * arrive in bursts of up to this many, and a stop token or a cancellation is seen up to this
   * many steps late (the steps past it are discarded).
   */
  greedyStepsPerCall?: number;
}

export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  /** The sequence whose prompt is going in: its slot and how many prompt tokens are done. */
  private prefilling: { seq: Sequence; slot: number; pos: number } | null = null;
  private loop: Promise<void> | null = null;
  private readonly prefillsPerStep: number;
  private readonly greedyStepsPerCall: number;
  private steps = 0;
  private stepRows = 0;

  constructor(private readonly engine: DecodeEngine, opts: SchedulerOptions = {}) {
    this.prefillsPerStep = Math.max(1, Math.floor(opts.prefillsPerStep ?? 1));
    this.greedyStepsPerCall = Math.max(1, Math.floor(opts.greedyStepsPerCall ?? 8));
    if (!(engine.maxBatch >= 1)) throw argError(`maxBatch: expected at least 1, got ${engine.maxBatch}`);
  }

  stats(): SchedulerStats {
    const waiting = this.waiting.length + (this.prefilling ? 1 : 0);
    return { running: this.running.length, waiting, steps: this.steps, stepRows: this.stepRows };
  }

  /** Queues a request; its new tokens arrive through the returned async iterator. */
  submit(req: SequenceRequest): AsyncIterableIterator<number> {
    checkSampling(req);
    if (!(Number.isInteger(req.maxNewTokens) && req.maxNewTokens >= 0))
      throw argError(`maxNewTokens: expected an integer >= 0, got ${req.maxNewTokens}`);
    if (!(req.prompt instanceof Int32Array) || req.prompt.length === 0) throw argError('prompt: expected at least one token id');
    const seq: Sequence = {
      req,
      queue: null as unknown as TokenQueue,
      random: seededRandom(req.seed ?? Math.floor(Math.random() * 2 ** 32)),
      last: -1,
      emitted: 0,
      done: false,
    };
    seq.queue = new TokenQueue(() => this.cancel(seq));
    if (req.signal?.aborted) {
      seq.queue.end(abortError(req.signal));
      return seq.queue;
    }
    if (req.maxNewTokens === 0) {
      seq.queue.end();
      return seq.queue;
    }
    if (req.signal) {
      seq.onAbort = () => {
        seq.queue.end(abortError(req.signal));
        this.cancel(seq);
      };
      req.signal.addEventListener('abort', seq.onAbort, { once: true });
    }
    this.waiting.push(seq);
    this.kick();
    return seq.queue;
  }

  /** Resolves when no request is waiting or running. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /** An unexpected failure of the loop itself (a slot move on a disposed model, say): every
   * request in flight fails with it, and the loop starts afresh for later ones. */
  private failAll(e: unknown): void {
    const all = [...this.running.splice(0), ...this.waiting.splice(0)];
    if (this.prefilling) all.push(this.prefilling.seq);
    this.prefilling = null;
    for (const seq of all) this.finish(seq, e);
  }

  private cancel(seq: Sequence): void {
    seq.done = true;
    const w = this.waiting.indexOf(seq);
    if (w >= 0) {
      this.waiting.splice(w, 1);
      this.finish(seq);
    }
  }

  private finish(seq: Sequence, error?: unknown): void {
    seq.done = true;
    if (seq.onAbort) seq.req.signal?.removeEventListener('abort', seq.onAbort);
    seq.onAbort = undefined;
    seq.queue.end(error);
  }

  private kick(): void {
    if (this.loop) return;
    // Outside any tidy() of the caller that submitted the first request (see scope.ts).
    this.loop = untracked(() => this.run())
      .catch((e) => this.failAll(e))
      .finally(() => {
        this.loop = null;
        if (this.waiting.length) this.kick();
      });
  }

  private async run(): Promise<void> {
    for (;;) {
      this.retire();
      await this.admit();
      this.retire();
      if (!this.running.length) {
        if (!this.waiting.length && !this.prefilling) return;
        continue;
      }
      await this.decode();
    }
  }

  /** Removes finished sequences, keeping the running ones packed in slots 0..n-1. */
  private retire(): void {
    for (let s = 0; s < this.running.length; ) {
      const seq = this.running[s];
      if (!seq.done) {
        s++;
        continue;
      }
      this.finish(seq);
      const last = this.running.length - 1;
      if (s !== last) {
        this.engine.moveSlot(last, s);
        this.running[s] = this.running[last];
      }
      this.running.pop();
    }
  }

  private async admit(): Promise<void> {
    const decoding = this.running.length > 0;
    const chunk = Math.max(1, Math.floor(this.engine.prefillChunk ?? Infinity));
    for (let k = 0; !decoding || k < this.prefillsPerStep; k++) {
      if (!this.prefilling) {
        if (!this.waiting.length || this.running.length >= this.engine.maxBatch) return;
        const seq = this.waiting.shift() as Sequence;
        if (seq.done) continue;
        this.prefilling = { seq, slot: this.running.length, pos: 0 };
      }
      const p = this.prefilling;
      if (p.seq.done) {
        this.prefilling = null; // cancelled mid-prompt: its slot was never in the decode batch
        this.finish(p.seq);
        continue;
      }
      // Sequences that retired since the last piece left the slot past the running ones lower.
      const slot = this.running.length;
      if (p.slot !== slot) {
        if (p.pos > 0) this.engine.moveSlot(p.slot, slot);
        p.slot = slot;
      }
      const prompt = p.seq.req.prompt;
      const to = Math.min(prompt.length, p.pos + chunk);
      let logits: Float32Array | null;
      try {
        logits = await this.engine.prefill(prompt, slot, p.pos, to);
      } catch (e) {
        this.prefilling = null;
        this.finish(p.seq, e);
        continue;
      }
      p.pos = to;
      if (to < prompt.length) continue;
      this.prefilling = null;
      this.running.push(p.seq);
      if (!p.seq.done) this.deliver(p.seq, logits as Float32Array);
    }
  }

  private async decode(): Promise<void> {
    const n = this.running.length;
    const tokens = Int32Array.from(this.running, (s) => s.last);
    const greedy = this.engine.stepGreedy !== undefined && this.running.every((s) => s.req.temperature === 0);
    // Several greedy steps per call when nobody waits to join (a newcomer would wait for them)
    // and every sequence wants at least that many more tokens.
    let ahead = 1;
    if (greedy && this.engine.stepGreedyMany && !this.waiting.length && !this.prefilling)
      ahead = this.running.reduce((k, s) => Math.min(k, s.req.maxNewTokens - s.emitted), this.greedyStepsPerCall);
    let rows: Float32Array[] | null = null;
    let ids: Int32Array | null = null;
    try {
      if (ahead > 1 && this.engine.stepGreedyMany) ids = await this.engine.stepGreedyMany(tokens, ahead);
      else if (greedy && this.engine.stepGreedy) ids = await this.engine.stepGreedy(tokens);
      else if (!greedy && this.engine.stepSample) {
        // each sampling sequence draws its uniform from its own seeded generator, as sampleToken would
        const sample = this.running.map((s) => ({ temperature: s.req.temperature, topK: s.req.topK, topP: s.req.topP, uniform: s.req.temperature > 0 ? s.random() : 0 }));
        ids = await this.engine.stepSample(tokens, sample);
      } else rows = await this.engine.step(tokens);
    } catch (e) {
      // The batch's states are unusable: fail every sequence of this step.
      for (const seq of this.running.splice(0, n)) this.finish(seq, e);
      return;
    }
    const steps = ids ? ids.length / n : 1;
    this.steps += steps;
    this.stepRows += n * steps;
    // Step by step; a sequence that finished (stop token, length, cancelled) ignores the rest.
    for (let j = 0; j < steps; j++)
      for (let i = 0; i < n; i++) {
        const seq = this.running[i];
        if (seq.done) continue;
        if (ids) this.accept(seq, ids[j * n + i]);
        else this.deliver(seq, (rows as Float32Array[])[i]);
      }
  }

  private deliver(seq: Sequence, logits: Float32Array): void {
    let tok: number;
    try {
      tok = sampleToken(logits, seq.req, seq.random);
    } catch (e) {
      seq.queue.end(e);
      seq.done = true;
      return;
    }
    this.accept(seq, tok);
  }

  private accept(seq: Sequence, tok: number): void {
    if (seq.req.stop.includes(tok)) {
      seq.done = true;
      return;
    }
    seq.last = tok;
    seq.emitted++;
    seq.queue.push(tok);
    if (seq.emitted >= seq.req.maxNewTokens) seq.done = true;
  }
}
