/** `statespace generate` and the command registry. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { commands } from '../../lib/cli_commands';
import { generateCommand } from '../../lib/models/cli';
import { loadModel } from '../../lib/models/load';
import { writeTinyCheckpoint } from './tiny_checkpoint';

process.env.STATESPACE_TOKENIZER = 'builtin';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ss-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function captured(fn: () => Promise<void>): Promise<string> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    await fn();
  } finally {
    spy.mockRestore();
    err.mockRestore();
  }
  return out;
}

describe('statespace generate', () => {
  const ck = writeTinyCheckpoint(path.join(tmp, 'm'), { architecture: 'mamba2', vocab: 30 });
  const words = Array.from({ length: 30 }, (_, i) => `w${i}`);
  fs.writeFileSync(
    path.join(ck.dir, 'tokenizer.json'),
    JSON.stringify({ model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: 'w0' }, pre_tokenizer: { type: 'WhitespaceSplit' } }),
  );

  it('is registered with serve', () => {
    expect(Object.keys(commands)).toEqual(expect.arrayContaining(['generate', 'serve']));
  });

  it('streams the greedy completion of a text prompt', async () => {
    const out = await captured(() => generateCommand([ck.dir, '--prompt', 'w4 w9', '--max-tokens', '6', '--temperature', '0']));
    const model = await loadModel(ck.dir);
    let want = '';
    for await (const s of model.generateText('w4 w9', { maxNewTokens: 6, temperature: 0 })) want += s;
    model.dispose();
    expect(out).toBe(`w4 w9${want}\n`);
  });

  it('takes token ids and prints ids', async () => {
    const out = await captured(() => generateCommand([ck.dir, '--prompt-ids', '4,9', '--max-tokens', '3', '--temperature', '0']));
    // The random tiny model may pick its end-of-sequence token first (then nothing is printed),
    // so the expectation is the model's own greedy continuation, not a fixed count.
    const model = await loadModel(ck.dir);
    const want: number[] = [];
    for await (const id of model.generate([4, 9], { maxNewTokens: 3, temperature: 0 })) want.push(id);
    model.dispose();
    expect(out).toBe(want.map((id) => `${id} `).join('') + '\n');
  });

  it('prints usage for bad arguments', async () => {
    process.exitCode = 0;
    await captured(() => generateCommand([ck.dir]));
    expect(process.exitCode).toBe(2);
    process.exitCode = 0;
  });
});
