/** Shared test utilities: error norms, random float64 data, GPU gating, poisoning. */
import { describe, expect } from 'vitest';
import { buildInfo, cudaAvailable, Tensor } from '../lib/index';

export const hasCuda = cudaAvailable();
let announced = false;

/** describe() for suites that need a CUDA device; skipped with a one-line reason without one. */
export function describeGpu(name: string, fn: () => void): void {
  if (!hasCuda && !announced) {
    announced = true;
    const b = buildInfo();
    console.log(`[test/gpu] skipped: no CUDA device (${b.cuda ? b.cudaUnavailable : 'built without CUDA'})`);
  }
  (hasCuda ? describe : describe.skip)(name, fn);
}

/** A small deterministic-per-call generator (seeded from Math.random: fresh inputs every run). */
export function rng(seed = Math.floor(Math.random() * 2 ** 31)): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** n standard normal float64 samples. */
export function randnArray(n: number, r = rng(), scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - r(), v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** n uniform samples in [lo, hi). */
export function uniformArray(n: number, lo: number, hi: number, r = rng()): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** ‖a − b‖ / ‖b‖ (b the reference); NaN anywhere gives Infinity. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) return Infinity;
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

export function expectClose(a: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what = ''): void {
  const e = relErr(a, ref);
  expect(e, `${what} rel err ${e}`).toBeLessThan(tol);
}

export function expectNoNaN(a: ArrayLike<number>, what = ''): void {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) expect.fail(`${what}: non-finite value ${a[i]} at ${i}`);
}

/** Expects fn to throw a coded error whose message mentions every `parts` string. */
export function expectCode(fn: () => unknown, code: string, ...parts: string[]): void {
  let err: (Error & { code?: string }) | undefined;
  try {
    fn();
  } catch (e) {
    err = e as Error & { code?: string };
  }
  expect(err, `expected ${code}`).toBeDefined();
  expect(err!.code, err!.message).toBe(code);
  for (const p of parts) expect(err!.message).toContain(p);
}

export async function values(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}
