import { describe, expect, it } from 'vitest';
import { classical, tensor } from '../../lib/index';
import { expectClose, expectCode, expectNoNaN, randnArray, rng, values } from '../helpers';
import { conditionRef, eye, kalmanRef, Lgssm, randomSpd } from '../reference/classical';

const f64 = (x: ArrayLike<number>, shape: number[]) => tensor(Float64Array.from(x), shape);
const f32 = (x: ArrayLike<number>, shape: number[]) => tensor(Float32Array.from(x), shape);

function randomModel(n: number, m: number, p: number, r: () => number): Lgssm {
  return {
    A: randnArray(n * n, r, 0.8 / Math.sqrt(n)),
    B: m ? randnArray(n * m, r) : undefined,
    C: randnArray(p * n, r),
    Q: randomSpd(n, r, 0.2).map((x) => x * 0.3),
    R: randomSpd(p, r, 0.3).map((x) => x * 0.5),
    x0: randnArray(n, r),
    P0: randomSpd(n, r, 0.5),
    n, m, p,
  };
}

function opts(s: Lgssm, z: Float64Array, u: Float64Array | null, T: number, mk = f64, batch?: number) {
  const lead = batch === undefined ? [] : [batch];
  return {
    A: mk(s.A, [s.n, s.n]),
    B: s.B ? mk(s.B, [s.n, s.m]) : undefined,
    C: mk(s.C, [s.p, s.n]),
    Q: mk(s.Q, [s.n, s.n]),
    R: mk(s.R, [s.p, s.p]),
    x0: mk(s.x0, [s.n]),
    P0: mk(s.P0, [s.n, s.n]),
    u: u ? mk(u, [...lead, T, s.m]) : undefined,
    z: mk(z, [...lead, T, s.p]),
  };
}

/** Observations sampled from the model itself. */
function sample(s: Lgssm, u: Float64Array | null, T: number, r: () => number): Float64Array {
  const z = new Float64Array(T * s.p);
  let x = Float64Array.from(s.x0);
  for (let t = 0; t < T; t++) {
    if (t > 0) {
      const nx = new Float64Array(s.n);
      for (let i = 0; i < s.n; i++) {
        for (let j = 0; j < s.n; j++) nx[i] += s.A[i * s.n + j] * x[j];
        if (u && s.B) for (let k = 0; k < s.m; k++) nx[i] += s.B[i * s.m + k] * u[(t - 1) * s.m + k];
        nx[i] += 0.3 * randnArray(1, r)[0];
      }
      x = nx;
    }
    for (let o = 0; o < s.p; o++) {
      let v = 0.5 * randnArray(1, r)[0];
      for (let j = 0; j < s.n; j++) v += s.C[o * s.n + j] * x[j];
      z[t * s.p + o] = v;
    }
  }
  return z;
}

