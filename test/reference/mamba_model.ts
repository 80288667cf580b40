/**
 * Float64 reference of the Mamba and Mamba-2 language models, written straight from the
 * equations with naive loops (one token at a time, explicit recurrent state). Independent of the
 * library's ops: only plain arrays. Weights are given by their Hugging Face names.
 *
 * Mamba-1 mixer:  [x, z] = W_in h;  u = silu(conv(x) + b);  [δr, B, C] = W_x u  (falcon-mamba: each
 *   RMS-normalised without weights);  δ = softplus(W_dt δr + b_dt);  S = exp(δ A) S + δ B u;
 *   y = (S C + D u) silu(z);  out = W_out y,  with A = -exp(A_log).
 * Mamba-2 mixer:  [z, xBC, dt] = W_in h;  xBC = silu(conv(xBC) + b);  per head h (group g):
 *   δ = clamp(softplus(dt_h + dt_bias_h), limit);  S_h = exp(δ A_h) S_h + δ x_h ⊗ B_g;
 *   y_h = S_h C_g + D_h x_h;  y = rmsnorm_groups(y silu(z)) w;  out = W_out y.
 * Blocks: h += mixer(rmsnorm(h) w_l);  logits = W_head (rmsnorm(h) w_f).
 */

export interface RefConfig {
  architecture: 'mamba' | 'mamba2';
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  intermediateSize: number;
  stateSize: number;
  convKernel: number;
  normEps: number;
  useBias: boolean;
  useConvBias: boolean;
  tieWordEmbeddings: boolean;
  timeStepRank: number;
  mixerRmsEps: number | null;
  numHeads: number;
  headDim: number;
  nGroups: number;
  timeStepLimit: [number, number] | null;
}

export type RefWeights = Record<string, Float64Array>;

const silu = (v: number) => v / (1 + Math.exp(-v));
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));

function rmsnorm(x: Float64Array, w: Float64Array | null, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * (w ? w[i] : 1));
}

