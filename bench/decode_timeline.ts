/**
 * A decode step to look at under a profiler (not a suite): builds a random model in one of
 * `bench generate`'s shapes (bf16, CUDA), runs the batch-1 greedy step once eagerly (which
 * captures its graph), then replays the graph REPLAYS times back to back.
 *
 *   node dist/bench/decode_timeline.js mamba-2.8b 5
 *   ncu --csv --metrics gpu__time_duration.sum,dram__bytes_read.sum -k 'regex:gemv|state_update|argmax|embedding' \
 *       --launch-count 110 node dist/bench/decode_timeline.js mamba-130m 1 > k.csv && node scripts/ncu_step.js k.csv
 *
 * Under ncu, the eager step's kernels come first (the same kernels as one replay).
 */
import { synchronize } from '../lib/index';
import { normalizeConfig } from '../lib/models/config';
import { randomModel } from '../lib/models/load';
import { SHAPES } from './generate';

async function main(): Promise<void> {
  const name = process.argv[2] ?? 'mamba-2.8b';
  const replays = Number(process.argv[3] ?? 5);
  if (!(name in SHAPES)) throw new Error(`unknown shape ${name}: one of ${Object.keys(SHAPES).join(', ')}`);
  const cfg = normalizeConfig(SHAPES[name], name);
  const stateDtype = cfg.architecture === 'mamba2' ? 'bfloat16' : 'float32';
  const m = await randomModel(cfg, { device: 'cuda', dtype: 'bfloat16', maxBatch: 1, seed: 7, stateDtype });
  try {
    await m.stepGreedy(Int32Array.of(17)); // eager, then captured
    if (!m.replayDecodeGraph(1, replays)) throw new Error(`no decode graph: ${m.cudaGraphError ?? 'graphs off'}`);
    await synchronize('cuda');
    const t0 = process.hrtime.bigint();
    m.replayDecodeGraph(1, replays);
    await synchronize('cuda');
    console.log(`${name}: ${replays} more replays, ${(Number(process.hrtime.bigint() - t0) / 1e6 / replays).toFixed(3)} ms each (host clock)`);
  } finally {
    m.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
