/**
 * CausalLM: what Mamba and Mamba-2 language models share. Embedding, a stack of pre-norm residual
 * blocks (RMSNorm → mixer → residual add, the residual kept in float32 when the config says
 * residual_in_fp32, as transformers does), the final RMSNorm and the (possibly tied) LM head.
 * Subclasses supply the mixer, in two forms: over a whole sequence (prefill, forward) and one
 * token per sequence with recurrent state (decode).
 *
 * Decoding runs through a Scheduler over a batched state cache (one slot per sequence in flight),
 * so concurrent generate() calls on one model share each decode step.
 */
import { DType } from '../dtype';
import { Device } from '../device';
import { argError, dtypeError, formatError } from '../errors';
import { CudaGraph, captureGraph } from '../graph';
import { Tensor, tensor, tidy, zeros } from '../tensor';
import { GenerationDefaults, ModelConfig } from './config';
import { argmax, copyInto, embedding, linear, rmsNorm, sampleTokens } from './ops';
import { DecodeEngine, SampleRow, Scheduler } from './scheduler';
import { checkSampling } from './sampling';
import { detokenize } from './text_stream';
import { TextTokenizer } from './tokenizer';
import { WeightSource } from './weights';

export interface GenerateOptions {
  /** New tokens at most (default: generation_config.json, else 128). */
  maxNewTokens?: number;
  /** 0 is greedy (default: generation_config.json, greedy unless it sets do_sample). */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Seed of the sampler: the same seed gives the same completion. */
  seed?: number;
  /** Token ids that end generation, not emitted (default: the eos token(s)); [] never stops early. */
  stop?: readonly number[];
  /** Cancels the request: the iterator throws an AbortError and the sequence's slot is freed. */
  signal?: AbortSignal;
}

export interface GenerateTextOptions extends Omit<GenerateOptions, 'stop'> {
  /** Token ids and/or strings that end generation (a string is cut from the text). */
  stop?: ReadonlyArray<number | string>;
}

/** Per-sequence state of one layer: conv window (convDim, width-1) and SSM state (float32). */
export interface LayerState {
  conv: Tensor;
  ssm: Tensor;
}

export interface ModelInit {
  config: ModelConfig;
  generation: GenerationDefaults;
  tokenizer: TextTokenizer | null;
  device: Device;
  dtype: DType;
  /** State slots for concurrent sequences (default 16). */
  maxBatch?: number;
  /** Prompts are prefilled in pieces of at most this many tokens, carrying the state, with decode steps of the running sequences in between (default 2048). */
  prefillChunk?: number;
  /** On CUDA, replay each batch size's decode step as a captured CUDA graph (default true). */
  cudaGraphs?: boolean;
  /**
   * dtype of the SSM state cache that decoding updates in place: float32 (default) or bfloat16,
   * which halves the state traffic of each step (it dominates large-batch Mamba-2 decoding); the
   * state update still computes in float32.
   */
  stateDtype?: DType;
}

/** The kinds of decode step: logits kept (step), greedy ids (stepGreedy), sampled ids (stepSample). */
type StepKind = 'full' | 'greedy' | 'sampled';

/**
 * The captured decode steps of one batch size. Each reads its tokens from `ids` and ends by
 * writing its choice of the next tokens back into `ids` (`next` is a flat view of it): the argmax
 * of the logits, or (`sampled`) a draw by sampleTokens with the parameters in `sampling`, so a
 * step that continues with the tokens it chose needs no upload; `full` also keeps the logits
 * (step()). Each is captured at its first use. `fed` is what `ids` holds when known (else null).
 */
interface DecodeGraph {
  full: CudaGraph | null;
  greedy: CudaGraph | null;
  sampled: CudaGraph | null;
  /** The sampled step's per-slot parameters (device buffers the graph reads), and what they hold. */
  sampling?: { temperature: Tensor; topK: Tensor; topP: Tensor; uniform: Tensor; params: Float64Array | null };
  ids: Tensor;
  next: Tensor;
  logits: Tensor;
  fed: Int32Array | null;
  /** stepGreedyMany's tokens, one row per step (made at its first use), with views of `next` and of each row. */
  hist?: { all: Tensor; rows: Tensor[]; next: Tensor };
}

