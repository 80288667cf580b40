/**
 * The ops the model code calls (lib/models/ops.ts), as plain float64 loops over host copies of
 * CPU tensors. Test-only: it pins down what the models expect of each op (shapes, layouts, flags)
 * and lets the model plumbing (slicing, transposes, state slots, scheduling) be tested against the
 * float64 reference before the real op families are merged. Not a fast path; not shipped.
 */
import { copyInto } from '../../lib/ops/copy_into';
import { Tensor, tensor } from '../../lib/tensor';

const silu = (v: number) => v / (1 + Math.exp(-v));
const sp = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));
const vals = (t: Tensor) => Float64Array.from(t.dataSync());
const out = (v: Float64Array, shape: readonly number[], like: Tensor) => tensor(Float32Array.from(v), shape, { dtype: like.dtype, device: like.device });
const f32 = (v: Float64Array, shape: readonly number[], device: Tensor['device']) => tensor(Float32Array.from(v), shape, { dtype: 'float32', device });

export { copyInto };

export function embedding({ ids, weight }: { ids: Tensor; weight: Tensor }): Tensor {
  const id = ids.dataSync() as Int32Array;
  const w = vals(weight);
  const d = weight.shape[1];
  const o = new Float64Array(id.length * d);
  id.forEach((k, i) => o.set(w.subarray(k * d, (k + 1) * d), i * d));
  return out(o, [...ids.shape, d], weight);
}

export function linear({ x, weight, bias }: { x: Tensor; weight: Tensor; bias?: Tensor }): Tensor {
  const [O, In] = weight.shape;
  if (x.shape[x.ndim - 1] !== In) throw new Error(`linear: x ${x.shape} vs weight ${weight.shape}`);
  const xv = vals(x), w = vals(weight), b = bias ? vals(bias) : null;
  const rows = xv.length / In;
  const o = new Float64Array(rows * O);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < O; j++) {
      let s = b ? b[j] : 0;
      for (let i = 0; i < In; i++) s += xv[r * In + i] * w[j * In + i];
      o[r * O + j] = s;
    }
  return out(o, [...x.shape.slice(0, -1), O], x);
}

export function rmsNorm({ x, weight, eps, residual }: { x: Tensor; weight: Tensor; eps?: number; residual?: Tensor }): { y: Tensor; residualOut?: Tensor } {
  const d = x.shape[x.ndim - 1];
  const e = eps ?? 1e-5;
  const v = vals(x), w = vals(weight);
  if (residual) {
    const r = vals(residual);
    for (let i = 0; i < v.length; i++) v[i] += r[i];
  }
  const o = new Float64Array(v.length);
  for (let s = 0; s < v.length; s += d) {
    let ss = 0;
    for (let i = s; i < s + d; i++) ss += v[i] * v[i];
    const k = 1 / Math.sqrt(ss / d + e);
    for (let i = s; i < s + d; i++) o[i] = v[i] * k * w[i - s];
  }
  return { y: out(o, x.shape, x), residualOut: residual ? out(v, x.shape, residual) : undefined };
}

export function gatedRmsNorm({ x, z, weight, eps, groupSize }: { x: Tensor; z: Tensor; weight: Tensor; eps?: number; groupSize?: number }): Tensor {
  eps ??= 1e-5;
  const xv = vals(x), zv = vals(z), w = vals(weight);
  const d = x.shape[x.ndim - 1];
  groupSize ??= d;
  const g = xv.map((v, i) => v * silu(zv[i]));
  const o = new Float64Array(g.length);
  for (let r = 0; r < g.length; r += d)
    for (let s = 0; s < d; s += groupSize) {
      let ss = 0;
      for (let i = s; i < s + groupSize; i++) ss += g[r + i] ** 2;
      const k = 1 / Math.sqrt(ss / groupSize + eps);
      for (let i = s; i < s + groupSize; i++) o[r + i] = g[r + i] * k * w[i];
    }
  return out(o, x.shape, x);
}

