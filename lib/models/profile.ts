/**
 * Per-op timing of model code, for benchmarks. While `profileOps` runs, every op the models call
 * (through ops.ts) is timed under its name and the shapes of its first two tensor arguments
 * (`linear x=1x2048x2560 weight=10240x2560`; a `~` marks a strided view, which the op may copy),
 * so the four GEMMs of a layer show apart.
 * - CUDA: events recorded on the device's stream before and after each op (nothing waits): `ms`
 *   is the device time of the op's kernels, including any copy it makes of strided inputs and any
 *   gap while the host was still issuing the op; `hostMs` is the host time spent in the call.
 *   When the sum of hostMs approaches the wall time, the run is bound by op dispatch.
 * - CPU: the host queue is drained before and after each op; `ms` is the op's wall time.
 * Off (the default), an op call costs one extra function call.
 */
import { Device } from '../device';
import { native } from '../native';
import { synchronizeSync } from '../runtime';
import { Tensor } from '../tensor';

export type OpProfile = Record<string, { calls: number; ms: number; hostMs: number }>;

export interface ProfileSummary {
  /** Per op (name and argument shapes). */
  ops: OpProfile;
  /** Host wall time of the whole profiled function. */
  wallMs: number;
  /** Sum of the ops' device times (CUDA) or wall times (CPU). */
  opMs: number;
  /** Sum of the host time spent inside op calls. */
  hostMs: number;
}

interface Pending {
  key: string;
  a: object;
  b: object;
  hostMs: number;
}

let active: { device: Device; events: boolean; ops: OpProfile; pending: Pending[] } | null = null;

/** `name` and the shapes of the first two tensor-valued fields of the op's options object. */
function signature(name: string, args: unknown[]): string {
  const opts = args[0];
  if (!opts || typeof opts !== 'object') return name;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(opts as Record<string, unknown>)) {
    if (!(v instanceof Tensor)) continue;
    parts.push(`${k}=${v.shape.join('x')}${v.isContiguous ? '' : '~'}`);
    if (parts.length === 2) break;
  }
  return parts.length ? `${name} ${parts.join(' ')}` : name;
}

function entry(ops: OpProfile, key: string) {
  return (ops[key] ??= { calls: 0, ms: 0, hostMs: 0 });
}

/** Wraps an op so that profileOps can time it. */
export function timed<A extends unknown[], R>(name: string, op: (...args: A) => R): (...args: A) => R {
  return (...args: A): R => {
    if (!active) return op(...args);
    const { device, events, ops, pending } = active;
    const key = signature(name, args);
    if (events) {
      const a = (native.eventRecord as (d: string) => object)(device);
      const t0 = process.hrtime.bigint();
      const r = op(...args);
      const hostMs = Number(process.hrtime.bigint() - t0) / 1e6;
      pending.push({ key, a, b: (native.eventRecord as (d: string) => object)(device), hostMs });
      return r;
    }
    synchronizeSync(device);
    const t0 = process.hrtime.bigint();
    const r = op(...args);
    const hostMs = Number(process.hrtime.bigint() - t0) / 1e6;
    synchronizeSync(device);
    const e = entry(ops, key);
    e.calls++;
    e.ms += Number(process.hrtime.bigint() - t0) / 1e6;
    e.hostMs += hostMs;
    return r;
  };
}

/** Runs fn with every model op timed on `device` (not for CUDA graph captures). */
export async function profileOps<T>(device: Device, fn: () => Promise<T> | T): Promise<{ result: T } & ProfileSummary> {
  if (active) throw new Error('profileOps: already profiling');
  const events = device !== 'cpu' && !!native.eventRecord && !!native.eventElapsed;
  const state = { device, events, ops: {} as OpProfile, pending: [] as Pending[] };
  active = state;
  const t0 = process.hrtime.bigint();
  try {
    const result = await fn();
    synchronizeSync(device);
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    for (const p of state.pending) {
      const e = entry(state.ops, p.key);
      e.calls++;
      e.ms += (native.eventElapsed as (a: object, b: object) => number)(p.a, p.b);
      e.hostMs += p.hostMs;
    }
    const vals = Object.values(state.ops);
    return {
      result,
      ops: state.ops,
      wallMs,
      opMs: vals.reduce((s, v) => s + v.ms, 0),
      hostMs: vals.reduce((s, v) => s + v.hostMs, 0),
    };
  } finally {
    active = null;
  }
}

/** One line per op, the largest device time first: `ms/calls (host ms)`. */
export function formatProfile(s: ProfileSummary, limit = 40): string {
  const rows = Object.entries(s.ops).sort((a, b) => b[1].ms - a[1].ms);
  const lines = rows.slice(0, limit).map(([op, v]) => `    ${v.ms.toFixed(2).padStart(8)} ms ${String(v.calls).padStart(5)}x  host ${v.hostMs.toFixed(2).padStart(7)} ms  ${op}`);
  if (rows.length > limit) lines.push(`    … ${rows.length - limit} more`);
  return [`    ops ${s.opMs.toFixed(1)} ms, host in ops ${s.hostMs.toFixed(1)} ms, wall ${s.wallMs.toFixed(1)} ms`, ...lines].join('\n');
}