/** Most greedy steps stepGreedyMany runs per call. */
const MAX_STEPS_PER_CALL = 16;

export abstract class CausalLM implements DecodeEngine {
  readonly config: ModelConfig;
  readonly generation: GenerationDefaults;
  readonly tokenizer: TextTokenizer | null;
  readonly device: Device;
  readonly dtype: DType;
  readonly maxBatch: number;
  readonly prefillChunk: number;
  readonly stateDtype: DType;
  protected embed!: Tensor;
  protected norms: Tensor[] = [];
  protected normF!: Tensor;
  protected lmHead!: Tensor;
  private cache: { conv: Tensor[]; ssm: Tensor[] } | null = null;
  private viewCache = new Map<number, { conv: Tensor[]; ssm: Tensor[] }>();
  /** Captured decode steps on CUDA, by batch size. */
  private graphs = new Map<number, DecodeGraph>();
  /** Decode on CUDA through captured graphs (LoadOptions.cudaGraphs; turned off if a capture fails). */
  useCudaGraphs: boolean;
  /** Why CUDA graph capture was given up, if it was. */
  cudaGraphError: string | null = null;
  private sched: Scheduler | null = null;
  /** Host time the last decode step took to issue its ops (benchmarks: the dispatch share). */
  lastStepDispatchMs = 0;
  /**
   * Whether a batch-1 CUDA decode step folds its norms into the projections (mixerStep's `block`
   * form): measured 0.07-0.18 ms/token faster on the 2.7B shapes and 0.04 on 130m than separate
   * norm kernels. STATESPACE_DECODE_NORM_FUSION=0 (read per step) runs them separately.
   */
  private get foldDecodeNorms(): boolean {
    return process.env.STATESPACE_DECODE_NORM_FUSION !== '0';
  }
  private owned: Tensor[] = [];

  protected constructor(init: ModelInit) {
    this.config = init.config;
    this.generation = init.generation;
    this.tokenizer = init.tokenizer;
    this.device = init.device;
    this.dtype = init.dtype;
    this.maxBatch = init.maxBatch ?? 16;
    if (!(Number.isInteger(this.maxBatch) && this.maxBatch >= 1)) throw argError(`maxBatch: expected an integer >= 1, got ${init.maxBatch}`);
    this.useCudaGraphs = init.cudaGraphs ?? true;
    this.stateDtype = init.stateDtype ?? 'float32';
    if (this.stateDtype !== 'float32' && this.stateDtype !== 'bfloat16')
      throw dtypeError(`stateDtype: expected float32 or bfloat16, got ${JSON.stringify(init.stateDtype)}`);
    this.prefillChunk = init.prefillChunk ?? 2048;
    if (!(Number.isInteger(this.prefillChunk) && this.prefillChunk >= 1))
      throw argError(`prefillChunk: expected an integer >= 1, got ${init.prefillChunk}`);
  }

  /** Width of the causal conv's channel dimension (what the conv state holds). */
  protected abstract get convDim(): number;
  /** Shape of one sequence's SSM state. */
  protected abstract get ssmShape(): number[];
  /** Loads the mixer parameters of every layer. */
  protected abstract loadMixers(w: WeightSource): Promise<void>;
  /**
   * Mixer over sequences: x (batch, seqlen, hidden) → (batch, seqlen, hidden), starting from
   * `init` (the states after an earlier piece of the same sequences) or from zero, writing the
   * final states into `into` when given (a cache slot: the ops write it directly where they can,
   * see finalStatesOut / lastStateOut, so a prefill needs no per-layer state copies).
   */
  protected abstract mixerForward(layer: number, x: Tensor, init?: LayerState, into?: LayerState): Tensor;
  /**
   * Mixer for one token per sequence: x (n, hidden) with states (n, ...) updated in place. With
   * `block`, the whole pre-norm residual block instead: x is the residual stream (residual dtype),
   * the block's RMSNorm (norms[layer]) is folded into the input projection and its residual add
   * into the output projection (linear's normWeight / residual), Mamba-2's gated norm of one
   * group into out_proj (the state update applies the gate), and the new residual stream is
   * returned.
   */
  protected abstract mixerStep(layer: number, x: Tensor, conv: Tensor, ssm: Tensor, block?: boolean): Tensor;

