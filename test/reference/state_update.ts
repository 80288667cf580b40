/**
 * float64 reference of one selective-SSM decode step, straight from the recurrence
 * (mamba-ssm's selective_state_update): dt' = dt + dtBias (softplus'd when asked);
 * s ← exp(dt'·A)·s + dt'·B·x; y = Σ_n s·C + D·x; y *= silu(z).
 * Mamba-2 layout; the Mamba-1 form is the same with headdim 1 and A per (dim, state).
 */
export interface StateUpdateRefArgs {
  batch: number;
  heads: number;
  headdim: number;
  dstate: number;
  groups: number;
  state: Float64Array; // (batch, heads, headdim, dstate), updated in place
  x: ArrayLike<number>; // (batch, heads, headdim)
  dt: ArrayLike<number>; // (batch, heads)
  A: ArrayLike<number>; // (heads) or (heads, dstate) when aPerState
  aPerState: boolean;
  B: ArrayLike<number>; // (batch, groups, dstate)
  C: ArrayLike<number>;
  D?: ArrayLike<number>; // (heads) or (heads, headdim) when dPerRow
  dPerRow?: boolean;
  z?: ArrayLike<number>;
  dtBias?: ArrayLike<number>;
  dtSoftplus?: boolean;
  dtLimit?: [number, number];
}

export function stateUpdateRef(a: StateUpdateRefArgs): Float64Array {
  const { batch, heads: H, headdim: P, dstate: N, groups: G } = a;
  const y = new Float64Array(batch * H * P);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      let dt = a.dt[b * H + h] + (a.dtBias ? a.dtBias[h] : 0);
      if (a.dtSoftplus) dt = Math.log1p(Math.exp(dt));
      if (a.dtLimit) dt = Math.min(Math.max(dt, a.dtLimit[0]), a.dtLimit[1]);
      for (let p = 0; p < P; p++) {
        const row = (b * H + h) * P + p;
        const x = a.x[row];
        let out = 0;
        for (let n = 0; n < N; n++) {
          const A = a.aPerState ? a.A[h * N + n] : a.A[h];
          const s = Math.exp(dt * A) * a.state[row * N + n] + dt * a.B[(b * G + g) * N + n] * x;
          a.state[row * N + n] = s;
          out += s * a.C[(b * G + g) * N + n];
        }
        if (a.D) out += (a.dPerRow ? a.D[h * P + p] : a.D[h]) * x;
        if (a.z) {
          const z = a.z[row];
          out *= z / (1 + Math.exp(-z));
        }
        y[row] = out;
      }
    }
  }
  return y;
}
