/**
 * Float64 reference for the SSD scan, written straight from the recurrence (no chunking):
 *   dt' = clamp(softplus?(dt + dtBias), lo, hi)
 *   H_t = exp(dt'_t·A_h)·H_{t-1} + dt'_t·x_t ⊗ B_t,  H restarts at 0 where seqIdx changes
 *   y_t = H_t·C_t + D·x_t,  times silu(z_t)
 * Layouts as the op: x (b, l, h, p), dt (b, l, h), B/C (b, l, g, n), states (b, h, p, n).
 */
export interface SsdRefInputs {
  batch: number;
  seqlen: number;
  heads: number;
  headdim: number;
  dstate: number;
  groups: number;
  x: Float64Array;
  dt: Float64Array;
  A: Float64Array;
  B: Float64Array;
  C: Float64Array;
  D?: Float64Array;
  /** D has shape (heads, headdim) */
  dPerChannel?: boolean;
  z?: Float64Array;
  dtBias?: Float64Array;
  dtSoftplus?: boolean;
  dtLimit?: [number, number];
  initialStates?: Float64Array;
  seqIdx?: Int32Array;
}

export interface SsdRefOutputs {
  y: Float64Array;
  finalStates: Float64Array;
}

export function ssdReference(r: SsdRefInputs): SsdRefOutputs {
  const { batch, seqlen: L, heads: H, headdim: P, dstate: N, groups: G } = r;
  const hpg = H / G;
  const y = new Float64Array(batch * L * H * P);
  const fin = new Float64Array(batch * H * P * N);
  const state = new Float64Array(P * N);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / hpg);
      for (let i = 0; i < P * N; i++) state[i] = r.initialStates ? r.initialStates[(b * H + h) * P * N + i] : 0;
      for (let t = 0; t < L; t++) {
        if (r.seqIdx && t > 0 && r.seqIdx[b * L + t] !== r.seqIdx[b * L + t - 1]) state.fill(0);
        let d = r.dt[(b * L + t) * H + h] + (r.dtBias ? r.dtBias[h] : 0);
        if (r.dtSoftplus) d = d <= 20 ? Math.log1p(Math.exp(d)) : d;
        if (r.dtLimit) d = Math.min(Math.max(d, r.dtLimit[0]), r.dtLimit[1]);
        const decay = Math.exp(d * r.A[h]);
        const xo = ((b * L + t) * H + h) * P;
        const bo = ((b * L + t) * G + g) * N;
        for (let p = 0; p < P; p++) {
          let acc = 0;
          for (let n = 0; n < N; n++) {
            const k = p * N + n;
            state[k] = decay * state[k] + d * r.x[xo + p] * r.B[bo + n];
            acc += state[k] * r.C[bo + n];
          }
          const dv = r.D ? (r.dPerChannel ? r.D[h * P + p] : r.D[h]) : 0;
          let v = acc + dv * r.x[xo + p];
          if (r.z) {
            const zv = r.z[xo + p];
            v *= zv / (1 + Math.exp(-zv));
          }
          y[xo + p] = v;
        }
      }
      fin.set(state, (b * H + h) * P * N);
    }
  }
  return { y, finalStates: fin };
}
