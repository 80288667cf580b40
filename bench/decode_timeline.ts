/**
 * A decode step to look at under a profiler (not a suite): builds a random model in one of
 * `bench generate`'s shapes (bf16, CUDA), runs the greedy step of BATCH sequences (default 1)
 * once eagerly (which captures its graph), then replays the graph REPLAYS times back to back.
 *
 *   node dist/bench/decode_timeline.js mamba-2.8b 5 [BATCH]
 *   ncu --csv --metrics gpu__time_duration.sum,dram__bytes_read.sum -k 'regex:gemv|state_update|argmax|embedding' \
 *       --launch-count 110 node dist/bench/decode_timeline.js mamba-130m 1 > k.csv && node scripts/ncu_step.js k.csv
 *
 * Under ncu, the eager step's kernels come first (the same kernels as one replay). ncu runs the
 * kernels one at a time; for the replayed step as it runs (overlaps, gaps), a CUPTI timeline:
 *
 *   CUDA_INJECTION64_PATH=/tmp/libkernel_trace.so KERNEL_TRACE_OUT=k.csv node dist/bench/decode_timeline.js mamba2-2.7b 20
 *   node scripts/trace_step.js k.csv
 *
 * (scripts/kernel_trace.cpp says how to build the library on the GPU host.)
 */
import { synchronize } from '../lib/index';
import { normalizeConfig } from '../lib/models/config';
import { randomModel } from '../lib/models/load';
import { SHAPES } from './generate';

async function main(): Promise<void> {
  const name = process.argv[2] ?? 'mamba-2.8b';
  const replays = Number(process.argv[3] ?? 5);
  const batch = Number(process.argv[4] ?? 1);
  if (!(name in SHAPES)) throw new Error(`unknown shape ${name}: one of ${Object.keys(SHAPES).join(', ')}`);
  const cfg = normalizeConfig(SHAPES[name], name);
  // as `bench generate` runs it: a bfloat16 state for Mamba-2 and the -bf16state shapes
  const stateDtype = cfg.architecture === 'mamba2' || name.endsWith('-bf16state') ? 'bfloat16' : 'float32';
  const m = await randomModel(cfg, { device: 'cuda', dtype: 'bfloat16', maxBatch: batch, seed: 7, stateDtype });
  try {
    await m.stepGreedy(Int32Array.from({ length: batch }, (_, i) => (17 + 31 * i) % cfg.vocabSize)); // eager, then captured
    if (!m.replayDecodeGraph(batch, replays)) throw new Error(`no decode graph: ${m.cudaGraphError ?? 'graphs off'}`);
    await synchronize('cuda');
    const t0 = process.hrtime.bigint();
    m.replayDecodeGraph(batch, replays);
    await synchronize('cuda');
    console.log(`${name} batch ${batch}: ${replays} more replays, ${(Number(process.hrtime.bigint() - t0) / 1e6 / replays).toFixed(3)} ms each (host clock)`);
  } finally {
    m.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