/** y = W x (+ b), W (out, in) row-major. */
function matvec(W: Float64Array, x: Float64Array, out: number, b?: Float64Array): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < n; i++) s += W[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

/** Recurrent state of one sequence through every layer. */
interface SeqState {
  conv: Float64Array[][]; // per layer: the last K-1 conv inputs (oldest first)
  ssm: Float64Array[]; // per layer
}

export class ReferenceModel {
  constructor(readonly cfg: RefConfig, readonly W: RefWeights) {}

  private w(name: string): Float64Array {
    const t = this.W[name];
    if (!t) throw new Error(`reference: missing weight ${name}`);
    return t;
  }

  private convDim(): number {
    const c = this.cfg;
    return c.architecture === 'mamba' ? c.intermediateSize : c.intermediateSize + 2 * c.nGroups * c.stateSize;
  }

  newState(): SeqState {
    const c = this.cfg;
    const ssmSize = c.architecture === 'mamba' ? c.intermediateSize * c.stateSize : c.numHeads * c.headDim * c.stateSize;
    return {
      conv: Array.from({ length: c.numLayers }, () => Array.from({ length: c.convKernel - 1 }, () => new Float64Array(this.convDim()))),
      ssm: Array.from({ length: c.numLayers }, () => new Float64Array(ssmSize)),
    };
  }

  /** Depthwise causal conv of the newest input with the window, then silu; shifts the window. */
  private conv(l: number, st: SeqState, x: Float64Array): Float64Array {
    const K = this.cfg.convKernel;
    const p = `backbone.layers.${l}.mixer.`;
    const w = this.w(p + 'conv1d.weight');
    const b = this.cfg.useConvBias ? this.w(p + 'conv1d.bias') : null;
    const win = [...st.conv[l], x];
    const out = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      let s = b ? b[i] : 0;
      for (let k = 0; k < K; k++) s += w[i * K + k] * win[k][i];
      out[i] = silu(s);
    }
    st.conv[l] = win.slice(1);
    return out;
  }

  private mixer(l: number, st: SeqState, h: Float64Array): Float64Array {
    const c = this.cfg;
    const p = `backbone.layers.${l}.mixer.`;
    const I = c.intermediateSize, N = c.stateSize;
    const bias = (n: string) => (c.useBias ? this.w(p + n) : undefined);
    if (c.architecture === 'mamba') {
      const R = c.timeStepRank;
      const xz = matvec(this.w(p + 'in_proj.weight'), h, 2 * I, bias('in_proj.bias'));
      const u = this.conv(l, st, xz.slice(0, I));
      const xdbl = matvec(this.w(p + 'x_proj.weight'), u, R + 2 * N);
      let dr = xdbl.slice(0, R), B = xdbl.slice(R, R + N), C = xdbl.slice(R + N);
      if (c.mixerRmsEps !== null) [dr, B, C] = [dr, B, C].map((v) => rmsnorm(v, null, c.mixerRmsEps as number));
      const dt = matvec(this.w(p + 'dt_proj.weight'), dr, I, this.w(p + 'dt_proj.bias')).map(softplus);
      const Alog = this.w(p + 'A_log'), D = this.w(p + 'D');
      const S = st.ssm[l];
      const y = new Float64Array(I);
      for (let i = 0; i < I; i++) {
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const A = -Math.exp(Alog[i * N + n]);
          S[i * N + n] = Math.exp(dt[i] * A) * S[i * N + n] + dt[i] * B[n] * u[i];
          acc += S[i * N + n] * C[n];
        }
        y[i] = (acc + D[i] * u[i]) * silu(xz[I + i]);
      }
      return matvec(this.w(p + 'out_proj.weight'), y, c.hiddenSize, bias('out_proj.bias'));
    }
    const H = c.numHeads, P = c.headDim, G = c.nGroups;
    const cd = this.convDim();
    const proj = matvec(this.w(p + 'in_proj.weight'), h, I + cd + H, bias('in_proj.bias'));
    const z = proj.slice(0, I);
    const xbc = this.conv(l, st, proj.slice(I, I + cd));
    const dtRaw = proj.slice(I + cd);
    const Alog = this.w(p + 'A_log'), D = this.w(p + 'D'), dtb = this.w(p + 'dt_bias');
    const S = st.ssm[l];
    const y = new Float64Array(I);
    for (let hd = 0; hd < H; hd++) {
      const g = Math.floor(hd / (H / G));
      let dt = softplus(dtRaw[hd] + dtb[hd]);
      if (c.timeStepLimit) dt = Math.min(Math.max(dt, c.timeStepLimit[0]), c.timeStepLimit[1]);
      const dA = Math.exp(dt * -Math.exp(Alog[hd]));
      for (let q = 0; q < P; q++) {
        const xv = xbc[hd * P + q];
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const k = (hd * P + q) * N + n;
          S[k] = dA * S[k] + dt * xv * xbc[I + g * N + n];
          acc += S[k] * xbc[I + G * N + g * N + n];
        }
        y[hd * P + q] = acc + D[hd] * xv;
      }
    }
    // gated RMSNorm over groups of I/G channels
    const gs = I / G;
    const wn = this.w(p + 'norm.weight');
    const v = y.map((val, i) => val * silu(z[i]));
    const out = new Float64Array(I);
    for (let g = 0; g < G; g++) {
      let ss = 0;
      for (let i = g * gs; i < (g + 1) * gs; i++) ss += v[i] * v[i];
      const r = 1 / Math.sqrt(ss / gs + c.normEps);
      for (let i = g * gs; i < (g + 1) * gs; i++) out[i] = v[i] * r * wn[i];
    }
    return matvec(this.w(p + 'out_proj.weight'), out, c.hiddenSize, bias('out_proj.bias'));
  }

  /** Feeds one token; returns the logits after it. */
  step(st: SeqState, id: number): Float64Array {
    const c = this.cfg;
    const E = this.W['backbone.embeddings.weight'] ?? this.w('backbone.embedding.weight');
    let h = E.slice(id * c.hiddenSize, (id + 1) * c.hiddenSize);
    for (let l = 0; l < c.numLayers; l++) {
      const x = rmsnorm(h, this.w(`backbone.layers.${l}.norm.weight`), c.normEps);
      const m = this.mixer(l, st, x);
      h = h.map((v, i) => v + m[i]);
    }
    const f = rmsnorm(h, this.w('backbone.norm_f.weight'), c.normEps);
    const head = c.tieWordEmbeddings ? E : this.w('lm_head.weight');
    return matvec(head, f, c.vocabSize);
  }

  /** Logits (seqlen, vocab) of one sequence, flattened. */
  forward(ids: readonly number[]): Float64Array {
    const st = this.newState();
    const out = new Float64Array(ids.length * this.cfg.vocabSize);
    ids.forEach((id, t) => out.set(this.step(st, id), t * this.cfg.vocabSize));
    return out;
  }

  /** Greedy continuation (argmax, first index on ties). */
  greedy(prompt: readonly number[], n: number): number[] {
    const st = this.newState();
    let logits = new Float64Array(0);
    for (const id of prompt) logits = this.step(st, id);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
      out.push(best);
      logits = this.step(st, best);
    }
    return out;
  }
}
