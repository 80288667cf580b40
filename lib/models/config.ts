/**
 * config.json and generation_config.json of Hugging Face Mamba / Mamba-2 / falcon-mamba
 * checkpoints, normalised into one typed ModelConfig.
 *
 * Python's json module writes float('inf') as a bare `Infinity` token (not JSON), and some tools
 * write `{"__float__": "Infinity"}` instead; both appear in Mamba-2's time_step_limit and both
 * parse here (as do -Infinity and NaN).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatError } from '../errors';

const SENTINEL = '\u0000statespace-float:';
const SPECIAL: Record<string, number> = { Infinity: Infinity, '-Infinity': -Infinity, NaN: NaN };

/**
 * JSON.parse that also accepts the bare tokens Infinity, -Infinity and NaN outside strings and
 * turns {"__float__": "Infinity" | "-Infinity" | "NaN" | "<number>"} objects into numbers.
 */
export function parseJsonWithSpecials(text: string, what = 'JSON'): unknown {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      // copy a string literal verbatim, honouring escapes
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const m = /^(-?Infinity|NaN)/.exec(text.slice(i, i + 9));
    if (m && !/[A-Za-z0-9_]/.test(text[i - 1] ?? '') && !/[A-Za-z0-9_]/.test(text[i + m[1].length] ?? '')) {
      out += JSON.stringify(SENTINEL + m[1]);
      i += m[1].length;
      continue;
    }
    out += c;
    i++;
  }
  try {
    return JSON.parse(out, (_k, v) => {
      if (typeof v === 'string' && v.startsWith(SENTINEL)) return SPECIAL[v.slice(SENTINEL.length)];
      if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && '__float__' in v) {
        const f = (v as { __float__: unknown }).__float__;
        const num = typeof f === 'number' ? f : typeof f === 'string' ? (SPECIAL[f] ?? Number(f)) : NaN;
        if (typeof f !== 'number' && !(typeof f === 'string' && (f in SPECIAL || f.trim() !== '' && !Number.isNaN(Number(f)))))
          throw formatError(`${what}: bad {"__float__": ${JSON.stringify(f)}}`);
        return num;
      }
      return v;
    });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_FORMAT') throw e;
    throw formatError(`${what}: not valid JSON (${(e as Error).message})`);
  }
}

export type Architecture = 'mamba' | 'mamba2';

export interface ModelConfig {
  architecture: Architecture;
  /** The class named in config.json (MambaForCausalLM, Mamba2ForCausalLM, FalconMambaForCausalLM). */
  className: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  intermediateSize: number;
  stateSize: number;
  convKernel: number;
  useBias: boolean;
  useConvBias: boolean;
  normEps: number;
  residualInFp32: boolean;
  tieWordEmbeddings: boolean;
  // Mamba-1
  timeStepRank: number;
  /** falcon-mamba: RMSNorm without weights on B, C and dt inside the mixer, with this eps. */
  mixerRmsEps: number | null;
  // Mamba-2
  numHeads: number;
  headDim: number;
  nGroups: number;
  chunkSize: number;
  /** Clamp of dt after softplus; null when (0, Infinity), the no-op default. */
  timeStepLimit: [number, number] | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
}

export interface GenerationDefaults {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  /** Tokens that end a sequence (eos_token_id, one or several). */
  stop: number[];
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw formatError(`${file}: cannot read: ${(e as Error).message}`);
  }
  return parseJsonWithSpecials(text, file);
}

/** Reads and normalises <dir>/config.json. */
export function loadConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  const raw = readJson(file);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw formatError(`${file}: expected a JSON object`);
  return normalizeConfig(raw as Record<string, unknown>, file);
}

