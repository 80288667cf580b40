/**
 * Float64 reference of the Mamba-1 selective scan, written straight from the equations with
 * naive loops (no chunking, no vectorisation):
 *   dt = delta + bias, softplus'd when asked; x_t = exp(dt A) x_{t-1} + dt B_t u_t
 *   (x_{t-1} = 0 where seqIdx changes); y_t = sum_n C_tn x_tn + D u_t; y_t *= z_t sigmoid(z_t).
 */
export interface RefScanInputs {
  batch: number;
  dim: number;
  seqlen: number;
  dstate: number;
  u: Float64Array; // (batch, dim, seqlen)
  delta: Float64Array; // (batch, dim, seqlen)
  A: Float64Array; // (dim, dstate)
  B: Float64Array; // (dim, dstate) | (batch, groups, dstate, seqlen)
  bGroups: number; // 0 = time-invariant
  C: Float64Array;
  cGroups: number;
  D?: Float64Array;
  z?: Float64Array;
  deltaBias?: Float64Array;
  deltaSoftplus?: boolean;
  initialState?: Float64Array; // (batch, dim, dstate)
  seqIdx?: Int32Array; // (batch, seqlen)
}

export interface RefScanOutputs {
  y: Float64Array;
  lastState: Float64Array;
}

/** B or C value for (b, d, n, t); groups = 0 means the (dim, dstate) time-invariant form. */
function bc(m: Float64Array, groups: number, r: RefScanInputs, b: number, d: number, n: number, t: number): number {
  if (groups === 0) return m[d * r.dstate + n];
  const g = Math.floor(d / (r.dim / groups));
  return m[((b * groups + g) * r.dstate + n) * r.seqlen + t];
}

export function refSelectiveScan(r: RefScanInputs): RefScanOutputs {
  const { batch, dim, seqlen: L, dstate: N } = r;
  const y = new Float64Array(batch * dim * L);
  const lastState = new Float64Array(batch * dim * N);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < dim; d++) {
      const x = new Float64Array(N);
      for (let n = 0; n < N; n++) x[n] = r.initialState ? r.initialState[(b * dim + d) * N + n] : 0;
      for (let t = 0; t < L; t++) {
        const i = (b * dim + d) * L + t;
        if (r.seqIdx && t > 0 && r.seqIdx[b * L + t] !== r.seqIdx[b * L + t - 1]) x.fill(0);
        let dt = r.delta[i] + (r.deltaBias ? r.deltaBias[d] : 0);
        if (r.deltaSoftplus) dt = Math.log1p(Math.exp(dt));
        let acc = 0;
        for (let n = 0; n < N; n++) {
          x[n] = Math.exp(dt * r.A[d * N + n]) * x[n] + dt * bc(r.B, r.bGroups, r, b, d, n, t) * r.u[i];
          acc += bc(r.C, r.cGroups, r, b, d, n, t) * x[n];
        }
        acc += (r.D ? r.D[d] : 0) * r.u[i];
        if (r.z) acc *= r.z[i] / (1 + Math.exp(-r.z[i]));
        y[i] = acc;
      }
      for (let n = 0; n < N; n++) lastState[(b * dim + d) * N + n] = x[n];
    }
  }
  return { y, lastState };
}
