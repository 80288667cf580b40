/**
 * HiPPO matrices and the structured initialisations derived from them.
 * Complex values are interleaved: a trailing dimension of 2 holding (re, im).
 */
import { DType } from '../dtype';
import { Tensor } from '../tensor';
import { cn, wrap } from './native';

export type HippoKind = 'legs' | 'legt' | 'lagt' | 'fourier';
export type S4dInitKind = 'legs' | 'lin' | 'inv' | 'real';

export interface InitOptions {
  /** float32 (default) or float64. */
  dtype?: DType;
}

/**
 * The HiPPO transition x' = A x + B u for a measure, in the normalised bases of the S4 papers:
 * - 'legs' (scaled Legendre): A_nk = −√((2n+1)(2k+1)) for n > k, −(n+1) for n = k, 0 above; B_n = √(2n+1).
 * - 'legt' (translated Legendre, window 1): A_nk = −√((2n+1)(2k+1))·((−1)^{n−k} if n < k else 1); B_n = √(2n+1).
 * - 'lagt' (Laguerre): A_nk = −1 for n > k, −1/2 on the diagonal; B_n = 1.
 * - 'fourier' (FouT, N even): rotations at frequencies πk on (cos, sin) pairs minus the rank-1 term B Bᵀ;
 *   B = (1, 0, √2, 0, √2, …).
 * Returns A (N, N) and B (N, 1).
 */
export function hippo(kind: HippoKind, N: number, opts: InitOptions = {}): { A: Tensor; B: Tensor } {
  const r = cn.classicalHippo(kind, N, opts.dtype ?? 'float32');
  return { A: wrap(r.A), B: wrap(r.B) };
}

/**
 * Normal plus low rank form of a HiPPO matrix ('legs' or 'fourier'):
 * A = V (Λ − P Pᴴ) Vᴴ with V unitary (N, N, 2), Λ (N, 2), P (N, 2) and B = Vᴴ B_hippo (N, 2).
 * Λ comes from an eigen-decomposition of the Hermitian matrix i·K (Householder to tridiagonal, then QL), where
 * A + P₀P₀ᵀ = c·I + K (K skew-symmetric; P₀ = √(n + 1/2) for LegS). Modes are ordered by
 * decreasing imaginary part. N ≤ 1024.
 */
export function nplr(kind: 'legs' | 'fourier', N: number, opts: InitOptions = {}): { Lambda: Tensor; P: Tensor; B: Tensor; V: Tensor } {
  const r = cn.classicalNplr(kind, N, opts.dtype ?? 'float32');
  return { Lambda: wrap(r.Lambda), P: wrap(r.P), B: wrap(r.B), V: wrap(r.V) };
}

/**
 * Diagonal S4D initialisations: N complex modes Λ (N, 2) and B (N, 2). The modes stand for
 * conjugate pairs (a real system of size 2N), so pass `conjugate: true` to s4dKernel.
 * - 'legs': the eigenvalues with positive imaginary part of the normal part of HiPPO-LegS of
 *   size 2N (real part −1/2), with B projected on the eigenvectors.
 * - 'lin': λ_n = −1/2 + iπn.   - 'inv': λ_n = −1/2 + i(2N/π)(2N/(2n+1) − 1).
 * - 'real': λ_n = −(n + 1).    B = 1 except for 'legs'.
 */
export function s4dInit(kind: S4dInitKind, N: number, opts: InitOptions = {}): { Lambda: Tensor; B: Tensor } {
  const r = cn.classicalS4dInit(kind, N, opts.dtype ?? 'float32');
  return { Lambda: wrap(r.Lambda), B: wrap(r.B) };
}
