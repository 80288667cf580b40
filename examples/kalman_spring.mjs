#!/usr/bin/env node
// Tracks a noisy mass–spring–damper  m·x'' + c·x' + k·x = F + w  from noisy position readings
// alone, with statespace's Kalman filter and RTS smoother. The velocity is never measured:
// the filter infers it from the dynamics.
//
//   node examples/kalman_spring.mjs          # prints a summary
//   node examples/kalman_spring.mjs --json   # machine-readable (used by the tests)
import { classical, tensor } from 'statespace';

function gaussian(seed) {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

export async function trackSpring({
  m = 1.0, c = 0.4, k = 4.0,     // mass, damping, stiffness
  dt = 0.02, T = 1500,           // 30 s at 50 Hz
  forceNoise = 0.5,              // std of the unknown force disturbance (held over each step)
  posNoise = 0.05,               // std of the position sensor
  seed = Math.floor(Math.random() * 2 ** 31),
} = {}) {
  const randn = gaussian(seed);
  // State x = (position, velocity): x' = A x + B F.
  const A = tensor(new Float64Array([0, 1, -k / m, -c / m]), [2, 2]);
  const B = tensor(new Float64Array([0, 1 / m]), [2, 1]);
  const sys = classical.discretize({ A, B, dt, method: 'zoh' });
  const Ad = await sys.A.data(), Bd = await sys.B.data();

  // Known drive F(t) plus a random force w ~ N(0, forceNoise²): Q = σ² B̄ B̄ᵀ (+ a tiny jitter).
  const F = Float64Array.from({ length: T }, (_, t) => Math.sin(0.7 * t * dt) + 0.5 * Math.sin(2.3 * t * dt));
  const Q = new Float64Array(4);
  for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) Q[i * 2 + j] = forceNoise ** 2 * Bd[i] * Bd[j] + (i === j ? 1e-10 : 0);

  // Simulate the truth and the measurements.
  const truth = new Float64Array(T * 2), z = new Float64Array(T);
  let x = [1.0, 0.0];
  for (let t = 0; t < T; t++) {
    if (t > 0) {
      const f = F[t - 1] + forceNoise * randn();
      x = [Ad[0] * x[0] + Ad[1] * x[1] + Bd[0] * f, Ad[2] * x[0] + Ad[3] * x[1] + Bd[1] * f];
    }
    truth[2 * t] = x[0];
    truth[2 * t + 1] = x[1];
    z[t] = x[0] + posNoise * randn();
  }
  // A sensor dropout: two seconds without readings (NaN = missing).
  for (let t = 600; t < 700; t++) z[t] = NaN;

  const model = {
    A: sys.A, B: sys.B,
    C: tensor(new Float64Array([1, 0]), [1, 2]),
    Q: tensor(Q, [2, 2]),
    R: tensor(new Float64Array([posNoise ** 2]), [1, 1]),
    x0: tensor(new Float64Array([0, 0]), [2]),
    P0: tensor(new Float64Array([1, 0, 0, 1]), [2, 2]),
    u: tensor(F, [T, 1]),
    z: tensor(z, [T, 1]),
  };
  const filtered = classical.kalman.filter(model);
  const smoothed = classical.kalman.smooth(model);
  const fm = await filtered.means.data(), sm = await smoothed.means.data();

  const rmse = (est, comp, from = 50) => {
    let s = 0, n = 0;
    for (let t = from; t < T; t++) {
      if (est === z && Number.isNaN(z[t])) continue;
      const e = est === z ? z[t] : est[2 * t + comp];
      s += (e - truth[2 * t + comp]) ** 2;
      n++;
    }
    return Math.sqrt(s / n);
  };
  return {
    seed,
    rmse: {
      measuredPosition: rmse(z, 0),
      filteredPosition: rmse(fm, 0),
      smoothedPosition: rmse(sm, 0),
      filteredVelocity: rmse(fm, 1),
      smoothedVelocity: rmse(sm, 1),
    },
    velocityStd: Math.sqrt(truth.filter((_, i) => i % 2).reduce((a, v) => a + v * v, 0) / T),
    logLik: (await filtered.logLik.data())[0],
  };
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const r = await trackSpring();
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(r));
  } else {
    const f = (v) => v.toFixed(4);
    console.log(`mass–spring–damper, position observed (σ = 0.05), 2 s dropout, seed ${r.seed}`);
    console.log(`position RMSE: sensor ${f(r.rmse.measuredPosition)}  filtered ${f(r.rmse.filteredPosition)}  smoothed ${f(r.rmse.smoothedPosition)}`);
    console.log(`velocity RMSE: filtered ${f(r.rmse.filteredVelocity)}  smoothed ${f(r.rmse.smoothedVelocity)}  (velocity std ${f(r.velocityStd)})`);
    console.log(`log-likelihood ${r.logLik.toFixed(1)}`);
  }
}
