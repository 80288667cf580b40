/**
 * Kalman filter and Rauch–Tung–Striebel smoother for the linear Gaussian model
 *   x_0 ~ N(x0, P0),   x_{t+1} = A x_t + B u_t + w_t,   z_t = C x_t + v_t,
 *   w_t ~ N(0, Q),     v_t ~ N(0, R).
 * NaN entries of z are missing observations: the update uses the observed rows only, and is
 * skipped when a whole z_t is missing. Covariances use the Joseph-form update and the
 * innovation covariance a Cholesky factorisation; everything is computed in float64.
 */
import { Tensor } from '../tensor';
import { cn, wrap } from './native';

export interface KalmanOptions {
  /** (n, n) transition. */
  A: Tensor;
  /** (n, m) input matrix; with u. */
  B?: Tensor;
  /** (p, n) observation matrix. */
  C: Tensor;
  /** (n, n) process noise covariance. */
  Q: Tensor;
  /** (p, p) observation noise covariance. */
  R: Tensor;
  /** (n) or (batch, n): prior mean of x_0. */
  x0: Tensor;
  /** (n, n): prior covariance of x_0. */
  P0: Tensor;
  /** (T, m) or (batch, T, m): u_t drives the step from t to t + 1 (the last row is unused). */
  u?: Tensor;
  /** (T, p) or (batch, T, p) observations, NaN where missing. */
  z: Tensor;
}

export interface KalmanResult {
  /** (T, n) or (batch, T, n): E[x_t | z_0..t] (filter) or E[x_t | z_0..T−1] (smoother). */
  means: Tensor;
  /** (T, n, n) or (batch, T, n, n): the matching covariances. */
  covs: Tensor;
  /** () or (batch): log p(z_0..T−1), the sum of the innovations' Gaussian log-densities. */
  logLik: Tensor;
}

function run(opts: KalmanOptions, smooth: boolean): KalmanResult {
  const { A, B, C, Q, R, x0, P0, u, z } = opts;
  const r = cn.classicalKalman({ A, B, C, Q, R, x0, P0, u, z }, smooth);
  return { means: wrap(r.means), covs: wrap(r.covs), logLik: wrap(r.logLik) };
}

/** Filtered means and covariances, and the log-likelihood. */
export function filter(opts: KalmanOptions): KalmanResult {
  return run(opts, false);
}

/** RTS-smoothed means and covariances (after a forward filter), and the log-likelihood. */
export function smooth(opts: KalmanOptions): KalmanResult {
  return run(opts, true);
}
