/**
 * `statespace bench generate`: end-to-end generation with random weights in the shapes of
 * mamba-130m, mamba-2.8b and mamba2-2.7b (no download): prefill of 2048 tokens, decode per token
 * at batch 1 and per step at batch 64, bf16 on CUDA; f32 on the CPU for the 130m shapes.
 *
 * Decode at batch 1 reads every weight once per token, so its floor is (bytes of weights) ÷
 * (measured copy bandwidth): the table gives that roofline and the fraction reached. Each decode
 * step includes the greedy choice of the next tokens on the device and reading the token ids
 * back, as generate() does for greedy requests; "b64 logits ms/step" is the same step reading
 * all logits back to the host instead. "b1 sampled ms/token" and "b64 sampled ms/step" draw the
 * tokens with a temperature and top-p where the logits are (stepSample, as generate() does for
 * sampling requests); "b64 host-sampled ms/step" reads the logits back and draws each row on the
 * host (the same rule), the way sampling worked before. On CUDA a step replays a captured CUDA graph (the default); "b1 eager" runs
 * the same step op by op, and "b1 eager dispatch ms" is the host time spent issuing its ops: when
 * it approaches the step time, the eager step is bound by op dispatch, not by the device.
 * "b1 graph device ms" is the device time of the batch-1 step alone (graph replays back to back,
 * nothing read back): the rest of "decode b1 ms/token" is the host's per-step cost. "b1 ms/token,
 * 8 steps/call" runs eight greedy steps per host round trip (stepGreedyMany), as generate() does
 * while no request waits to join; "b64 ms/step, 8 steps/call" is the same at batch 64: the
 * scheduler (lib/models/scheduler.ts, decode()) asks for several steps per call at any batch size,
 * a full one included, whenever every running sequence is greedy, no request waits to join or is
 * prefilling, and each wants that many more tokens (a request queued behind a full batch brings it
 * back to one step per call). It shows the batch-64 step without the host's per-step round trip.
 * mamba-2.8b-bf16state is mamba-2.8b with a bfloat16 SSM state on CUDA (Mamba-2 always decodes with one).
 * STATESPACE_BENCH_MODELS=mamba-2.8b,... picks shapes and STATESPACE_BENCH_PROFILE=0 skips the
 * per-op profiles (shorter runs, e.g. to compare two settings in one session).
 * STATESPACE_BENCH_VARIANTS='A=1 B=x;A=0' compares settings (environment variables read when a
 * decode step is captured) in one process: per model only the decode steps, every variant in
 * turn with its graphs captured anew, all of them twice (interleaved), one row per variant and round.
 */
import { Device, linearBackend, synchronize } from '../lib/index';
import { ModelConfig, normalizeConfig } from '../lib/models/config';
import type { CausalLM } from '../lib/models/lm';
import { randomModel } from '../lib/models/load';
import { sampleToken } from '../lib/models/sampling';
import { formatProfile, profileOps } from '../lib/models/profile';
import { copyBandwidth } from './copy';
import { Report } from './report';
import { timeIt } from './timing';

export const SHAPES: Record<string, Record<string, unknown>> = {
  'mamba-130m': { architectures: ['MambaForCausalLM'], vocab_size: 50280, hidden_size: 768, num_hidden_layers: 24, state_size: 16 },
  'mamba-2.8b': { architectures: ['MambaForCausalLM'], vocab_size: 50280, hidden_size: 2560, num_hidden_layers: 64, state_size: 16 },
  // the same with a bfloat16 SSM state, as mamba-ssm keeps it (its 5.09 ms figure): half the state traffic
  'mamba-2.8b-bf16state': { architectures: ['MambaForCausalLM'], vocab_size: 50280, hidden_size: 2560, num_hidden_layers: 64, state_size: 16 },
  'mamba2-2.7b': {
    architectures: ['Mamba2ForCausalLM'],
    vocab_size: 50288,
    hidden_size: 2560,
    num_hidden_layers: 64,
    state_size: 128,
    num_heads: 80,
    head_dim: 64,
    n_groups: 1,
    chunk_size: 256,
    tie_word_embeddings: true,
  },
};

