/**
 * `statespace generate <dir> --prompt "…"`: streams a completion to stdout.
 * `statespace serve <dir> --port N`: the OpenAI-style completions server (lib/models/server.ts).
 */
import { parseArgs } from 'node:util';
import { Device } from '../device';
import { DType } from '../dtype';
import { argError } from '../errors';
import { loadModel } from './load';
import { serve } from './server';
import { detokenize } from './text_stream';

const common = {
  device: { type: 'string' },
  dtype: { type: 'string' },
} as const;

function numberOpt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw argError(`--${name}: expected a number, got ${JSON.stringify(v)}`);
  return n;
}

export async function generateCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...common,
      prompt: { type: 'string' },
      'prompt-ids': { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
    },
  });
  if (positionals.length !== 1 || (values.prompt === undefined) === (values['prompt-ids'] === undefined)) {
    console.error(
      'usage: statespace generate <checkpoint dir> (--prompt TEXT | --prompt-ids 1,2,3) [--max-tokens N] [--temperature T]\n' +
        '       [--top-k K] [--top-p P] [--seed S] [--device cpu|cuda] [--dtype float32|bfloat16|float16]',
    );
    process.exitCode = 2;
    return;
  }
  const model = await loadModel(positionals[0], { device: values.device as Device | undefined, dtype: values.dtype as DType | undefined });
  const opts = {
    maxNewTokens: numberOpt(values['max-tokens'], 'max-tokens'),
    temperature: numberOpt(values.temperature, 'temperature'),
    topK: numberOpt(values['top-k'], 'top-k'),
    topP: numberOpt(values['top-p'], 'top-p'),
    seed: numberOpt(values.seed, 'seed'),
  };
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  const t0 = process.hrtime.bigint();
  let first = 0n;
  let count = 0;
  const tick = () => {
    if (!count++) first = process.hrtime.bigint();
  };
  try {
    if (values.prompt !== undefined) {
      if (!model.tokenizer) throw argError(`${positionals[0]} has no tokenizer.json: use --prompt-ids`);
      process.stdout.write(values.prompt);
      const ids = model.generate(model.encode(values.prompt), { ...opts, signal: ac.signal });
      const counted = (async function* () {
        for await (const id of ids) {
          tick();
          yield id;
        }
      })();
      for await (const piece of detokenize(counted, (x) => model.decode(x))) process.stdout.write(piece);
      process.stdout.write('\n');
    } else {
      const ids = (values['prompt-ids'] as string).split(',').map((s) => Number(s.trim()));
      for await (const id of model.generate(ids, { ...opts, signal: ac.signal })) {
        tick();
        process.stdout.write(`${id} `);
      }
      process.stdout.write('\n');
    }
  } catch (e) {
    if ((e as Error).name !== 'AbortError') throw e;
    process.stdout.write('\n');
  } finally {
    model.dispose();
  }
  if (count) {
    const end = process.hrtime.bigint();
    const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
    const rate = count > 1 ? ` then ${((1e3 * (count - 1)) / ms(first, end)).toFixed(1)} tokens/s` : '';
    console.error(`[${count} tokens: first after ${ms(t0, first).toFixed(0)} ms${rate}]`);
  }
}

export async function serveCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...common,
      port: { type: 'string', default: '8000' },
      host: { type: 'string', default: '127.0.0.1' },
      'max-batch': { type: 'string' },
      name: { type: 'string' },
    },
  });
  if (positionals.length !== 1) {
    console.error(
      'usage: statespace serve <checkpoint dir> [--port N] [--host H] [--max-batch N] [--name MODEL] [--device cpu|cuda] [--dtype ...]',
    );
    process.exitCode = 2;
    return;
  }
  const model = await loadModel(positionals[0], {
    device: values.device as Device | undefined,
    dtype: values.dtype as DType | undefined,
    maxBatch: numberOpt(values['max-batch'], 'max-batch'),
  });
  const s = await serve(model, { port: numberOpt(values.port, 'port'), host: values.host, modelName: values.name ?? positionals[0] });
  console.error(`statespace: serving ${positionals[0]} (${model.config.className}, ${model.device}, ${model.dtype}) on ${s.url}`);
  console.error(`  POST ${s.url}/v1/completions   GET ${s.url}/health`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      void s.close().then(() => {
        model.dispose();
        resolve();
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