export function causalConv1d(o: { x: Tensor; weight: Tensor; bias?: Tensor; activation?: 'silu' | null; initialStates?: Tensor; returnFinalStates?: boolean }) {
  const [B, D, L] = o.x.shape;
  const W = o.weight.shape[1];
  const x = vals(o.x), w = vals(o.weight), b = o.bias ? vals(o.bias) : null;
  const init = o.initialStates ? vals(o.initialStates) : new Float64Array(B * D * (W - 1));
  const y = new Float64Array(B * D * L);
  const fin = new Float64Array(B * D * (W - 1));
  for (let bi = 0; bi < B; bi++)
    for (let d = 0; d < D; d++) {
      // the input extended on the left by the initial state
      const ext = [...init.subarray((bi * D + d) * (W - 1), (bi * D + d + 1) * (W - 1)), ...x.subarray((bi * D + d) * L, (bi * D + d + 1) * L)];
      for (let t = 0; t < L; t++) {
        let s = b ? b[d] : 0;
        for (let k = 0; k < W; k++) s += w[d * W + k] * ext[t + k];
        y[(bi * D + d) * L + t] = o.activation === 'silu' ? silu(s) : s;
      }
      fin.set(ext.slice(ext.length - (W - 1)), (bi * D + d) * (W - 1));
    }
  return { y: out(y, [B, D, L], o.x), finalStates: o.returnFinalStates ? out(fin, [B, D, W - 1], o.x) : undefined };
}

export function causalConv1dUpdate(o: { x: Tensor; convState: Tensor; weight: Tensor; bias?: Tensor; activation?: 'silu' | null }): Tensor {
  const [B, D] = o.x.shape;
  const W = o.weight.shape[1];
  const x = vals(o.x), st = vals(o.convState), w = vals(o.weight), b = o.bias ? vals(o.bias) : null;
  const y = new Float64Array(B * D);
  const next = new Float64Array(st.length);
  for (let bi = 0; bi < B; bi++)
    for (let d = 0; d < D; d++) {
      const win = [...st.subarray((bi * D + d) * (W - 1), (bi * D + d + 1) * (W - 1)), x[bi * D + d]];
      let s = b ? b[d] : 0;
      for (let k = 0; k < W; k++) s += w[d * W + k] * win[k];
      y[bi * D + d] = o.activation === 'silu' ? silu(s) : s;
      next.set(win.slice(1), (bi * D + d) * (W - 1));
    }
  copyInto(o.convState, out(next, o.convState.shape, o.convState));
  return out(y, [B, D], o.x);
}

export function selectiveScan(o: {
  u: Tensor; delta: Tensor; A: Tensor; B: Tensor; C: Tensor; D?: Tensor; z?: Tensor; deltaBias?: Tensor; deltaSoftplus?: boolean; initialState?: Tensor; returnLastState?: boolean;
}) {
  const [Bt, Dm, L] = o.u.shape;
  const N = o.A.shape[1];
  if (o.B.ndim !== 3) throw new Error('js selectiveScan: per-step B/C (batch, dstate, seqlen) only');
  const u = vals(o.u), dl = vals(o.delta), A = vals(o.A), Bv = vals(o.B), Cv = vals(o.C);
  const D = o.D ? vals(o.D) : null, z = o.z ? vals(o.z) : null, db = o.deltaBias ? vals(o.deltaBias) : null;
  const S = o.initialState ? vals(o.initialState) : new Float64Array(Bt * Dm * N);
  const y = new Float64Array(Bt * Dm * L);
  for (let b = 0; b < Bt; b++)
    for (let d = 0; d < Dm; d++)
      for (let t = 0; t < L; t++) {
        const i = (b * Dm + d) * L + t;
        let dt = dl[i] + (db ? db[d] : 0);
        if (o.deltaSoftplus) dt = sp(dt);
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const k = (b * Dm + d) * N + n;
          S[k] = Math.exp(dt * A[d * N + n]) * S[k] + dt * Bv[(b * N + n) * L + t] * u[i];
          acc += S[k] * Cv[(b * N + n) * L + t];
        }
        if (D) acc += D[d] * u[i];
        if (z) acc *= silu(z[i]);
        y[i] = acc;
      }
  return { y: out(y, o.u.shape, o.u), lastState: o.returnLastState ? f32(S, [Bt, Dm, N], o.u.device) : undefined };
}