  /** Loads every parameter (called once by the architecture's factory). */
  /** Loads `m`'s weights; on failure disposes what was loaded and rethrows. */
  protected static async withWeights<M extends CausalLM>(m: M, w: WeightSource): Promise<M> {
    try {
      await m.loadWeights(w);
    } catch (e) {
      m.dispose();
      throw e;
    }
    return m;
  }

  protected async loadWeights(w: WeightSource): Promise<void> {
    const c = this.config;
    const embName = w.has('backbone.embeddings.weight') || !w.has('backbone.embedding.weight') ? 'backbone.embeddings.weight' : 'backbone.embedding.weight';
    this.embed = this.own(await w.load(embName, [c.vocabSize, c.hiddenSize], this.dtype, this.device));
    for (let l = 0; l < c.numLayers; l++)
      this.norms.push(this.own(await w.load(`backbone.layers.${l}.norm.weight`, [c.hiddenSize], this.dtype, this.device)));
    this.normF = this.own(await w.load('backbone.norm_f.weight', [c.hiddenSize], this.dtype, this.device));
    if (w.has('lm_head.weight') && !c.tieWordEmbeddings) {
      this.lmHead = this.own(await w.load('lm_head.weight', [c.vocabSize, c.hiddenSize], this.dtype, this.device));
    } else if (!c.tieWordEmbeddings && !w.has('lm_head.weight')) {
      throw formatError('checkpoint: missing tensor lm_head.weight (config.json says the LM head is not tied to the embeddings)');
    } else {
      this.lmHead = this.embed;
    }
    await this.loadMixers(w);
  }

  /** Keeps a parameter for dispose(). */
  protected own(t: Tensor): Tensor {
    this.owned.push(t);
    return t;
  }

  private get residDtype(): DType {
    return this.config.residualInFp32 ? 'float32' : this.dtype;
  }

  /**
   * The pre-norm residual stack. `mixer(l, x)` runs layer l's mixer on its normalised input; the
   * residual add of each block is fused into the next block's RMSNorm (and the last one into
   * norm_f), with the residual stream kept in float32 when residual_in_fp32. Returns the
   * normalised final hidden states, ready for the LM head.
   */
  private stack(embedded: Tensor, mixer: (l: number, x: Tensor) => Tensor): Tensor {
    const c = this.config;
    let resid = embedded.astype(this.residDtype);
    let x = rmsNorm({ x: resid.astype(this.dtype), weight: this.norms[0], eps: c.normEps }).y;
    for (let l = 0; l < c.numLayers; l++) {
      const y = mixer(l, x);
      const next = l + 1 < c.numLayers ? this.norms[l + 1] : this.normF;
      const r = rmsNorm({ x: y, residual: resid, weight: next, eps: c.normEps });
      x = r.y;
      resid = r.residualOut as Tensor;
    }
    return x;
  }

  /** Normalised final hidden states of sequences (batch, seqlen, hidden). */
  private blocks(ids: Tensor): Tensor {
    return this.stack(embedding({ ids, weight: this.embed }), (l, x) => this.mixerForward(l, x));
  }

  /** LM head: logits in the model dtype (as transformers computes them; reading converts to float32). */
  private head(x: Tensor): Tensor {
    return linear({ x, weight: this.lmHead });
  }

  private idsTensor(ids: Tensor | ArrayLike<number>[] | Int32Array, what = 'ids'): Tensor {
    const V = this.config.vocabSize;
    const check = (v: ArrayLike<number>) => {
      for (let i = 0; i < v.length; i++)
        if (!Number.isInteger(v[i]) || v[i] < 0 || v[i] >= V) throw argError(`${what}: token id ${v[i]} is outside the vocabulary [0, ${V})`);
    };
    if (ids instanceof Tensor) {
      if (ids.dtype !== 'int32' || ids.ndim !== 2) throw argError(`${what}: expected an int32 tensor (batch, seqlen), got ${ids}`);
      if (ids.shape[1] === 0) throw argError(`${what}: empty sequence`);
      // The embedding gathers rows by id: ids are checked on the host so none reads outside the table.
      check(ids.dataSync());
      return ids.device === this.device ? ids : ids.to(this.device);
    }
    if (ids instanceof Int32Array) {
      if (ids.length === 0) throw argError(`${what}: empty sequence`);
      check(ids);
      return tensor(ids, [1, ids.length], { dtype: 'int32', device: this.device });
    }
    if (!Array.isArray(ids) || ids.length === 0) throw argError(`${what}: expected a tensor or a non-empty array of token id rows`);
    const L = ids[0].length;
    if (!L || ids.some((r) => r.length !== L)) throw argError(`${what}: rows must be non-empty and of equal length`);
    const flat = new Int32Array(ids.length * L);
    ids.forEach((r, b) => {
      check(r);
      for (let t = 0; t < L; t++) flat[b * L + t] = r[t];
    });
    return tensor(flat, [ids.length, L], { dtype: 'int32', device: this.device });
  }