/** Bytes of parameters one decode step reads (the embedding table once: as the LM head). */
function weightBytes(c: ModelConfig, dtype: string): number {
  const e = dtype === 'float32' ? 4 : 2;
  const d = c.hiddenSize, I = c.intermediateSize, N = c.stateSize;
  let perLayer: number;
  let f32: number;
  if (c.architecture === 'mamba') {
    const R = c.timeStepRank;
    perLayer = d + 2 * I * d + I * c.convKernel + I + (R + 2 * N) * I + I * R + I * d;
    f32 = I * N + 2 * I; // A, D, dt bias
  } else {
    const cd = I + 2 * c.nGroups * N;
    perLayer = d + (I + cd + c.numHeads) * d + cd * c.convKernel + cd + I + I * d;
    f32 = 3 * c.numHeads;
  }
  const head = c.vocabSize * d * (c.tieWordEmbeddings ? 1 : 2);
  return c.numLayers * (perLayer * e + f32 * 4) + (head + d) * e;
}

async function timeAsync(fn: () => Promise<unknown>, iters: number): Promise<{ ms: number; firstMs: number }> {
  const once = async () => {
    const t0 = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  const firstMs = await once();
  await once();
  const samples: number[] = [];
  for (let i = 0; i < iters; i++) samples.push(await once());
  samples.sort((a, b) => a - b);
  return { ms: samples[Math.floor(samples.length / 2)], firstMs };
}

/** ms per step of stepGreedyMany(tokens, steps) (median of `iters` calls); 'n/a' where it runs one step per call (no graph). */
async function stepsPerCall(m: CausalLM, tokens: Int32Array, steps: number, iters: number): Promise<number | string> {
  const ran = (await m.stepGreedyMany(tokens, steps)).length / tokens.length;
  if (ran < steps) return 'n/a';
  return (await timeAsync(() => m.stepGreedyMany(tokens, steps), iters)).ms / steps;
}

/** The variants of STATESPACE_BENCH_VARIANTS: ';'-separated lists of space-separated NAME=value settings. */
function variants(): Array<Record<string, string>> | null {
  const spec = process.env.STATESPACE_BENCH_VARIANTS;
  if (!spec) return null;
  return spec.split(';').map((v) => Object.fromEntries(v.trim().split(/\s+/).filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])));
}

/** Batch-1 and batch-64 greedy decode steps of `m` under each variant's settings, two interleaved rounds. */
async function decodeVariants(m: CausalLM, name: string, device: Device, list: Array<Record<string, string>>, report: Report): Promise<void> {
  const tok1 = Int32Array.of(17);
  const tok64 = Int32Array.from({ length: 64 }, (_, i) => (i * 31) % m.config.vocabSize);
  for (let round = 1; round <= 2; round++) {
    for (const v of list) {
      const saved = Object.fromEntries(Object.keys(v).map((k) => [k, process.env[k]]));
      Object.assign(process.env, v);
      try {
        m.resetDecodeGraphs();
        await m.stepGreedy(tok1); // eager, then the capture
        const b1 = await timeAsync(() => m.stepGreedy(tok1), 50);
        const b1Device = m.replayDecodeGraph(1) ? timeIt(device, () => m.replayDecodeGraph(1), { batch: 20, iters: 10 }).ms : null;
        await m.stepGreedy(tok64);
        const b64 = await timeAsync(() => m.stepGreedy(tok64), 20);
        const b64x8 = await stepsPerCall(m, tok64, 8, 5);
        const b64Device = m.replayDecodeGraph(64) ? timeIt(device, () => m.replayDecodeGraph(64), { batch: 5, iters: 10 }).ms : null;
        if (m.cudaGraphError) console.error(`${name}: the decode step runs eager: ${m.cudaGraphError}`);
        report.add({
          model: name,
          device,
          variant: Object.entries(v).map(([k, x]) => `${k.replace(/^STATESPACE_/, '')}=${x}`).join(' ') || '(defaults)',
          round,
          'decode b1 ms/token': b1.ms,
          'b1 graph device ms': b1Device ?? 'n/a',
          'decode b64 ms/step': b64.ms,
          'b64 ms/step, 8 steps/call': b64x8,
          'b64 graph device ms': b64Device ?? 'n/a',
        });
      } finally {
        for (const [k, x] of Object.entries(saved)) {
          if (x === undefined) delete process.env[k];
          else process.env[k] = x;
        }
      }
    }
  }
  m.resetDecodeGraphs();
}

