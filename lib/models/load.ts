/**
 * loadModel(dir): a Hugging Face checkpoint folder (config.json, model.safetensors or a sharded
 * index, generation_config.json and tokenizer.json when present) as a ready CausalLM.
 */
import { DType, isDType } from '../dtype';
import { Device, normalizeDevice } from '../device';
import { argError, dtypeError } from '../errors';
import { GenerationDefaults, ModelConfig, generationDefaultsFrom, loadConfig, loadGenerationDefaults } from './config';
import { CausalLM } from './lm';
import { MambaModel } from './mamba';
import { Mamba2Model } from './mamba2';
import { TensorStore } from './safetensors';
import { untracked } from './scope';
import { TextTokenizer, loadTokenizer } from './tokenizer';
import { CheckpointWeights, RandomWeights, WeightSource } from './weights';

export interface LoadOptions {
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: Device;
  /** Parameter dtype: default bfloat16 on CUDA, float32 on the CPU. */
  dtype?: DType;
  /** Sequences that can decode together (state slots; default 16). */
  maxBatch?: number;
  /** Prompts are prefilled in pieces of at most this many tokens, decode steps of running sequences in between (default 2048). */
  prefillChunk?: number;  /** On CUDA, replay each batch size's decode step as a captured CUDA graph (default true). */
  cudaGraphs?: boolean;
  /** dtype of the SSM state cache decoding updates in place: float32 (default) or bfloat16 (half the state traffic). */
  stateDtype?: DType;
}

function resolve(opts: LoadOptions): { device: Device; dtype: DType } {
  const device = normalizeDevice(opts.device);
  const dtype = opts.dtype ?? (device === 'cpu' ? 'float32' : 'bfloat16');
  if (!isDType(dtype) || dtype === 'int32') throw dtypeError(`dtype: expected float32, float16 or bfloat16, got ${JSON.stringify(dtype)}`);
  if (dtype === 'float64' && device !== 'cpu') throw dtypeError('dtype: float64 models run on the CPU only');
  return { device, dtype };
}

async function build(
  config: ModelConfig,
  generation: GenerationDefaults,
  tokenizer: TextTokenizer | null,
  weights: WeightSource,
  opts: LoadOptions,
): Promise<CausalLM> {
  const init = { config, generation, tokenizer, ...resolve(opts), maxBatch: opts.maxBatch, prefillChunk: opts.prefillChunk, cudaGraphs: opts.cudaGraphs, stateDtype: opts.stateDtype };
  // Parameters live as long as the model, not as long as a caller's tidy() scope.
  return untracked(() => (config.architecture === 'mamba' ? MambaModel.create(init, weights) : Mamba2Model.create(init, weights)));
}

/** Loads a MambaForCausalLM / Mamba2ForCausalLM / FalconMambaForCausalLM checkpoint folder. */
export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<CausalLM> {
  if (typeof dir !== 'string' || !dir) throw argError('dir: expected the path of a checkpoint folder');
  resolve(opts);
  const config = loadConfig(dir);
  const generation = loadGenerationDefaults(dir, config);
  const store = await TensorStore.openDir(dir);
  const tokenizer = await loadTokenizer(dir);
  return build(config, generation, tokenizer, new CheckpointWeights(store), opts);
}

/** A model of the given config.json contents with seeded random weights (benchmarks, tests). */
export async function randomModel(config: ModelConfig, opts: LoadOptions & { seed?: number } = {}): Promise<CausalLM> {
  return build(config, generationDefaultsFrom({}, config), null, new RandomWeights(opts.seed ?? 1), opts);
}