  /** Logits (batch, seqlen, vocab) float32 of ids (batch, seqlen) int32 (a tensor or rows of ids). */
  forward(ids: Tensor | ArrayLike<number>[] | Int32Array): Tensor {
    const t = this.idsTensor(ids);
    try {
      return tidy(() => this.head(this.blocks(t)).astype('float32'));
    } finally {
      if (t !== ids) t.dispose();
    }
  }

  // ---- DecodeEngine -----------------------------------------------------------------------------

  private ensureCache(): { conv: Tensor[]; ssm: Tensor[] } {
    if (!this.cache) {
      const w = this.config.convKernel - 1;
      const conv: Tensor[] = [];
      const ssm: Tensor[] = [];
      for (let l = 0; l < this.config.numLayers; l++) {
        conv.push(zeros([this.maxBatch, this.convDim, w], { dtype: this.dtype, device: this.device }));
        ssm.push(zeros([this.maxBatch, ...this.ssmShape], { dtype: this.stateDtype, device: this.device }));
      }
      this.cache = { conv, ssm };
    }
    return this.cache;
  }

  /**
   * @internal Scheduler engine: runs prompt tokens [from, to) into a state slot, continuing from
   * the slot's state when from > 0; the logits of the prompt's last position when `to` is its end.
   * Pieces longer than prefillChunk run in several steps, so the memory of a prefill is bounded
   * whatever the prompt length.
   */
  async prefill(ids: Int32Array, slot: number, from = 0, to = ids.length): Promise<Float32Array | null> {
    if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from < to && to <= ids.length))
      throw argError(`prefill: bad token range [${from}, ${to}) of a ${ids.length}-token prompt`);
    if (!(Number.isInteger(slot) && slot >= 0 && slot < this.maxBatch)) throw argError(`prefill: slot ${slot} outside [0, ${this.maxBatch})`);
    const cache = this.ensureCache();
    const idsT = this.idsTensor(ids.subarray(from, to), 'prompt');
    const slotState = (l: number): LayerState => ({ conv: cache.conv[l].slice(0, slot, slot + 1), ssm: cache.ssm[l].slice(0, slot, slot + 1) });
    // The scans continue from a float32 state (a bfloat16 cache is widened, and narrowed back by a
    // copy into the slot).
    const initState = (l: number): LayerState => {
      const s = slotState(l);
      return s.ssm.dtype === 'float32' ? s : { conv: s.conv, ssm: s.ssm.astype('float32') };
    };
    let logits: Tensor | null = null;
    try {
      for (let start = from; start < to; start += this.prefillChunk) {
        const end = Math.min(to, start + this.prefillChunk);
        logits = tidy(() => {
          const chunk = idsT.slice(1, start - from, end - from);
          // The final states go straight into the slot (an op whose initial state is that same slot
          // writes a temporary and copies it in, in stream/queue order after reading the old one).
          const h = this.stack(embedding({ ids: chunk, weight: this.embed }), (l, x) =>
            this.mixerForward(l, x, start > 0 ? initState(l) : undefined, slotState(l)),
          );
          return end === ids.length ? this.head(h.slice(1, end - start - 1, end - start)) : null;
        });
        // Let other work (HTTP, timers) in between pieces.
        if (end < to) await new Promise((r) => setImmediate(r));
      }
      return logits ? ((await logits.data()) as Float32Array) : null;
    } finally {
      logits?.dispose();
      idsT.dispose();
    }
  }

  /**
   * @internal Scheduler engine: one decode step of slots 0..n-1, returning each slot's logits.
   * On CUDA the step of each batch size is captured once as a CUDA graph (after one eager run,
   * which also warms the libraries up) and replayed from then on: one launch instead of a few
   * hundred op calls from the host. The graph reads its tokens from a fixed buffer and writes its
   * logits (and their argmax) into others; the state cache and the parameters stay where they
   * are, so a replay continues every sequence in place.
   */
  async step(tokens: Int32Array): Promise<Float32Array[]> {
    const V = this.config.vocabSize;
    const v = (await this.runStep(tokens, 'full')) as Float32Array;
    return Array.from({ length: tokens.length }, (_, i) => v.subarray(i * V, (i + 1) * V));
  }

  /**
   * @internal Scheduler engine: one decode step of slots 0..n-1 with greedy choice on the device:
   * the next token of each slot (the first largest logit). Only the ids are copied to the host.
   */
  async stepGreedy(tokens: Int32Array): Promise<Int32Array> {
    return (await this.runStep(tokens, 'greedy')) as Int32Array;
  }

  /**
   * @internal Scheduler engine: one decode step of slots 0..n-1 whose tokens are drawn where the
   * logits are (sampleTokens' rule, each slot with its row of parameters and uniform number;
   * temperature 0 is greedy): only the ids come back, as for stepGreedy, instead of n rows of
   * logits sampled on the host. On CUDA a captured graph reads the parameters from device
   * buffers, rewritten before each replay (the temperature, top-k and top-p only when they change).
   */
  async stepSample(tokens: Int32Array, rows: SampleRow[]): Promise<Int32Array> {
    if (rows.length !== tokens.length) throw argError(`stepSample: ${rows.length} rows of parameters for ${tokens.length} tokens`);
    for (const r of rows) checkSampling(r);
    return (await this.runStep(tokens, 'sampled', rows)) as Int32Array;
  }

  /** The per-row parameter tensors of sampleTokens for `rows` (on `device`). */
  private static sampleParams(rows: SampleRow[], device: Device) {
    const n = rows.length;
    return {
      temperature: tensor(Float32Array.from(rows, (r) => r.temperature), [n], { device }),
      topK: tensor(Int32Array.from(rows, (r) => r.topK), [n], { dtype: 'int32', device }),
      topP: tensor(Float32Array.from(rows, (r) => r.topP), [n], { device }),
      uniform: tensor(Float32Array.from(rows, (r) => r.uniform), [n], { device }),
    };
  }

  /**
   * Writes the sampled graph's parameter buffers: the uniforms every step, the rest when they
   * change. Plain loops, no per-step strings: at batch 64 building and comparing a string of the
   * parameters cost ~30 µs of host time a step, Float32Array.from with a map ~14 µs (V8).
   */
  private setSampling(entry: DecodeGraph, rows: SampleRow[]): void {
    const b = entry.sampling as NonNullable<DecodeGraph['sampling']>;
    const n = rows.length;
    const u = new Float32Array(n);
    for (let i = 0; i < n; i++) u[i] = rows[i].uniform;
    // (CPU tensors: copyInto uploads them straight into the graph's buffers)
    const uniform = tensor(u, [n]);
    copyInto(b.uniform, uniform);
    uniform.dispose();
    let same = b.params !== null;
    for (let i = 0; same && i < n; i++) {
      const r = rows[i], p = b.params as Float64Array;
      same = p[3 * i] === r.temperature && p[3 * i + 1] === r.topK && p[3 * i + 2] === r.topP;
    }
    if (!same) {
      const fresh = CausalLM.sampleParams(rows, 'cpu');
      copyInto(b.temperature, fresh.temperature);
      copyInto(b.topK, fresh.topK);
      copyInto(b.topP, fresh.topP);
      for (const t of Object.values(fresh)) t.dispose();
      const p = new Float64Array(3 * n);
      for (let i = 0; i < n; i++) {
        p[3 * i] = rows[i].temperature;
        p[3 * i + 1] = rows[i].topK;
        p[3 * i + 2] = rows[i].topP;
      }
      b.params = p;
    }
  }

  /**
   * @internal Scheduler engine: up to `steps` greedy steps of slots 0..n-1, each fed the tokens
   * the one before chose; the tokens of every step run, step after step. On CUDA with a captured
   * graph the replays are enqueued back to back, each followed by a copy of its tokens into a
   * row of a small device buffer that is read once at the end: one host round trip for all the
   * steps, and the device never waits for the host in between. Otherwise one step.
   */
  async stepGreedyMany(tokens: Int32Array, steps: number): Promise<Int32Array> {
    const n = tokens.length;
    const entry = this.device !== 'cpu' && this.useCudaGraphs ? this.graphs.get(n) : undefined;
    const graph = entry?.greedy;
    if (!entry || !graph || steps <= 1) return this.stepGreedy(tokens);
    steps = Math.min(steps, MAX_STEPS_PER_CALL);
    this.feed(entry, tokens);
    if (!entry.hist) {
      const all = zeros([MAX_STEPS_PER_CALL, n], { dtype: 'int32', device: this.device });
      entry.hist = { all, rows: Array.from({ length: MAX_STEPS_PER_CALL }, (_, j) => all.slice(0, j, j + 1)), next: entry.next.reshape([1, n]) };
    }
    const h = entry.hist;
    for (let j = 0; j < steps; j++) {
      graph.replay();
      copyInto(h.rows[j], h.next);
    }
    entry.fed = null;
    const v = ((await h.all.data()) as Int32Array).slice(0, steps * n);
    entry.fed = v.slice((steps - 1) * n); // the last replay left these in its ids buffer
    return v;
  }

  /** Puts `tokens` into the graph's input buffer unless it holds them already. */
  private feed(graph: DecodeGraph, tokens: Int32Array): void {
    const fed = graph.fed;
    if (fed && fed.length === tokens.length && fed.every((t, i) => t === tokens[i])) return;
    const ids = tensor(tokens, [tokens.length, 1], { dtype: 'int32' }); // (uploaded by copyInto)
    copyInto(graph.ids, ids);
    ids.dispose();
  }

  private async runStep(tokens: Int32Array, kind: StepKind, sample?: SampleRow[]): Promise<Float32Array | Int32Array> {
    const cache = this.ensureCache();
    const n = tokens.length;
    const rows = this.batchViews(cache, n);
    const entry = this.device !== 'cpu' && this.useCudaGraphs ? this.graphs.get(n) : undefined;
    // The step of this kind as a graph: captured now if the other kind was (the eager run that
    // created the entry did the one-time setup); null if capture failed (then eager from here on).
    const graph = entry ? (entry[kind] ?? this.capture(entry, rows, kind)) : null;
    let out: Tensor;
    const t0 = process.hrtime.bigint();
    if (entry && graph) {
      this.feed(entry, tokens);
      if (kind === 'sampled') this.setSampling(entry, sample as SampleRow[]);
      graph.replay();
      entry.fed = null;
      out = kind === 'full' ? entry.logits : entry.next;
    } else {
      const ids = tensor(tokens, [n, 1], { dtype: 'int32', device: this.device });
      out = tidy(() => {
        const logits = this.decodeOps(ids, rows);
        if (kind === 'greedy') return argmax(logits);
        if (kind === 'sampled') return sampleTokens({ logits, ...CausalLM.sampleParams(sample as SampleRow[], this.device) });
        return logits;
      });
      ids.dispose();
    }
    this.lastStepDispatchMs = Number(process.hrtime.bigint() - t0) / 1e6;
    let v: Float32Array | Int32Array;
    try {
      v = (await out.data()) as Float32Array | Int32Array;
    } finally {
      if (!graph) out.dispose();
    }
    if (entry && graph && kind !== 'full') entry.fed = Int32Array.from(v); // the graph left these in its ids buffer
    if (!entry && this.device !== 'cpu' && this.useCudaGraphs) this.captureStep(n, rows, kind);
    return v;
  }

  /**
   * The ops of one decode step: logits (n, vocab) of tokens ids (n, 1) continuing slots 0..n-1;
   * with `argmaxOut` (int32 (n)) their argmax goes there too (in the LM head's kernel where it can).
   */
  private decodeOps(ids: Tensor, rows: { conv: Tensor[]; ssm: Tensor[] }, argmaxOut?: Tensor): Tensor {
    const n = ids.shape[0];
    const embedded = embedding({ ids, weight: this.embed }).reshape([n, this.config.hiddenSize]);
    // The folded form where the kernels take it (CUDA, one sequence, float32 residual stream);
    // elsewhere it would only split the fused residual-add RMSNorm into more ops.
    if (!(this.foldDecodeNorms && n === 1 && this.device !== 'cpu' && this.residDtype === 'float32')) {
      const x = this.stack(embedded, (l, xl) => this.mixerStep(l, xl, rows.conv[l], rows.ssm[l]));
      const logits = this.head(x);
      if (argmaxOut) copyInto(argmaxOut, argmax(logits));
      return logits;
    }
    let h = embedded.astype(this.residDtype);
    for (let l = 0; l < this.config.numLayers; l++) h = this.mixerStep(l, h, rows.conv[l], rows.ssm[l], true);
    // norm_f and the greedy choice inside the LM head's kernel
    return linear({ x: h, weight: this.lmHead, normWeight: this.normF, normEps: this.config.normEps, argmaxOut });
  }

  /**
   * @internal Benchmarks: replays the captured decode step of batch size n `times` times back to
   * back without reading anything (each replay feeds the next the tokens it chose), so events
   * around it give the device time of a step. False when that step has no graph (yet).
   */
  replayDecodeGraph(n: number, times = 1): boolean {
    const e = this.device !== 'cpu' && this.useCudaGraphs ? this.graphs.get(n) : undefined;
    if (!e?.greedy) return false;
    for (let i = 0; i < times; i++) e.greedy.replay();
    e.fed = null;
    return true;
  }

  /** @internal Benchmarks: drops the captured decode steps, so the next steps capture them anew (e.g. under other settings). */
  resetDecodeGraphs(): void {
    for (const g of this.graphs.values()) {
      g.full?.dispose();
      g.greedy?.dispose();
      g.sampled?.dispose();
      if (g.sampling) for (const t of [g.sampling.temperature, g.sampling.topK, g.sampling.topP, g.sampling.uniform]) t.dispose();
      for (const t of [g.ids, g.logits, g.next, ...(g.hist ? [g.hist.all, g.hist.next, ...g.hist.rows] : [])]) t.dispose();
    }
    this.graphs.clear();
  }

  /** Makes batch size n's graph entry (after its first eager run) and captures the step of this kind. */
  private captureStep(n: number, rows: { conv: Tensor[]; ssm: Tensor[] }, kind: StepKind): void {
    if (this.graphs.has(n)) return;
    const ids = zeros([n, 1], { dtype: 'int32', device: this.device });
    const entry: DecodeGraph = {
      full: null,
      greedy: null,
      sampled: null,
      ids,
      next: ids.reshape([n]),
      logits: zeros([n, this.config.vocabSize], { dtype: this.dtype, device: this.device }),
      fed: null,
    };
    this.graphs.set(n, entry);
    this.capture(entry, rows, kind);
  }

  /** Captures the decode step of entry's batch size of this kind; on failure, decoding stays eager. */
  private capture(entry: DecodeGraph, rows: { conv: Tensor[]; ssm: Tensor[] }, kind: StepKind): CudaGraph | null {
    try {
      const n = entry.next.shape[0];
      if (kind === 'sampled' && !entry.sampling) {
        const z = (dtype: DType) => zeros([n], { dtype, device: this.device });
        entry.sampling = { temperature: z('float32'), topK: z('int32'), topP: z('float32'), uniform: z('float32'), params: null };
      }
      const graph = captureGraph(this.device, () => {
        if (kind === 'sampled') {
          // the next step's input, drawn with the parameters the buffers hold at each replay
          const b = entry.sampling as NonNullable<DecodeGraph['sampling']>;
          const logits = this.decodeOps(entry.ids, rows);
          copyInto(entry.next, sampleTokens({ logits, temperature: b.temperature, topK: b.topK, topP: b.topP, uniform: b.uniform }));
          return;
        }
        const logits = this.decodeOps(entry.ids, rows, entry.next); // the next greedy step's input, already in place
        if (kind === 'full') copyInto(entry.logits, logits);
      });
      entry[kind] = graph;
      return graph;
    } catch (e) {
      this.useCudaGraphs = false;
      this.cudaGraphError = (e as Error).message;
      return null;
    }
  }

  /** Views of slots 0..n-1 of every layer's state, made once per batch size (views are immutable). */
  private batchViews(cache: { conv: Tensor[]; ssm: Tensor[] }, n: number): { conv: Tensor[]; ssm: Tensor[] } {
    let v = this.viewCache.get(n);
    if (!v) {
      v = { conv: cache.conv.map((t) => t.slice(0, 0, n)), ssm: cache.ssm.map((t) => t.slice(0, 0, n)) };
      this.viewCache.set(n, v);
    }
    return v;
  }

  /** @internal Scheduler engine: copies a sequence's state between slots. */
  moveSlot(from: number, to: number): void {
    const cache = this.ensureCache();
    for (let l = 0; l < this.config.numLayers; l++) {
      copyInto(cache.conv[l].slice(0, to, to + 1), cache.conv[l].slice(0, from, from + 1));
      copyInto(cache.ssm[l].slice(0, to, to + 1), cache.ssm[l].slice(0, from, from + 1));
    }
  }

  // ---- generation -------------------------------------------------------------------------------

  /** The scheduler that batches this model's concurrent generate() calls. */
  get scheduler(): Scheduler {
    this.sched ??= new Scheduler(this);
    return this.sched;
  }

  /**
   * New token ids after `prompt`, as an async iterable, decoding one token per step with the
   * recurrent state (the prompt is run once). Concurrent calls decode together in one batch.
   */
  generate(prompt: ArrayLike<number>, opts: GenerateOptions = {}): AsyncIterableIterator<number> {
    const ids = Int32Array.from(prompt as ArrayLike<number>);
    const V = this.config.vocabSize;
    for (const id of ids) if (id < 0 || id >= V) throw argError(`prompt: token id ${id} is outside the vocabulary [0, ${V})`);
    if (opts.stop !== undefined && (!Array.isArray(opts.stop) || opts.stop.some((s) => !Number.isInteger(s))))
      throw argError('stop: expected an array of token ids');
    const g = this.generation;
    return this.scheduler.submit({
      prompt: ids,
      maxNewTokens: opts.maxNewTokens ?? g.maxNewTokens,
      temperature: opts.temperature ?? g.temperature,
      topK: opts.topK ?? g.topK,
      topP: opts.topP ?? g.topP,
      seed: opts.seed,
      stop: opts.stop ?? g.stop,
      signal: opts.signal,
    });
  }

  /** Token ids of a text (needs tokenizer.json in the checkpoint folder). */
  encode(text: string): number[] {
    return this.needTokenizer().encode(text);
  }

  decode(ids: readonly number[]): string {
    return this.needTokenizer().decode(ids);
  }

  private needTokenizer(): TextTokenizer {
    if (!this.tokenizer) throw argError('this model folder has no tokenizer.json: pass token ids to generate() instead');
    return this.tokenizer;
  }

  /**
   * Text in, text out: the completion of `text` as an async iterable of text pieces (streamed as
   * tokens arrive; a piece never ends inside a multi-byte character).
   */
  generateText(text: string, opts: GenerateTextOptions = {}): AsyncGenerator<string> {
    const tok = this.needTokenizer();
    const prompt = tok.encode(text);
    if (!prompt.length) throw argError('text: encodes to no tokens');
    const stopIds = opts.stop?.filter((s): s is number => typeof s === 'number');
    const stopStrs = opts.stop?.filter((s): s is string => typeof s === 'string') ?? [];
    const ids = this.generate(prompt, { ...opts, stop: opts.stop === undefined ? undefined : stopIds });
    return detokenize(ids, (x) => tok.decode(x), stopStrs);
  }

  /** Frees the parameters and the state cache. */
  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned = [];
    this.resetDecodeGraphs();
    for (const v of this.viewCache.values()) for (const t of [...v.conv, ...v.ssm]) t.dispose();
    this.viewCache.clear();
    if (this.cache) for (const t of [...this.cache.conv, ...this.cache.ssm]) t.dispose();
    this.cache = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

