/**
 * Convolution kernels of structured state space layers (S4D, S4), one row per channel.
 * Complex inputs are interleaved (…, 2) = (re, im); each of Λ, P, B, C may be shared (n, 2)
 * or per channel (h, n, 2). Computed in float64 internally; the result is Re(K), doubled
 * with `conjugate: true` (when the n modes stand for n conjugate pairs).
 */
import { Tensor } from '../tensor';
import { cn, wrap } from './native';

export interface S4dKernelOptions {
  /** Continuous-time diagonal, (n, 2) or (h, n, 2). */
  Lambda: Tensor;
  /** (n, 2) or (h, n, 2); ones when absent. */
  B?: Tensor;
  /** (n, 2) or (h, n, 2). */
  C: Tensor;
  /** Step size: a number, or one per channel (h). */
  dt: number | Tensor;
  /** Kernel length. */
  L: number;
  /** 'zoh' (default) or 'bilinear'. */
  method?: 'zoh' | 'bilinear';
  /** Modes stand for conjugate pairs: K = 2·Re(…). Default false (K = Re(…)). */
  conjugate?: boolean;
}

/** S4D kernel K (h, L): K_l = Σ_n C_n B̄_n λ̄_n^l (Vandermonde), λ̄, B̄ from ZOH or bilinear. */
export function s4dKernel(opts: S4dKernelOptions): Tensor {
  return wrap(
    cn.classicalS4dKernel({
      Lambda: opts.Lambda,
      B: opts.B,
      C: opts.C,
      dt: opts.dt,
      L: opts.L,
      method: opts.method ?? 'zoh',
      conjugate: opts.conjugate ?? false,
    }),
  );
}

export interface S4KernelOptions {
  /** Diagonal part, (n, 2) or (h, n, 2): A = diag(Λ) − P Pᴴ. */
  Lambda: Tensor;
  /** Rank-1 term, (n, 2) or (h, n, 2). */
  P: Tensor;
  /** (n, 2) or (h, n, 2). */
  B: Tensor;
  /** (n, 2) or (h, n, 2): the output row C (not C̃; C̃ = C(I − Ā^L) is formed here). */
  C: Tensor;
  dt: number | Tensor;
  L: number;
  conjugate?: boolean;
}

/**
 * S4 (DPLR) kernel K (h, L) with K_l = C Ā^l B̄ for the bilinear discretisation of
 * A = diag(Λ) − P Pᴴ: the truncated generating function is evaluated at the L-th roots of
 * unity through a Cauchy kernel and the Woodbury identity, then inverted by a length-L DFT
 * (radix-2, or Bluestein for other L).
 */
export function s4Kernel(opts: S4KernelOptions): Tensor {
  return wrap(
    cn.classicalS4Kernel({
      Lambda: opts.Lambda,
      P: opts.P,
      B: opts.B,
      C: opts.C,
      dt: opts.dt,
      L: opts.L,
      conjugate: opts.conjugate ?? false,
    }),
  );
}
