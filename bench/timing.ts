/**
 * Timing for benchmarks: device events around the region on CUDA, the host clock after a
 * synchronisation on the CPU. Warm-up runs first; the median of the repeats is reported, and
 * the first call's time separately (to show there is no compilation or tuning on it).
 */
import { Device, synchronizeSync } from '../lib/index';
import { native } from '../lib/native';

export interface Timing {
  /** Median milliseconds per call. */
  ms: number;
  /** Milliseconds of the very first call (including any one-time setup). */
  firstMs: number;
  min: number;
  max: number;
  iters: number;
}

export interface TimeOptions {
  warmup?: number;
  iters?: number;
  /** Run fn() `batch` times per timed sample (short ops on CUDA). */
  batch?: number;
}

export function timeIt(device: Device, fn: () => void, opts: TimeOptions = {}): Timing {
  const iters = opts.iters ?? 20;
  const batch = opts.batch ?? 1;
  const cuda = device !== 'cpu';
  const sample = (n: number): number => {
    synchronizeSync(device);
    if (cuda && native.eventRecord && native.eventElapsed) {
      const a = native.eventRecord(device);
      for (let i = 0; i < n; i++) fn();
      const b = native.eventRecord(device);
      return native.eventElapsed(a, b) / n;
    }
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    synchronizeSync(device);
    return Number(process.hrtime.bigint() - t0) / 1e6 / n;
  };
  const firstMs = sample(1);
  for (let i = 0; i < (opts.warmup ?? 3); i++) sample(1);
  const samples = Array.from({ length: iters }, () => sample(batch)).sort((x, y) => x - y);
  return { ms: samples[Math.floor(samples.length / 2)], firstMs, min: samples[0], max: samples[samples.length - 1], iters };
}
