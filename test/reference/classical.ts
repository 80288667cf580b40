/**
 * Float64 references for the classical toolkit, written straight from the equations with
 * naive loops: dense real and complex matrices (row-major Float64Array / [re, im] pairs),
 * Taylor-series matrix exponential, LTI recurrences, direct convolutions, explicit S4/S4D
 * powers, a textbook Kalman filter and brute-force Gaussian conditioning.
 */

export type M = Float64Array; // row-major real matrix
export type C = [number, number]; // complex number
export type CM = C[]; // row-major complex matrix

export function matmul(A: M, B: M, n: number, k: number, m: number): M {
  const C = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let l = 0; l < k; l++) s += A[i * k + l] * B[l * m + j];
      C[i * m + j] = s;
    }
  return C;
}

export function transpose(A: M, n: number, m: number): M {
  const T = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) T[j * n + i] = A[i * m + j];
  return T;
}

export function eye(n: number): M {
  const I = new Float64Array(n * n);
  for (let i = 0; i < n; i++) I[i * n + i] = 1;
  return I;
}

export const add = (A: M, B: M, s = 1): M => A.map((a, i) => a + s * B[i]);

/** Solves A X = B (A n x n, B n x m) by Gauss–Jordan elimination with partial pivoting. */
export function solve(A: M, B: M, n: number, m: number): M {
  const a = Float64Array.from(A), b = Float64Array.from(B);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[p * n + c])) p = r;
    for (let j = 0; j < n; j++) [a[c * n + j], a[p * n + j]] = [a[p * n + j], a[c * n + j]];
    for (let j = 0; j < m; j++) [b[c * m + j], b[p * m + j]] = [b[p * m + j], b[c * m + j]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r * n + c] / a[c * n + c];
      for (let j = 0; j < n; j++) a[r * n + j] -= f * a[c * n + j];
      for (let j = 0; j < m; j++) b[r * m + j] -= f * b[c * m + j];
    }
  }
  for (let r = 0; r < n; r++) for (let j = 0; j < m; j++) b[r * m + j] /= a[r * n + r];
  return b;
}

/** log det of a symmetric positive definite matrix (by elimination without pivoting). */
export function logdetSpd(A: M, n: number): number {
  const a = Float64Array.from(A);
  let s = 0;
  for (let c = 0; c < n; c++) {
    s += Math.log(a[c * n + c]);
    for (let r = c + 1; r < n; r++) {
      const f = a[r * n + c] / a[c * n + c];
      for (let j = c; j < n; j++) a[r * n + j] -= f * a[c * n + j];
    }
  }
  return s;
}

/** e^A = Σ A^k / k! summed until the terms vanish (A of modest norm). */
export function expmTaylor(A: M, n: number): M {
  let E = eye(n), term = eye(n);
  for (let k = 1; k < 200; k++) {
    term = matmul(term, A, n, n, n).map((x) => x / k);
    E = add(E, term);
    if (term.every((x) => Math.abs(x) < 1e-18)) break;
  }
  return E;
}

// ---------- complex ----------
export const cadd = (a: C, b: C): C => [a[0] + b[0], a[1] + b[1]];
export const csub = (a: C, b: C): C => [a[0] - b[0], a[1] - b[1]];
export const cmul = (a: C, b: C): C => [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
export const cconj = (a: C): C => [a[0], -a[1]];
export const cscale = (a: C, s: number): C => [a[0] * s, a[1] * s];
export function cdiv(a: C, b: C): C {
  const d = b[0] * b[0] + b[1] * b[1];
  return [(a[0] * b[0] + a[1] * b[1]) / d, (a[1] * b[0] - a[0] * b[1]) / d];
}
export const cexp = (a: C): C => [Math.exp(a[0]) * Math.cos(a[1]), Math.exp(a[0]) * Math.sin(a[1])];

/** Pairs of an interleaved array. */
export function pairs(x: ArrayLike<number>): C[] {
  const out: C[] = [];
  for (let i = 0; i < x.length; i += 2) out.push([x[i], x[i + 1]]);
  return out;
}
export const flat = (x: C[]): Float64Array => Float64Array.from(x.flat());

export function cmatmul(A: CM, B: CM, n: number, k: number, m: number): CM {
  const out: CM = [];
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s: C = [0, 0];
      for (let l = 0; l < k; l++) s = cadd(s, cmul(A[i * k + l], B[l * m + j]));
      out.push(s);
    }
  return out;
}

