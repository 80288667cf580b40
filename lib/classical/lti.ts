/**
 * Discrete LTI systems  x_t = A x_{t−1} + B u_t,  y_t = C x_t + D u_t,  x_{−1} = x0,
 * in recurrent form (simulate), as an impulse-response kernel (kernel) and as an FFT
 * convolution (convolve). simulate(...).y equals convolve(u, kernel(...), {D}).
 */
import { Tensor } from '../tensor';
import { cn, wrap } from './native';

export interface SimulateOptions {
  /** (n, n) */
  A: Tensor;
  /** (n, m) */
  B: Tensor;
  /** (p, n) */
  C: Tensor;
  /** (p, m), optional feed-through. */
  D?: Tensor;
  /** (batch, m, L): a batch of input sequences, channels first (as the rest of statespace). */
  u: Tensor;
  /** (batch, n): the state before the first input; zeros when absent. */
  x0?: Tensor;
}

/**
 * Runs the recurrence over every sequence of the batch (in parallel over the batch).
 * Returns y (batch, p, L) and the final state (batch, n).
 */
export function simulate(opts: SimulateOptions): { y: Tensor; state: Tensor } {
  const r = cn.classicalSimulate({ A: opts.A, B: opts.B, C: opts.C, D: opts.D, u: opts.u, x0: opts.x0 });
  return { y: wrap(r.y), state: wrap(r.state) };
}

/** Impulse response K (p, m, L) with K[:, :, l] = C A^l B (computed in float64). */
export function kernel(opts: { A: Tensor; B: Tensor; C: Tensor; L: number }): Tensor {
  return wrap(cn.classicalKernel({ A: opts.A, B: opts.B, C: opts.C, L: opts.L }));
}

/**
 * Causal convolution y_t = Σ_{k ≤ t} K_k u_{t−k} + D u_t through real FFTs (radix-2, zero
 * padded to a power of two ≥ L + Lk − 1, so nothing wraps around).
 * - depthwise: u (batch, h, L), K (h, Lk), D (h): every channel has its own kernel;
 * - MIMO: u (batch, m, L), K (p, m, Lk) as returned by kernel(), D (p, m) → y (batch, p, L).
 * Taps beyond L are ignored.
 */
export function convolve(u: Tensor, K: Tensor, opts: { D?: Tensor } = {}): Tensor {
  return wrap(cn.classicalConvolve({ u, K, D: opts.D }));
}