/** Normalises a parsed config.json object (exported for tests and for in-memory models). */
export function normalizeConfig(c: Record<string, unknown>, what = 'config'): ModelConfig {
  const bad = (why: string) => formatError(`${what}: ${why}`);
  const archs = Array.isArray(c.architectures) ? (c.architectures as unknown[]).map(String) : [];
  const modelType = typeof c.model_type === 'string' ? c.model_type : '';
  let architecture: Architecture;
  let className: string;
  if (archs.includes('Mamba2ForCausalLM') || modelType === 'mamba2') {
    architecture = 'mamba2';
    className = 'Mamba2ForCausalLM';
  } else if (archs.includes('FalconMambaForCausalLM') || modelType === 'falcon_mamba') {
    architecture = 'mamba';
    className = 'FalconMambaForCausalLM';
  } else if (archs.includes('MambaForCausalLM') || modelType === 'mamba') {
    architecture = 'mamba';
    className = 'MambaForCausalLM';
  } else {
    throw bad(
      `unsupported model (architectures ${JSON.stringify(archs)}, model_type ${JSON.stringify(modelType)}); ` +
        'statespace loads MambaForCausalLM, Mamba2ForCausalLM and FalconMambaForCausalLM checkpoints',
    );
  }
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw bad(`${key}: expected a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || Number.isNaN(v)) throw bad(`${key}: expected a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'boolean') throw bad(`${key}: expected true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const tokenId = (key: string): number | null => {
    const v = c[key];
    if (Array.isArray(v)) return typeof v[0] === 'number' ? v[0] : null;
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
  };
  const hiddenSize = int('hidden_size');
  const expand = num('expand', 2);
  const intermediateSize = c.intermediate_size !== undefined ? int('intermediate_size') : Math.floor(expand * hiddenSize);
  if (!(intermediateSize > 0)) throw bad(`expand: gives intermediate size ${intermediateSize}`);
  const cfg: ModelConfig = {
    architecture,
    className,
    vocabSize: int('vocab_size'),
    hiddenSize,
    numLayers: int('num_hidden_layers'),
    intermediateSize,
    stateSize: int('state_size'),
    convKernel: int('conv_kernel', 4),
    useBias: bool('use_bias', false),
    useConvBias: bool('use_conv_bias', true),
    normEps: num('layer_norm_epsilon', 1e-5),
    residualInFp32: bool('residual_in_fp32', true),
    tieWordEmbeddings: bool('tie_word_embeddings', architecture === 'mamba'),
    timeStepRank: 0,
    mixerRmsEps: null,
    numHeads: 0,
    headDim: 0,
    nGroups: 1,
    chunkSize: 256,
    timeStepLimit: null,
    bosTokenId: tokenId('bos_token_id'),
    eosTokenId: tokenId('eos_token_id'),
    padTokenId: tokenId('pad_token_id'),
  };
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu' && act !== 'swish') throw bad(`hidden_act ${JSON.stringify(act)} is not supported (silu only)`);
  if (architecture === 'mamba') {
    const r = c.time_step_rank ?? 'auto';
    cfg.timeStepRank = r === 'auto' ? Math.ceil(hiddenSize / 16) : int('time_step_rank');
    if (className === 'FalconMambaForCausalLM') cfg.mixerRmsEps = num('mixer_rms_eps', 1e-6);
  } else {
    cfg.numHeads = int('num_heads');
    cfg.headDim = int('head_dim');
    cfg.nGroups = int('n_groups', 1);
    cfg.chunkSize = int('chunk_size', 256);
    if (cfg.numHeads * cfg.headDim !== intermediateSize)
      throw bad(`num_heads * head_dim = ${cfg.numHeads * cfg.headDim} must equal expand * hidden_size = ${intermediateSize}`);
    if (cfg.numHeads % cfg.nGroups !== 0) throw bad(`num_heads ${cfg.numHeads} is not divisible by n_groups ${cfg.nGroups}`);
    if (c.rms_norm === false) throw bad('rms_norm false (no gated norm) is not supported');
    const lim = c.time_step_limit ?? [0, Infinity];
    if (!Array.isArray(lim) || lim.length !== 2 || lim.some((v) => typeof v !== 'number' || Number.isNaN(v)) || lim[0] > lim[1])
      throw bad(`time_step_limit: expected [min, max], got ${JSON.stringify(lim)}`);
    cfg.timeStepLimit = lim[0] <= 0 && lim[1] === Infinity ? null : [lim[0], lim[1]];
  }
  return cfg;
}

/** generation_config.json defaults (greedy unless the file asks for sampling). */
export function loadGenerationDefaults(dir: string, cfg: ModelConfig): GenerationDefaults {
  const file = path.join(dir, 'generation_config.json');
  let g: Record<string, unknown> = {};
  if (fs.existsSync(file)) {
    const raw = readJson(file);
    if (raw && typeof raw === 'object' && !Array.isArray(raw)) g = raw as Record<string, unknown>;
  }
  return generationDefaultsFrom(g, cfg);
}

export function generationDefaultsFrom(g: Record<string, unknown>, cfg: ModelConfig): GenerationDefaults {
  const eos = g.eos_token_id ?? cfg.eosTokenId;
  const stop = (Array.isArray(eos) ? eos : [eos]).filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
  const sample = g.do_sample === true;
  const n = (v: unknown, fallback: number) => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);
  return {
    maxNewTokens: Math.max(1, Math.floor(n(g.max_new_tokens, 128))),
    temperature: sample ? n(g.temperature, 1) : 0,
    topK: Math.max(0, Math.floor(n(g.top_k, sample ? 50 : 0))),
    topP: n(g.top_p, 1),
    stop,
  };
}
