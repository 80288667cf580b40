/**
 * `statespace generate <dir> --prompt "…"`: streams a completion to stdout.
 * `statespace serve <dir> --port N`: the OpenAI-style completions server (lib/models/server.ts).
 */
import { generateSpec, serveSpec } from '../cli_commands';
import { parseCli, usageError } from '../cli_usage';
import { Device } from '../device';
import { DType } from '../dtype';
import { argError } from '../errors';
import { loadModel } from './load';
import { serve } from './server';
import { detokenize } from './text_stream';

function numberOpt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw argError(`--${name}: expected a number, got ${JSON.stringify(v)}`);
  return n;
}

export async function generateCommand(args: string[]): Promise<void> {
  const parsed = parseCli(generateSpec, args);
  if (!parsed) return;
  const { positionals } = parsed;
  const values = parsed.values as Record<string, string | undefined>;
  if (positionals.length !== 1) return usageError(generateSpec, `expected one checkpoint folder, got ${positionals.length} arguments`);
  if ((values.prompt === undefined) === (values['prompt-ids'] === undefined)) return usageError(generateSpec, 'give either --prompt or --prompt-ids');
  // (numbers checked before the checkpoint loads, which can take a while)
  const opts = {
    maxNewTokens: numberOpt(values['max-tokens'], 'max-tokens'),
    temperature: numberOpt(values.temperature, 'temperature'),
    topK: numberOpt(values['top-k'], 'top-k'),
    topP: numberOpt(values['top-p'], 'top-p'),
    seed: numberOpt(values.seed, 'seed'),
  };
  const promptIds = values['prompt-ids']?.split(',').map((s) => {
    if (!/^\s*\d+\s*$/.test(s)) throw argError(`--prompt-ids: expected comma-separated token ids, got ${JSON.stringify(values['prompt-ids'])}`);
    return Number(s);
  });
  const model = await loadModel(positionals[0], { device: values.device as Device | undefined, dtype: values.dtype as DType | undefined });
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
      for await (const id of model.generate(promptIds as number[], { ...opts, signal: ac.signal })) {
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
  const parsed = parseCli(serveSpec, args);
  if (!parsed) return;
  const { positionals } = parsed;
  const values = parsed.values as Record<string, string | undefined>;
  if (positionals.length !== 1) return usageError(serveSpec, `expected one checkpoint folder, got ${positionals.length} arguments`);
  const port = numberOpt(values.port, 'port');
  const maxBatch = numberOpt(values['max-batch'], 'max-batch');
  const model = await loadModel(positionals[0], { device: values.device as Device | undefined, dtype: values.dtype as DType | undefined, maxBatch });
  const s = await serve(model, { port, host: values.host, modelName: values.name ?? positionals[0] });
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
