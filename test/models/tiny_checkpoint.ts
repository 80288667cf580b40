/**
 * Tiny random checkpoints in the Hugging Face layout (config.json + model.safetensors), written
 * by the tests themselves, with the same weights as float64 arrays for the reference model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RefConfig, RefWeights } from '../reference/mamba_model';
import { randnArray, rng, uniformArray } from '../helpers';
import { NamedArray, WriteDType, toBf16Bits, toF16Bits, writeSafetensors } from './safetensors_writer';

const bitsView = new Uint32Array(1);
const floatView = new Float32Array(bitsView.buffer);
function bf16Value(v: number): number {
  bitsView[0] = toBf16Bits(v) << 16;
  return floatView[0];
}
function f16Value(v: number): number {
  const h = toF16Bits(v);
  const e = (h >> 10) & 0x1f, m = h & 0x3ff, sign = h & 0x8000 ? -1 : 1;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export interface TinySpec {
  architecture: 'mamba' | 'mamba2';
  vocab?: number;
  hidden?: number;
  layers?: number;
  state?: number;
  kernel?: number;
  rank?: number;
  heads?: number;
  headDim?: number;
  groups?: number;
  chunk?: number;
  useBias?: boolean;
  tie?: boolean;
  falcon?: boolean;
  limit?: [number, number] | null;
  dtype?: WriteDType;
}

export interface TinyCheckpoint {
  dir: string;
  config: RefConfig;
  weights: RefWeights;
  json: Record<string, unknown>;
}

export function writeTinyCheckpoint(dir: string, spec: TinySpec, seed = Math.floor(Math.random() * 2 ** 31)): TinyCheckpoint {
  const r = rng(seed);
  const m2 = spec.architecture === 'mamba2';
  const d = spec.hidden ?? (m2 ? 24 : 20);
  const V = spec.vocab ?? 53;
  const Lnum = spec.layers ?? 2;
  const N = spec.state ?? (m2 ? 16 : 7);
  const K = spec.kernel ?? 4;
  const I = 2 * d;
  const H = spec.heads ?? 6;
  const P = spec.headDim ?? I / H;
  const G = spec.groups ?? 2;
  const R = spec.rank ?? Math.ceil(d / 16);
  const useBias = spec.useBias ?? false;
  const tie = spec.tie ?? !m2;
  const config: RefConfig = {
    architecture: spec.architecture,
    vocabSize: V,
    hiddenSize: d,
    numLayers: Lnum,
    intermediateSize: I,
    stateSize: N,
    convKernel: K,
    normEps: 1e-5,
    useBias,
    useConvBias: true,
    tieWordEmbeddings: tie,
    timeStepRank: R,
    mixerRmsEps: spec.falcon ? 1e-6 : null,
    numHeads: m2 ? H : 0,
    headDim: m2 ? P : 0,
    nGroups: m2 ? G : 1,
    timeStepLimit: m2 ? (spec.limit ?? null) : null,
  };
  // values rounded to the stored dtype: what the file holds is exactly what the reference computes with
  const stored = spec.dtype ?? 'F32';
  const round = (v: number) => (stored === 'BF16' ? bf16Value(v) : stored === 'F16' ? f16Value(v) : Math.fround(v));
  const f32 = (a: Float64Array) => a.map(round);
  const randn = (n: number, scale = 1, mean = 0) => f32(randnArray(n, r, scale).map((v) => v + mean));
  const weights: RefWeights = {};
  const shapes: Record<string, number[]> = {};
  const put = (name: string, shape: number[], v: Float64Array) => {
    weights[name] = v;
    shapes[name] = shape;
  };
  const lin = (name: string, out: number, inp: number) => put(name, [out, inp], randn(out * inp, 1 / Math.sqrt(inp)));
  put('backbone.embeddings.weight', [V, d], randn(V * d));
  for (let l = 0; l < Lnum; l++) {
    const p = `backbone.layers.${l}.`;
    put(p + 'norm.weight', [d], randn(d, 0.3, 1));
    const mp = p + 'mixer.';
    if (!m2) {
      lin(mp + 'in_proj.weight', 2 * I, d);
      if (useBias) put(mp + 'in_proj.bias', [2 * I], randn(2 * I, 0.1));
      put(mp + 'conv1d.weight', [I, 1, K], randn(I * K, 0.5));
      put(mp + 'conv1d.bias', [I], randn(I, 0.2));
      lin(mp + 'x_proj.weight', R + 2 * N, I);
      lin(mp + 'dt_proj.weight', I, R);
      put(mp + 'dt_proj.bias', [I], f32(uniformArray(I, -4, 1, r)));
      put(mp + 'A_log', [I, N], f32(uniformArray(I * N, 0.5, 8, r).map(Math.log)));
      put(mp + 'D', [I], randn(I, 0.7, 1));
      lin(mp + 'out_proj.weight', d, I);
      if (useBias) put(mp + 'out_proj.bias', [d], randn(d, 0.1));
    } else {
      const cd = I + 2 * G * N;
      lin(mp + 'in_proj.weight', I + cd + H, d);
      if (useBias) put(mp + 'in_proj.bias', [I + cd + H], randn(I + cd + H, 0.1));
      put(mp + 'conv1d.weight', [cd, 1, K], randn(cd * K, 0.5));
      put(mp + 'conv1d.bias', [cd], randn(cd, 0.2));
      put(mp + 'dt_bias', [H], f32(uniformArray(H, -4, 1, r)));
      put(mp + 'A_log', [H], f32(uniformArray(H, 0.5, 8, r).map(Math.log)));
      put(mp + 'D', [H], randn(H, 0.7, 1));
      put(mp + 'norm.weight', [I], randn(I, 0.3, 1));
      lin(mp + 'out_proj.weight', d, I);
      if (useBias) put(mp + 'out_proj.bias', [d], randn(d, 0.1));
    }
  }
  put('backbone.norm_f.weight', [d], randn(d, 0.3, 1));
  if (!tie) lin('lm_head.weight', V, d);

  const json: Record<string, unknown> = {
    architectures: [m2 ? 'Mamba2ForCausalLM' : spec.falcon ? 'FalconMambaForCausalLM' : 'MambaForCausalLM'],
    model_type: m2 ? 'mamba2' : spec.falcon ? 'falcon_mamba' : 'mamba',
    vocab_size: V,
    hidden_size: d,
    num_hidden_layers: Lnum,
    state_size: N,
    expand: 2,
    conv_kernel: K,
    use_bias: useBias,
    use_conv_bias: true,
    layer_norm_epsilon: 1e-5,
    residual_in_fp32: true,
    tie_word_embeddings: tie,
    hidden_act: 'silu',
    eos_token_id: 0,
    bos_token_id: 0,
    pad_token_id: 0,
  };
  if (m2) Object.assign(json, { num_heads: H, head_dim: P, n_groups: G, chunk_size: spec.chunk ?? 8, rms_norm: true });
  else Object.assign(json, { time_step_rank: R, ...(spec.falcon ? { mixer_rms_eps: 1e-6 } : {}) });
  fs.mkdirSync(dir, { recursive: true });
  let text = JSON.stringify(json, null, 2);
  if (m2) {
    // as Python writes it: a bare Infinity token when the limit is open
    const lim = spec.limit ?? [0, Infinity];
    text = text.replace(/\n}$/, `,\n  "time_step_limit": [${lim[0]}, ${lim[1] === Infinity ? 'Infinity' : lim[1]}]\n}`);
  }
  fs.writeFileSync(path.join(dir, 'config.json'), text);
  const tensors: Record<string, NamedArray> = {};
  for (const [name, v] of Object.entries(weights)) tensors[name] = { shape: shapes[name], data: v, dtype: spec.dtype ?? 'F32' };
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return { dir, config, weights, json };
}