/** Solves A X = B for complex A (n x n), B (n x m). */
export function csolve(A: CM, B: CM, n: number, m: number): CM {
  const a = A.map((x) => [...x] as C), b = B.map((x) => [...x] as C);
  const abs = (z: C) => Math.hypot(z[0], z[1]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (abs(a[r * n + c]) > abs(a[p * n + c])) p = r;
    for (let j = 0; j < n; j++) [a[c * n + j], a[p * n + j]] = [a[p * n + j], a[c * n + j]];
    for (let j = 0; j < m; j++) [b[c * m + j], b[p * m + j]] = [b[p * m + j], b[c * m + j]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = cdiv(a[r * n + c], a[c * n + c]);
      for (let j = 0; j < n; j++) a[r * n + j] = csub(a[r * n + j], cmul(f, a[c * n + j]));
      for (let j = 0; j < m; j++) b[r * m + j] = csub(b[r * m + j], cmul(f, b[c * m + j]));
    }
  }
  for (let r = 0; r < n; r++) for (let j = 0; j < m; j++) b[r * m + j] = cdiv(b[r * m + j], a[r * n + r]);
  return b;
}

// ---------- LTI ----------
/** x_t = A x_{t-1} + B u_t, y_t = C x_t + D u_t; u (batch, m, L) -> y (batch, p, L), final states. */
export function simulateRef(A: M, B: M, C: M, D: M | null, u: M, x0: M | null, batch: number, n: number, m: number, p: number, L: number) {
  const y = new Float64Array(batch * p * L), xs = new Float64Array(batch * n);
  for (let b = 0; b < batch; b++) {
    let x = x0 ? x0.slice(b * n, b * n + n) : new Float64Array(n);
    for (let t = 0; t < L; t++) {
      const ut = Float64Array.from({ length: m }, (_, k) => u[(b * m + k) * L + t]);
      x = add(matmul(A, x, n, n, 1), matmul(B, ut, n, m, 1));
      const yt = matmul(C, x, p, n, 1);
      const dt = D ? matmul(D, ut, p, m, 1) : new Float64Array(p);
      for (let o = 0; o < p; o++) y[(b * p + o) * L + t] = yt[o] + dt[o];
    }
    xs.set(x, b * n);
  }
  return { y, state: xs };
}

/** K (p, m, L) with K[:, :, l] = C A^l B. */
export function kernelRef(A: M, B: M, C: M, n: number, m: number, p: number, L: number): M {
  const K = new Float64Array(p * m * L);
  let X = Float64Array.from(B);
  for (let l = 0; l < L; l++) {
    const CX = matmul(C, X, p, n, m);
    for (let o = 0; o < p; o++) for (let k = 0; k < m; k++) K[(o * m + k) * L + l] = CX[o * m + k];
    X = matmul(A, X, n, n, m);
  }
  return K;
}

/** Direct causal convolution; depthwise K (h, Lk) or MIMO K (p, m, Lk). */
export function convolveRef(u: M, K: M, D: M | null, batch: number, m: number, p: number, L: number, Lk: number, mimo: boolean): M {
  const y = new Float64Array(batch * p * L);
  for (let b = 0; b < batch; b++)
    for (let o = 0; o < p; o++)
      for (let t = 0; t < L; t++) {
        let s = 0;
        const ins = mimo ? Array.from({ length: m }, (_, k) => k) : [o];
        for (const k of ins) {
          const kr = mimo ? (o * m + k) * Lk : o * Lk;
          for (let j = 0; j <= t && j < Lk; j++) s += K[kr + j] * u[(b * m + k) * L + t - j];
          if (D) s += (mimo ? D[o * m + k] : D[o]) * u[(b * m + k) * L + t];
        }
        y[(b * p + o) * L + t] = s;
      }
  return y;
}

