/**
 * Checks of decode steps on a state pool, shared by the CPU and CUDA tests: stateIndices /
 * convStateIndices map each batch row to a slot of a larger state (one slot per sequence in
 * flight); a negative slot is padding (y = 0), a slot past the pool is skipped with y = NaN.
 */
import { expect } from 'vitest';
import { Device, causalConv1dUpdate, selectiveStateUpdate, tensor } from '../lib/index';
import { expectClose, randnArray, rng, uniformArray } from './helpers';
import { stateUpdateRef } from './reference/state_update';

const idx = [3, -1, 0, 7]; // slot 7 is outside a 5-slot pool: skipped, y NaN
const SLOTS = 5;

/** A batch of 20 rows over a 23-slot pool (CUDA's batched Mamba-1 kernel: batch > 8), slots permuted, two padding rows, one past the pool. */
export const BIG_POOL = { idx: [5, 0, -1, 22, 7, 1, 19, 2, 30, 11, 4, 12, 3, 9, -1, 17, 6, 14, 21, 8], slots: 23, heads: 150 };

/** Mamba-2 rows of headdim 64 over the same pool: several 16-byte state rows per head. */
export const HEADDIM64_POOL = { ...BIG_POOL, heads: 5, headdim: 64 };

export async function checkStatePool(
  device: Device,
  m1: boolean,
  layout: { idx: number[]; slots: number; heads: number; headdim?: number } = { idx, slots: SLOTS, heads: m1 ? 6 : 4 },
) {
  const { idx, slots: SLOTS } = layout;
  const r = rng();
  const batch = idx.length, H = layout.heads, P = m1 ? 1 : (layout.headdim ?? 3), N = 16;
  const per = H * P * N;
  const pool = randnArray(SLOTS * per, r);
  const state = tensor(pool, m1 ? [SLOTS, H, N] : [SLOTS, H, P, N], { dtype: 'float32', device });
  const rowShape = m1 ? [batch, H] : [batch, H, P];
  const x = randnArray(batch * H * P, r), dt = randnArray(batch * H, r), z = randnArray(batch * H * P, r);
  const B = randnArray(batch * N, r), C = randnArray(batch * N, r);
  const A = uniformArray(m1 ? H * N : H, -2, -0.5, r);
  const t = (v: Float64Array, shape: number[]) => tensor(v, shape, { dtype: 'float32', device });
  const y = await selectiveStateUpdate({
    state,
    x: t(x, rowShape),
    dt: t(dt, [batch, H]),
    A: t(A, m1 ? [H, N] : [H]),
    B: t(B, [batch, 1, N]),
    C: t(C, [batch, 1, N]),
    z: t(z, rowShape),
    dtSoftplus: true,
    stateIndices: tensor(Int32Array.from(idx), [batch], { device }),
  }).data();
  // Reference: gather the used slots, run the plain recurrence, scatter back.
  const f32 = (v: Float64Array) => Float64Array.from(new Float32Array(v));
  const gathered = new Float64Array(batch * per);
  idx.forEach((s, b) => s >= 0 && s < SLOTS && gathered.set(f32(pool).subarray(s * per, (s + 1) * per), b * per));
  const yref = stateUpdateRef({
    batch, heads: H, headdim: P, dstate: N, groups: 1, state: gathered, x: f32(x), dt: f32(dt), A: f32(A), aPerState: m1,
    B: f32(B), C: f32(C), z: f32(z), dtSoftplus: true,
  });
  const expectPool = f32(pool);
  idx.forEach((s, b) => s >= 0 && s < SLOTS && expectPool.set(gathered.subarray(b * per, (b + 1) * per), s * per));
  const rows = H * P;
  for (let b = 0; b < batch; b++) {
    const got = y.subarray(b * rows, (b + 1) * rows);
    if (idx[b] < 0) expect(Array.from(got).every((v) => v === 0)).toBe(true);
    else if (idx[b] >= SLOTS) expect(Array.from(got).every((v) => Number.isNaN(v))).toBe(true);
    else expectClose(got, yref.subarray(b * rows, (b + 1) * rows), 1e-5, `row ${b}`);
  }
  expectClose(await state.data(), expectPool, 1e-6, 'pool (used slots updated, the rest untouched)');
}

export async function checkConvPool(device: Device) {
  const r = rng();
  const batch = idx.length, dim = 7, W = 4;
  const pool = randnArray(SLOTS * dim * (W - 1), r);
  const state = tensor(pool, [SLOTS, dim, W - 1], { dtype: 'float32', device });
  const x = randnArray(batch * dim, r), w = randnArray(dim * W, r);
  const y = await causalConv1dUpdate({
    x: tensor(x, [batch, dim], { dtype: 'float32', device }),
    convState: state,
    weight: tensor(w, [dim, W], { dtype: 'float32', device }),
    convStateIndices: tensor(Int32Array.from(idx), [batch], { device }),
  }).data();
  const f32 = (v: Float64Array) => Float64Array.from(new Float32Array(v));
  const [P, X, Wt] = [f32(pool), f32(x), f32(w)];
  const expectPool = Float64Array.from(P);
  for (let b = 0; b < batch; b++) {
    const s = idx[b];
    for (let d = 0; d < dim; d++) {
      const got = y[b * dim + d];
      if (s < 0) expect(got).toBe(0);
      else if (s >= SLOTS) expect(Number.isNaN(got)).toBe(true);
      else {
        const st = P.subarray((s * dim + d) * (W - 1), (s * dim + d + 1) * (W - 1));
        let acc = Wt[d * W + W - 1] * X[b * dim + d];
        for (let k = 0; k < W - 1; k++) acc += Wt[d * W + k] * st[k];
        expect(got).toBeCloseTo(acc, 4);
        const next = [...st.subarray(1), X[b * dim + d]];
        expectPool.set(next, (s * dim + d) * (W - 1));
      }
    }
  }
  expectClose(await state.data(), expectPool, 1e-7, 'conv pool');
}

