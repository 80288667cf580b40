/**
 * Per-op timing of model code, for benchmarks: while `profileOps` runs, every op the models call
 * (through ops.ts) waits for the device before and after, and its time is added to its name.
 * The times include the op's host dispatch and any copy it makes of strided inputs. Off (the
 * default), an op call costs one extra function call.
 */
import { Device } from '../device';
import { synchronizeSync } from '../runtime';

export type OpProfile = Record<string, { calls: number; ms: number }>;

let active: { device: Device; ops: OpProfile } | null = null;

/** Wraps an op so that profileOps can time it. */
export function timed<A extends unknown[], R>(name: string, op: (...args: A) => R): (...args: A) => R {
  return (...args: A): R => {
    if (!active) return op(...args);
    const { device, ops } = active;
    synchronizeSync(device);
    const t0 = process.hrtime.bigint();
    const r = op(...args);
    synchronizeSync(device);
    const e = (ops[name] ??= { calls: 0, ms: 0 });
    e.calls++;
    e.ms += Number(process.hrtime.bigint() - t0) / 1e6;
    return r;
  };
}

/** Runs fn with every model op timed on `device` (not for CUDA graph captures, which refuse waits). */
export async function profileOps<T>(device: Device, fn: () => Promise<T> | T): Promise<{ result: T; ops: OpProfile }> {
  if (active) throw new Error('profileOps: already profiling');
  active = { device, ops: {} };
  try {
    const result = await fn();
    return { result, ops: active.ops };
  } finally {
    active = null;
  }
}