// ---------- S4 / S4D ----------
/** K_l = Re Σ_n C_n B̄_n λ̄_n^l with explicit repeated products (one channel). */
export function s4dKernelRef(lambda: C[], B: C[], Cv: C[], dt: number, L: number, method: 'zoh' | 'bilinear'): Float64Array {
  const K = new Float64Array(L);
  lambda.forEach((lam, i) => {
    let z: C, f: C;
    const a = cscale(lam, dt);
    if (method === 'zoh') {
      z = cexp(a);
      f = cdiv(csub(z, [1, 0]), lam);
    } else {
      const den = csub([1, 0], cscale(a, 0.5));
      z = cdiv(cadd([1, 0], cscale(a, 0.5)), den);
      f = cdiv([dt, 0], den);
    }
    let w = cmul(cmul(Cv[i], B[i]), f);
    for (let l = 0; l < L; l++) {
      K[l] += w[0];
      w = cmul(w, z);
    }
  });
  return K;
}

/** K_l = Re C Ā^l B̄ for A = diag(Λ) − P Pᴴ, bilinear, by dense complex matrices (one channel). */
export function s4KernelRef(lambda: C[], P: C[], B: C[], Cv: C[], dt: number, L: number): Float64Array {
  const n = lambda.length;
  const A: CM = [];
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) A.push(csub(i === j ? lambda[i] : [0, 0], cmul(P[i], cconj(P[j]))));
  const lhs = A.map((a, k) => csub(k % (n + 1) === 0 ? [1, 0] : [0, 0], cscale(a, dt / 2)));
  const rhs = A.map((a, k) => cadd(k % (n + 1) === 0 ? [1, 0] : [0, 0], cscale(a, dt / 2)));
  const Ab = csolve(lhs, rhs, n, n);
  let x = csolve(lhs, B.map((b) => cscale(b, dt)), n, 1);
  const K = new Float64Array(L);
  for (let l = 0; l < L; l++) {
    let s: C = [0, 0];
    for (let i = 0; i < n; i++) s = cadd(s, cmul(Cv[i], x[i]));
    K[l] = s[0];
    x = cmatmul(Ab, x, n, n, 1);
  }
  return K;
}

// ---------- Kalman ----------
export interface Lgssm {
  A: M; B?: M; C: M; Q: M; R: M; x0: M; P0: M; n: number; m: number; p: number;
}

/** Textbook filter (standard covariance update), NaN rows dropped. Returns means, covs, logLik. */
export function kalmanRef(s: Lgssm, z: M, u: M | null, T: number) {
  const { n, p, m } = s;
  let x = Float64Array.from(s.x0), P = Float64Array.from(s.P0);
  const means = new Float64Array(T * n), covs = new Float64Array(T * n * n);
  let ll = 0;
  for (let t = 0; t < T; t++) {
    if (t > 0) {
      x = matmul(s.A, x, n, n, 1);
      if (u && s.B) x = add(x, matmul(s.B, u.slice((t - 1) * m, t * m), n, m, 1));
      P = add(matmul(matmul(s.A, P, n, n, n), transpose(s.A, n, n), n, n, n), s.Q);
    }
    const obs = [...Array(p).keys()].filter((r) => !Number.isNaN(z[t * p + r]));
    const k = obs.length;
    if (k) {
      const Co = new Float64Array(k * n), Ro = new Float64Array(k * k), nu = new Float64Array(k);
      obs.forEach((r, a) => {
        Co.set(s.C.slice(r * n, r * n + n), a * n);
        obs.forEach((c, b) => (Ro[a * k + b] = s.R[r * p + c]));
      });
      const Cx = matmul(Co, x, k, n, 1);
      obs.forEach((r, a) => (nu[a] = z[t * p + r] - Cx[a]));
      const PCt = matmul(P, transpose(Co, k, n), n, n, k);
      const S = add(matmul(Co, PCt, k, n, k), Ro);
      const Kg = transpose(solve(S, transpose(PCt, n, k), k, n), k, n); // P Cᵀ S^{-1}
      x = add(x, matmul(Kg, nu, n, k, 1));
      P = add(P, matmul(matmul(Kg, Co, n, k, n), P, n, n, n), -1);
      const Sinv_nu = solve(S, nu, k, 1);
      ll += -0.5 * (k * Math.log(2 * Math.PI) + logdetSpd(S, k) + nu.reduce((a, v, i) => a + v * Sinv_nu[i], 0));
    }
    means.set(x, t * n);
    covs.set(P, t * n * n);
  }
  return { means, covs, logLik: ll };
}

