/**
 * float64 reference of the depthwise causal conv1d, written from the definition:
 * y[b,d,t] = act(bias[d] + Σ_k w[d,k]·in(b,d,t-(W-1)+k)), where in(·, τ) is x at τ >= 0 and the
 * initial state (or 0) at τ < 0; with seqIdx, a tap counts only when its input belongs to the
 * same sequence as t (initial-state positions belong to seqIdx[b,0]).
 */
export interface Conv1dRefArgs {
  batch: number;
  dim: number;
  seqlen: number;
  width: number;
  x: ArrayLike<number>;
  weight: ArrayLike<number>;
  bias?: ArrayLike<number>;
  initialStates?: ArrayLike<number>;
  seqIdx?: ArrayLike<number>;
  silu?: boolean;
}

export function conv1dRef(a: Conv1dRefArgs): { y: Float64Array; finalStates: Float64Array } {
  const { batch, dim, seqlen: L, width: W } = a;
  const y = new Float64Array(batch * dim * L);
  const fin = new Float64Array(batch * dim * (W - 1));
  for (let b = 0; b < batch; b++) {
    const seqOf = (tau: number) => (a.seqIdx ? a.seqIdx[b * L + Math.max(tau, 0)] : 0);
    for (let d = 0; d < dim; d++) {
      const input = (tau: number): number => {
        if (tau >= 0) return a.x[(b * dim + d) * L + tau];
        return a.initialStates ? a.initialStates[(b * dim + d) * (W - 1) + (W - 1 + tau)] : 0;
      };
      for (let t = 0; t < L; t++) {
        let s = a.bias ? a.bias[d] : 0;
        for (let k = 0; k < W; k++) {
          const tau = t - (W - 1) + k;
          if (L > 0 && seqOf(tau) !== seqOf(t)) continue;
          s += a.weight[d * W + k] * input(tau);
        }
        y[(b * dim + d) * L + t] = a.silu ? s / (1 + Math.exp(-s)) : s;
      }
      for (let j = 0; j < W - 1; j++) {
        const tau = L - (W - 1) + j;
        const keep = L === 0 || seqOf(tau) === seqOf(L - 1);
        fin[(b * dim + d) * (W - 1) + j] = keep ? input(tau) : 0;
      }
    }
  }
  return { y, finalStates: fin };
}