export async function run(devices: Device[], report: Report, opts: { quick: boolean }): Promise<void> {
  const list = variants();
  for (const device of devices) {
    const cpu = device === 'cpu';
    // STATESPACE_BENCH_MODELS=a,b picks shapes (for A/B runs of one setting against another)
    const pick = process.env.STATESPACE_BENCH_MODELS?.split(',').filter((n) => n in SHAPES);
    const names = pick?.length ? pick : cpu ? ['mamba-130m'] : opts.quick ? ['mamba-130m', 'mamba2-2.7b'] : Object.keys(SHAPES);
    const dtype = cpu ? 'float32' : 'bfloat16';
    const bw = copyBandwidth(device);
    for (const name of names) {
      const cfg = normalizeConfig(SHAPES[name], name);
      const maxBatch = 64;
      const prefillLen = cpu && opts.quick ? 256 : 2048;
      let model: CausalLM | null = null;
      try {
        // Mamba-2 decodes with a bfloat16 state on CUDA (as the mamba-ssm figure it is compared with):
        // its f32 state would be ~21 GB of traffic per batch-64 step.
        const stateDtype = !cpu && (cfg.architecture === 'mamba2' || name.endsWith('-bf16state')) ? 'bfloat16' : 'float32';
        model = await randomModel(cfg, { device, dtype, maxBatch, seed: 7, stateDtype });
        const m = model;
        if (list) {
          await decodeVariants(m, name, device, list, report);
          continue;
        }
        const ids = Int32Array.from({ length: prefillLen }, (_, i) => (i * 7919) % cfg.vocabSize);
        const prefill = await timeAsync(() => m.prefill(ids, 0), cpu ? 2 : 5);
        const tok1 = Int32Array.of(17);
        // batch 1, ops issued one by one (the host's dispatch time is reported beside)
        const graphs = m.useCudaGraphs;
        m.useCudaGraphs = false;
        const dispatch: number[] = [];
        const eager = await timeAsync(async () => {
          await m.stepGreedy(tok1);
          dispatch.push(m.lastStepDispatchMs);
        }, cpu ? 10 : 30);
        dispatch.sort((a, b) => a - b);
        // batch 1 as a replayed CUDA graph (the default on CUDA)
        m.useCudaGraphs = graphs;
        const b1 = cpu ? eager : await timeAsync(() => m.stepGreedy(tok1), 50);
        // The device time of that step: graph replays back to back between two events, nothing
        // read back (b1 minus this is the host's share of a step: launch, read-back, promise)
        const b1Device = cpu || !m.replayDecodeGraph(1) ? null : timeIt(device, () => m.replayDecodeGraph(1), { batch: 20, iters: 10 }).ms;
        // Eight greedy steps per host round trip (what generate() does while nobody waits to join)
        const b1x8 = cpu ? null : await timeAsync(() => m.stepGreedyMany(tok1, 8), 20);
        // generate() end to end (scheduler, logits to the host, greedy choice there), batch 1
        const genTokens = cpu ? 16 : 128;
        const gen = await timeAsync(async () => {
          for await (const t of m.generate(ids.subarray(0, 16), { maxNewTokens: genTokens, temperature: 0, stop: [] })) void t;
        }, cpu ? 1 : 3);
        const tok64 = Int32Array.from({ length: maxBatch }, (_, i) => (i * 31) % cfg.vocabSize);
        const b64 = await timeAsync(() => m.stepGreedy(tok64), cpu ? 3 : 20);
        // Eight batch-64 greedy steps per host round trip (the scheduler's bursts at a full batch)
        const b64x8 = cpu ? 'n/a' : await stepsPerCall(m, tok64, 8, 10);
        const b64logits = await timeAsync(() => m.step(tok64), cpu ? 1 : 10);
        // Sampled decoding (temperature 0.8, top-p 0.95): drawn where the logits are (stepSample,
        // what generate() does for sampling requests), and for comparison the logits read back and
        // drawn on the host row by row (sampleToken: the same rule on the CPU)
        const o = { temperature: 0.8, topK: 0, topP: 0.95 };
        const sampleRows = (k: number) => Array.from({ length: k }, () => ({ ...o, uniform: Math.random() }));
        await m.stepSample(tok1, sampleRows(1)); // (captures the sampled graph of batch 1)
        const b1s = await timeAsync(() => m.stepSample(tok1, sampleRows(1)), cpu ? 3 : 50);
        await m.stepSample(tok64, sampleRows(maxBatch));
        const b64s = await timeAsync(() => m.stepSample(tok64, sampleRows(maxBatch)), cpu ? 1 : 20);
        const b64host = await timeAsync(async () => {
          for (const row of await m.step(tok64)) sampleToken(row, o, Math.random);
        }, cpu ? 1 : 3);
        await synchronize(device);
        // Where the time goes, per op and argument shapes (profile.ts: device time by CUDA events
        // around each op, and the host time spent issuing it), one prefill and one eager decode step.
        const profile = async (what: string, fn: () => Promise<unknown>) => {
          const s = await profileOps(device, fn);
          console.log(`  ${name} ${device} ${what} profile (GEMM: ${linearBackend(device)}):\n${formatProfile(s)}`);
        };
        const profiled = process.env.STATESPACE_BENCH_PROFILE !== '0';
        if (profiled) await profile(`prefill ${prefillLen}`, () => m.prefill(ids, 0));
        m.useCudaGraphs = false;
        if (profiled) {
          await profile('decode b1 (eager)', () => m.stepGreedy(tok1));
          await profile(`decode b${maxBatch} (eager)`, () => m.stepGreedy(tok64));
        }
        m.useCudaGraphs = graphs;
        const bytes = weightBytes(cfg, dtype);
        const rooflineMs = (bytes / bw) * 1e3;
        report.add({
          model: name,
          device,
          dtype,
          state: stateDtype,
          'weights GB': bytes / 1e9,
          [`prefill ${prefillLen} ms`]: prefill.ms,
          'prefill first ms': prefill.firstMs,
          'decode b1 ms/token': b1.ms,
          'b1 graph device ms': b1Device ?? 'n/a',
          'b1 ms/token, 8 steps/call': b1x8 ? b1x8.ms / 8 : 'n/a',
          'b1 eager ms/token': eager.ms,
          'b1 eager dispatch ms': dispatch[Math.floor(dispatch.length / 2)],
          'cuda graphs': cpu ? 'n/a' : m.useCudaGraphs ? 'yes' : `no: ${m.cudaGraphError ?? 'off'}`.slice(0, 60),
          'b1 roofline ms': rooflineMs,
          'b1 % of roofline': (100 * rooflineMs) / b1.ms,
          'generate() b1 ms/token': gen.ms / genTokens,
          'decode b64 ms/step': b64.ms,
          'b64 ms/step, 8 steps/call': b64x8,
          'b64 tokens/s': (maxBatch * 1e3) / b64.ms,
          'b64 logits ms/step': b64logits.ms,
          'b1 sampled ms/token': b1s.ms,
          'b64 sampled ms/step': b64s.ms,
          'b64 host-sampled ms/step': b64host.ms,
        });
      } catch (e) {
        report.add({ model: name, device, dtype, error: (e as Error).message.split('\n')[0].slice(0, 120) });
      } finally {
        model?.dispose();
      }
    }
  }
}