/**
 * Brute force: the joint Gaussian of all states X = (x_0..x_{T-1}) and observed z entries,
 * conditioned on the observations. Returns E[x_t | z], Cov[x_t | z] and log p(z).
 */
export function conditionRef(s: Lgssm, z: M, u: M | null, T: number) {
  const { n, p, m } = s;
  const N = T * n;
  const mu = new Float64Array(N);
  const S = new Float64Array(N * N); // Cov(X)
  let x = Float64Array.from(s.x0);
  for (let t = 0; t < T; t++) {
    if (t > 0) {
      x = matmul(s.A, x, n, n, 1);
      if (u && s.B) x = add(x, matmul(s.B, u.slice((t - 1) * m, t * m), n, m, 1));
    }
    mu.set(x, t * n);
  }
  const block = (t: number, r: number) => {
    const out = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = S[(t * n + i) * N + r * n + j];
    return out;
  };
  const setBlock = (t: number, r: number, Bk: M) => {
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) S[(t * n + i) * N + r * n + j] = Bk[i * n + j];
  };
  const At = transpose(s.A, n, n);
  for (let t = 0; t < T; t++) {
    // Cov(x_t, x_t) = A Cov(x_{t-1}, x_{t-1}) Aᵀ + Q; Cov(x_t, x_r) = A Cov(x_{t-1}, x_r) for r < t
    const diag = t === 0 ? Float64Array.from(s.P0) : add(matmul(matmul(s.A, block(t - 1, t - 1), n, n, n), At, n, n, n), s.Q);
    for (let r = 0; r < t; r++) {
      const c = matmul(s.A, block(t - 1, r), n, n, n);
      setBlock(t, r, c);
      setBlock(r, t, transpose(c, n, n));
    }
    setBlock(t, t, diag);
  }
  const rows: Array<[number, number]> = []; // (t, r) of each observed entry
  for (let t = 0; t < T; t++) for (let r = 0; r < p; r++) if (!Number.isNaN(z[t * p + r])) rows.push([t, r]);
  const k = rows.length;
  const H = new Float64Array(k * N);
  rows.forEach(([t, r], a) => {
    for (let j = 0; j < n; j++) H[a * N + t * n + j] = s.C[r * n + j];
  });
  const Szz = matmul(matmul(H, S, k, N, N), transpose(H, k, N), k, N, k);
  rows.forEach(([t, r], a) =>
    rows.forEach(([t2, r2], b) => {
      if (t === t2) Szz[a * k + b] += s.R[r * p + r2];
    }),
  );
  const Sxz = matmul(S, transpose(H, k, N), N, N, k);
  const resid = Float64Array.from(rows, ([t, r], a) => z[t * p + r] - matmul(H.slice(a * N, a * N + N), mu, 1, N, 1)[0]);
  const w = solve(Szz, resid, k, 1);
  const meanX = add(mu, matmul(Sxz, w, N, k, 1));
  const covX = add(S, matmul(Sxz, solve(Szz, transpose(Sxz, N, k), k, N), N, k, N), -1);
  const means = new Float64Array(T * n), covs = new Float64Array(T * n * n);
  for (let t = 0; t < T; t++) {
    means.set(meanX.slice(t * n, t * n + n), t * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) covs[(t * n + i) * n + j] = covX[(t * n + i) * N + t * n + j];
  }
  const logLik = -0.5 * (k * Math.log(2 * Math.PI) + logdetSpd(Szz, k) + resid.reduce((a, v, i) => a + v * w[i], 0));
  return { means, covs, logLik };
}

/** A random symmetric positive definite matrix M Mᵀ + eps I. */
export function randomSpd(n: number, r: () => number, eps = 0.5): M {
  const X = Float64Array.from({ length: n * n }, () => r() * 2 - 1);
  return add(matmul(X, transpose(X, n, n), n, n, n), eye(n).map((v) => v * eps));
}
