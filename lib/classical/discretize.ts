/**
 * Continuous to discrete time: x' = A x + B u becomes x_k = Ā x_{k-1} + B̄ u_k.
 */
import { Tensor } from '../tensor';
import { cn, wrap } from './native';

export type DiscretizeMethod = 'zoh' | 'bilinear' | 'euler' | 'backward-euler';

export interface DiscretizeOptions {
  /** Dense (n, n); a real diagonal as its entries (n); a complex diagonal as (n, 2) = (re, im) with `complex: true`. */
  A: Tensor;
  /** (n, m); for a complex diagonal A also complex (n, m, 2). */
  B: Tensor;
  /** Passed through unchanged (all four methods keep C and D). */
  C?: Tensor;
  D?: Tensor;
  /** Step size, > 0. */
  dt: number;
  /**
   * 'zoh' (exact for piecewise-constant input: Ā = e^{A dt}, B̄ = ∫₀^dt e^{As} ds B, from one
   * Padé-13 matrix exponential of the augmented matrix [[A, B], [0, 0]]·dt), 'bilinear'
   * (Tustin), 'euler' (forward), 'backward-euler'. Default 'zoh'.
   */
  method?: DiscretizeMethod;
  /** Treat a 1-D A as a real diagonal (implied by a 1-D A). */
  diagonal?: boolean;
  /** A is a complex diagonal (n, 2). */
  complex?: boolean;
}

export interface DiscreteSystem {
  /** Ā, shaped like A. */
  A: Tensor;
  /** B̄: (n, m), or (n, m, 2) for a complex diagonal A. */
  B: Tensor;
  C?: Tensor;
  D?: Tensor;
}

/**
 * Discretises an LTI system. Dense A runs in float64 internally whatever the dtype; a
 * diagonal A takes the elementwise fast path (B̄ = (e^{a dt} − 1)/a · b via expm1, so small
 * a·dt loses no precision).
 */
export function discretize(opts: DiscretizeOptions): DiscreteSystem {
  const r = cn.classicalDiscretize({
    A: opts.A,
    B: opts.B,
    dt: opts.dt,
    method: opts.method ?? 'zoh',
    diagonal: opts.diagonal ?? false,
    complex: opts.complex ?? false,
  });
  const out: DiscreteSystem = { A: wrap(r.Ad), B: wrap(r.Bd) };
  if (opts.C) out.C = opts.C;
  if (opts.D) out.D = opts.D;
  return out;
}