export function ssdChunkScan(o: {
  x: Tensor; dt: Tensor; A: Tensor; B: Tensor; C: Tensor; chunkSize?: number; D?: Tensor; z?: Tensor; dtBias?: Tensor; dtSoftplus?: boolean; dtLimit?: [number, number];
  initialStates?: Tensor; returnFinalStates?: boolean;
}) {
  const [Bt, L, H, P] = o.x.shape;
  const [G, N] = [o.B.shape[2], o.B.shape[3]];
  const x = vals(o.x), dtv = vals(o.dt), A = vals(o.A), Bv = vals(o.B), Cv = vals(o.C);
  const D = o.D ? vals(o.D) : null, z = o.z ? vals(o.z) : null, db = o.dtBias ? vals(o.dtBias) : null;
  const S = o.initialStates ? vals(o.initialStates) : new Float64Array(Bt * H * P * N);
  const y = new Float64Array(x.length);
  for (let b = 0; b < Bt; b++)
    for (let t = 0; t < L; t++)
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / G));
        let dt = dtv[(b * L + t) * H + h] + (db ? db[h] : 0);
        if (o.dtSoftplus) dt = sp(dt);
        if (o.dtLimit) dt = Math.min(Math.max(dt, o.dtLimit[0]), o.dtLimit[1]);
        const dA = Math.exp(dt * A[h]);
        for (let p = 0; p < P; p++) {
          const xi = ((b * L + t) * H + h) * P + p;
          let acc = 0;
          for (let n = 0; n < N; n++) {
            const k = ((b * H + h) * P + p) * N + n;
            const bg = ((b * L + t) * G + g) * N + n;
            S[k] = dA * S[k] + dt * x[xi] * Bv[bg];
            acc += S[k] * Cv[bg];
          }
          if (D) acc += D[h] * x[xi];
          if (z) acc *= silu(z[xi]);
          y[xi] = acc;
        }
      }
  return { y: out(y, o.x.shape, o.x), finalStates: o.returnFinalStates ? f32(S, [Bt, H, P, N], o.x.device) : undefined };
}

export function selectiveStateUpdate(o: {
  state: Tensor; x: Tensor; dt: Tensor; A: Tensor; B: Tensor; C: Tensor; D?: Tensor; z?: Tensor; dtBias?: Tensor; dtSoftplus?: boolean;
}): Tensor {
  const S = vals(o.state), x = vals(o.x), dtv = vals(o.dt), A = vals(o.A), Bv = vals(o.B), Cv = vals(o.C);
  const D = o.D ? vals(o.D) : null, z = o.z ? vals(o.z) : null, db = o.dtBias ? vals(o.dtBias) : null;
  const y = new Float64Array(x.length);
  const dtOf = (raw: number, bias: number) => {
    const v = raw + bias;
    return o.dtSoftplus ? sp(v) : v;
  };
  if (o.state.ndim === 3) {
    const [Bt, Dm, N] = o.state.shape;
    for (let b = 0; b < Bt; b++)
      for (let d = 0; d < Dm; d++) {
        const i = b * Dm + d;
        const dt = dtOf(dtv[i], db ? db[d] : 0);
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const k = i * N + n;
          S[k] = Math.exp(dt * A[d * N + n]) * S[k] + dt * Bv[b * N + n] * x[i];
          acc += S[k] * Cv[b * N + n];
        }
        if (D) acc += D[d] * x[i];
        if (z) acc *= silu(z[i]);
        y[i] = acc;
      }
  } else {
    const [Bt, H, P, N] = o.state.shape;
    const G = o.B.shape[1];
    for (let b = 0; b < Bt; b++)
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / G));
        const dt = dtOf(dtv[b * H + h], db ? db[h] : 0);
        const dA = Math.exp(dt * A[h]);
        for (let p = 0; p < P; p++) {
          const i = (b * H + h) * P + p;
          let acc = 0;
          for (let n = 0; n < N; n++) {
            const k = i * N + n;
            S[k] = dA * S[k] + dt * x[i] * Bv[(b * G + g) * N + n];
            acc += S[k] * Cv[(b * G + g) * N + n];
          }
          if (D) acc += D[h] * x[i];
          if (z) acc *= silu(z[i]);
          y[i] = acc;
        }
      }
  }
  copyInto(o.state, f32(S, o.state.shape, o.state.device));
  return out(y, o.x.shape, o.x);
}