describe('classical.kalman.filter', () => {
  it('on a scalar random walk the gain converges to the Riccati steady state', async () => {
    const r = rng();
    const q = 0.1 + r(), R = 0.1 + 2 * r(), T = 200;
    const z = randnArray(T, r);
    const out = classical.kalman.filter({
      A: f64([1], [1, 1]), C: f64([1], [1, 1]), Q: f64([q], [1, 1]), R: f64([R], [1, 1]),
      x0: f64([0], [1]), P0: f64([10], [1, 1]), z: f64(z, [T, 1]),
    });
    // predicted variance P solves P²/(P + R) = q; the gain is K = P/(P + R) and the filtered variance K·R
    const P = (q + Math.sqrt(q * q + 4 * q * R)) / 2, K = P / (P + R);
    const covs = await values(out.covs);
    expect(covs[T - 1] / R).toBeCloseTo(K, 12);
    expect(Math.abs(covs[0] / R - K)).toBeGreaterThan(1e-3); // it did start elsewhere
  });

  it('matches the textbook filter (inputs, MIMO, log-likelihood), float64 and float32', async () => {
    const r = rng();
    const [n, m, p, T] = [4, 2, 3, 29];
    const s = randomModel(n, m, p, r);
    const u = randnArray(T * m, r);
    const z = sample(s, u, T, r);
    const ref = kalmanRef(s, z, u, T);
    const out = classical.kalman.filter(opts(s, z, u, T));
    expect(out.means.shape).toEqual([T, n]);
    expect(out.covs.shape).toEqual([T, n, n]);
    expect(out.logLik.shape).toEqual([]);
    expectClose(await values(out.means), ref.means, 1e-10, 'means');
    expectClose(await values(out.covs), ref.covs, 1e-10, 'covs');
    expect((await values(out.logLik))[0]).toBeCloseTo(ref.logLik, 8);
    const o32 = classical.kalman.filter(opts(s, z, u, T, f32));
    const m32 = await values(o32.means);
    expectNoNaN(m32);
    expectClose(m32, ref.means, 1e-5, 'f32 means');
  });

  it('its log-likelihood is the exact marginal log p(z) (brute-force joint Gaussian)', async () => {
    const r = rng();
    const [n, p, T] = [3, 2, 6];
    const s = randomModel(n, 0, p, r);
    const z = sample(s, null, T, r);
    const out = classical.kalman.filter(opts(s, z, null, T));
    expect((await values(out.logLik))[0]).toBeCloseTo(conditionRef(s, z, null, T).logLik, 8);
  });

  it('NaN observations are missing: a full-NaN step skips the update, a partial one uses the observed rows', async () => {
    const r = rng();
    const [n, p, T] = [3, 2, 12];
    const s = randomModel(n, 0, p, r);
    const z = sample(s, null, T, r);
    z[5 * p] = NaN;
    z[5 * p + 1] = NaN; // all of step 5
    z[8 * p + 1] = NaN; // one row of step 8
    const out = classical.kalman.filter(opts(s, z, null, T));
    const means = await values(out.means), covs = await values(out.covs);
    expectNoNaN(means, 'means');
    const ref = kalmanRef(s, z, null, T);
    expectClose(means, ref.means, 1e-10, 'means');
    expectClose(covs, ref.covs, 1e-10, 'covs');
    // step 5 is the prediction from step 4
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (let j = 0; j < n; j++) v += s.A[i * n + j] * means[4 * n + j];
      expect(means[5 * n + i]).toBeCloseTo(v, 12);
    }
    // and the likelihood is that of the observed entries only
    expect((await values(out.logLik))[0]).toBeCloseTo(conditionRef(s, z, null, T).logLik, 8);
  });

  it('filters a batch of sequences with per-sequence x0', async () => {
    const r = rng();
    const [n, m, p, T, batch] = [2, 1, 1, 15, 3];
    const s = randomModel(n, m, p, r);
    const us = randnArray(batch * T * m, r);
    const zs = new Float64Array(batch * T * p);
    const x0s = randnArray(batch * n, r);
    for (let b = 0; b < batch; b++) zs.set(sample(s, us.slice(b * T * m, (b + 1) * T * m), T, r), b * T * p);
    const o = opts(s, zs, us, T, f64, batch);
    const out = classical.kalman.filter({ ...o, x0: f64(x0s, [batch, n]) });
    expect(out.means.shape).toEqual([batch, T, n]);
    expect(out.logLik.shape).toEqual([batch]);
    const means = await values(out.means), ll = await values(out.logLik);
    for (let b = 0; b < batch; b++) {
      const ref = kalmanRef({ ...s, x0: x0s.slice(b * n, (b + 1) * n) }, zs.slice(b * T * p, (b + 1) * T * p), us.slice(b * T * m, (b + 1) * T * m), T);
      expectClose(means.slice(b * T * n, (b + 1) * T * n), ref.means, 1e-10, `batch ${b}`);
      expect(ll[b]).toBeCloseTo(ref.logLik, 8);
    }
  });

  it('rejects bad shapes, a missing u, and a non-positive-definite innovation covariance', async () => {
    const s = randomModel(2, 0, 1, rng());
    const o = opts(s, new Float64Array(5), null, 5);
    expectCode(() => classical.kalman.filter({ ...o, Q: f64([1], [1, 1]) }), 'ERR_SHAPE', 'Q', '(n, n)');
    expectCode(() => classical.kalman.filter({ ...o, R: f64([1, 0, 0, 1], [2, 2]) }), 'ERR_SHAPE', 'R');
    expectCode(() => classical.kalman.filter({ ...o, z: f64([1, 2], [1, 2]) }), 'ERR_SHAPE', 'z');
    expectCode(() => classical.kalman.filter({ ...o, B: f64([1, 1], [2, 1]) }), 'ERR_INVALID_ARG', 'u');
    expectCode(() => classical.kalman.filter({ ...o, x0: f32([0, 0], [2]) }), 'ERR_DTYPE', 'x0');
    const bad = classical.kalman.filter({ ...o, R: f64([-5], [1, 1]), P0: f64(eye(2).map(() => 0), [2, 2]) });
    await expect(bad.means.data()).rejects.toMatchObject({ code: 'ERR_NUMERIC' });
  });
});

describe('classical.kalman.smooth', () => {
  it('equals brute-force Gaussian conditioning of all states on all observations', async () => {
    const r = rng();
    for (const [n, m, p, T] of [[1, 0, 1, 5], [2, 1, 1, 7], [3, 2, 2, 6]]) {
      const s = randomModel(n, m, p, r);
      const u = m ? randnArray(T * m, r) : null;
      const z = sample(s, u, T, r);
      if (T > 4) z[3 * p] = NaN; // a missing entry too
      const out = classical.kalman.smooth(opts(s, z, u, T));
      const ref = conditionRef(s, z, u, T);
      expectClose(await values(out.means), ref.means, 1e-9, `means ${[n, m, p, T]}`);
      expectClose(await values(out.covs), ref.covs, 1e-9, `covs ${[n, m, p, T]}`);
      expect((await values(out.logLik))[0]).toBeCloseTo(ref.logLik, 8);
    }
  });

  it('agrees with the filter at the last step and shrinks covariances before it', async () => {
    const r = rng();
    const s = randomModel(2, 0, 1, r);
    const T = 20;
    const z = sample(s, null, T, r);
    const f = classical.kalman.filter(opts(s, z, null, T)), sm = classical.kalman.smooth(opts(s, z, null, T));
    const fm = await values(f.means), smm = await values(sm.means), fc = await values(f.covs), sc = await values(sm.covs);
    expectClose(smm.slice((T - 1) * 2), fm.slice((T - 1) * 2), 1e-12);
    for (let t = 0; t < T - 1; t++) expect(sc[t * 4] + sc[t * 4 + 3]).toBeLessThanOrEqual(fc[t * 4] + fc[t * 4 + 3] + 1e-12);
  });
});
