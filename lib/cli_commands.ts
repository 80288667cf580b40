/**
 * The commands that feature modules add to the CLI (generate, serve): each one's usage (options
 * with their help) here, its implementation loaded on first use, so that other commands never load
 * model code.
 */
import type { CliSpec } from './cli_usage';

export interface Command {
  spec: CliSpec;
  run(args: string[]): Promise<void>;
}

const device = { type: 'string', arg: 'cpu|cuda|cuda:N', help: 'where the model runs (default cpu)' } as const;
const dtype = {
  type: 'string',
  arg: 'float32|bfloat16|float16',
  help: 'dtype the weights convert to on load (default bfloat16 on CUDA, float32 on the CPU)',
} as const;

export const generateSpec: CliSpec = {
  name: 'generate',
  synopsis: '<checkpoint dir> (--prompt TEXT | --prompt-ids IDS) [options]',
  summary: 'Streams a completion of a Hugging Face Mamba / Mamba-2 checkpoint folder to stdout (Ctrl-C stops it).',
  options: {
    prompt: { type: 'string', arg: 'TEXT', help: "text prompt (the folder's tokenizer.json encodes it)" },
    'prompt-ids': { type: 'string', arg: 'IDS', help: 'token ids instead, comma-separated, e.g. 1,2,3 (the output is ids too)' },
    'max-tokens': { type: 'string', arg: 'N', help: 'new tokens at most (default: generation_config.json, else 128)' },
    temperature: { type: 'string', arg: 'T', help: '0 is greedy (default: generation_config.json, else greedy)' },
    'top-k': { type: 'string', arg: 'K', help: 'sample among the K most likely tokens' },
    'top-p': { type: 'string', arg: 'P', help: 'sample within the smallest set of tokens of probability >= P' },
    seed: { type: 'string', arg: 'S', help: "the sampler's seed (the same seed gives the same text)" },
    device,
    dtype,
  },
  more: 'example: statespace generate ./mamba-130m-hf --prompt "Mamba is" --max-tokens 40 --temperature 0.8 --seed 1',
};

export const serveSpec: CliSpec = {
  name: 'serve',
  synopsis: '<checkpoint dir> [options]',
  summary: 'Serves a checkpoint folder over HTTP: OpenAI-style POST /v1/completions (streaming or not) and GET /health.',
  options: {
    port: { type: 'string', arg: 'N', default: '8000', help: 'TCP port (0: any free port)' },
    host: { type: 'string', arg: 'H', default: '127.0.0.1', help: 'address to listen on (0.0.0.0: every interface)' },
    'max-batch': { type: 'string', arg: 'N', help: 'sequences decoded together, one state slot each (default 16)' },
    name: { type: 'string', arg: 'MODEL', help: 'model name reported in responses (default: the folder)' },
    device,
    dtype,
  },
  more: 'example: statespace serve ./mamba-130m-hf --port 8000 --device cuda',
};

export const commands: Record<string, Command> = {
  generate: { spec: generateSpec, run: async (args) => (await import('./models/cli')).generateCommand(args) },
  serve: { spec: serveSpec, run: async (args) => (await import('./models/cli')).serveCommand(args) },
};
