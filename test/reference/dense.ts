/** float64 references of the dense ops, naive loops from the definitions. */

/** out (M, N) = x (M, K) · w (N, K)ᵀ + bias. */
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, M: number, N: number, K: number, bias?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      out[m * N + n] = s;
    }
  return out;
}

export const siluRef = (v: number) => v / (1 + Math.exp(-v));
export const softplusRef = (v: number) => Math.log1p(Math.exp(v));

/** Rows of length d normalised over groups: r = x (+ residual) (· silu(z)); y = r/√(mean(r²)+eps)·w. */
export function rmsNormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  d: number,
  eps: number,
  opts: { residual?: ArrayLike<number>; z?: ArrayLike<number>; group?: number } = {},
): { y: Float64Array; residualOut: Float64Array } {
  const rows = x.length / d;
  const group = opts.group ?? d;
  const y = new Float64Array(x.length);
  const res = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const v = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      v[i] = x[r * d + i] + (opts.residual ? opts.residual[r * d + i] : 0);
      res[r * d + i] = v[i];
      if (opts.z) v[i] *= siluRef(opts.z[r * d + i]);
    }
    for (let g = 0; g < d; g += group) {
      let ss = 0;
      for (let i = g; i < g + group; i++) ss += v[i] * v[i];
      const scale = 1 / Math.sqrt(ss / group + eps);
      for (let i = g; i < g + group; i++) y[r * d + i] = v[i] * scale * w[i];
    }
  }
  return { y, residualOut: res };
}

/** Relative-error bounds of a GPU product against linearRef, by operand dtype (f32 accumulation). */
export const LINEAR_TOL: Record<string, number> = { float32: 1e-4, float16: 5e-3, bfloat16: 1.5e-2 };
