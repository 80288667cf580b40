/**
 * `statespace bench selective-scan`: the Mamba-1 selective scan.
 * CUDA: batch 4, dim 4096, seqlen 4096, dstate 16, per-step B and C, with z, D, deltaBias and
 * softplus, in bf16 and f32: forward, and forward + backward (the forward returns its state
 * checkpoints, from which the backward recomputes the states).
 * Also the forward of one Mamba-2.8b layer's prefill (batch 1, dim 5120, seqlen 2048, bf16), where
 * the rows alone don't fill the GPU.
 * CPU: batch 1, dim 1536, seqlen 2048, dstate 16 in f32, reported as state updates per second.
 * GB/s counts the fewest bytes that must move (each input read once, each output written once).
 * On CUDA 'median ms' times samples of BACK_TO_BACK calls (the kernels queued behind each other,
 * as a model's layers run them); 'one call ms' times a single call per sample, so it also holds
 * the ~20-30 µs in which the GPU waits for the call's host dispatch (argument checks, output
 * allocations, the launch) after the start event.
 */
import { DType, Device, Tensor, dtypeSize, rand, randn, selectiveScan, selectiveScanBackward } from '../lib/index';
import type { SelectiveScanOptions } from '../lib/index';
import { copyBandwidth } from './copy';
import { Report } from './report';
import { timeIt } from './timing';

interface Shape {
  batch: number;
  dim: number;
  seqlen: number;
  dstate: number;
}

function inputs(s: Shape, dtype: DType, device: Device): SelectiveScanOptions {
  const io = [s.batch, s.dim, s.seqlen];
  const bc = [s.batch, s.dstate, s.seqlen];
  let seed = 1;
  const opt = { dtype, device };
  return {
    u: randn(io, { ...opt, seed: seed++ }),
    delta: rand(io, { ...opt, seed: seed++, low: -3, high: 0 }),
    z: randn(io, { ...opt, seed: seed++ }),
    B: randn(bc, { ...opt, seed: seed++ }),
    C: randn(bc, { ...opt, seed: seed++ }),
    A: rand([s.dim, s.dstate], { device, seed: seed++, low: -16, high: -1 }),
    D: randn([s.dim], { device, seed: seed++ }),
    deltaBias: rand([s.dim], { device, seed: seed++, low: -1, high: 0 }),
    deltaSoftplus: true,
  };
}

function disposeAll(r: object): void {
  for (const v of Object.values(r)) if (v instanceof Tensor) v.dispose();
}

/** Fewest bytes: forward reads u, delta, z, B, C and writes y; backward also reads dy and writes du, ddelta, dz, dB, dC. */
function minBytes(s: Shape, dtype: DType, backward: boolean): number {
  const e = dtypeSize(dtype);
  const io = s.batch * s.dim * s.seqlen * e, bc = s.batch * s.dstate * s.seqlen * e;
  const fwd = 4 * io + 2 * bc;
  return backward ? fwd + 7 * io + 4 * bc : fwd;
}

const BACK_TO_BACK = 10;

function bench(device: Device, s: Shape, dtype: DType, report: Report, quick: boolean, backward = true): void {
  const opts = inputs(s, dtype, device);
  const dy = randn([s.batch, s.dim, s.seqlen], { dtype, device, seed: 99 });
  const iters = device === 'cpu' ? (quick ? 3 : 5) : quick ? 5 : 20;
  const bw = copyBandwidth(device);
  const updates = s.batch * s.dim * s.seqlen * s.dstate;
  const passes: Array<[string, () => void]> = [['forward', () => disposeAll(selectiveScan(opts))]];
  if (backward) {
    passes.push([
      'forward+backward',
      () => {
        // the forward keeps its state checkpoints for the backward, as a training step would
        const fwd = selectiveScan({ ...opts, returnCheckpoints: true });
        disposeAll(selectiveScanBackward({ ...opts, dy, checkpoints: fwd.checkpoints }));
        disposeAll(fwd);
      },
    ]);
  }
  for (const [pass, fn] of passes) {
    const cuda = device !== 'cpu';
    const one = timeIt(device, fn, { iters, warmup: cuda ? 3 : 1 });
    const t = cuda ? timeIt(device, fn, { iters, warmup: 1, batch: BACK_TO_BACK }) : one;
    const bytes = minBytes(s, dtype, pass !== 'forward');
    const gbs = bytes / (t.ms / 1e3) / 1e9;
    report.add({
      device,
      dtype,
      shape: `${s.batch}x${s.dim}x${s.seqlen}x${s.dstate}`,
      pass,
      'first ms': one.firstMs,
      'one call ms': one.ms,
      'median ms': t.ms,
      'GB/s': gbs,
      'of copy bw': gbs / (bw / 1e9),
      'G updates/s': updates / (t.ms / 1e3) / 1e9,
    });
  }
  disposeAll(opts);
  dy.dispose();
}

export function run(devices: Device[], report: Report, opts: { quick: boolean }): void {
  for (const device of devices) {
    if (device === 'cpu') {
      bench(device, { batch: 1, dim: 1536, seqlen: 2048, dstate: 16 }, 'float32', report, opts.quick);
    } else {
      const s = { batch: 4, dim: 4096, seqlen: 4096, dstate: 16 };
      for (const dtype of ['bfloat16', 'float32'] as DType[]) bench(device, s, dtype, report, opts.quick);
      // one Mamba-2.8b layer's prefill (batch 1, 2048 tokens): few rows for 132 SMs
      bench(device, { batch: 1, dim: 5120, seqlen: 2048, dstate: 16 }, 'bfloat16', report, opts.quick, false);
    }
  }
}
