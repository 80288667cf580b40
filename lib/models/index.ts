/** Models: Hugging Face Mamba / Mamba-2 checkpoints, generation, batching, serving. */
export { loadModel, randomModel } from './load';
export type { LoadOptions } from './load';
export { CausalLM } from './lm';
export type { GenerateOptions, GenerateTextOptions } from './lm';
export { MambaModel } from './mamba';
export { Mamba2Model } from './mamba2';
export { loadConfig, normalizeConfig, parseJsonWithSpecials } from './config';
export type { ModelConfig, GenerationDefaults } from './config';
export { TensorStore } from './safetensors';
export { Scheduler } from './scheduler';
export type { DecodeEngine, SequenceRequest, SchedulerStats } from './scheduler';
export { loadTokenizer } from './tokenizer';
export type { TextTokenizer } from './tokenizer';
export { serve } from './server';
export type { ServeOptions, CompletionModel } from './server';
