/** `statespace generate` and `statespace serve`, in this process and as real processes. */
import { spawn } from 'node:child_process';
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

  it('prints its options for --help, before loading anything', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      await generateCommand(['/no/such/folder', '--help']);
      const text = log.mock.calls.join('\n');
      for (const o of ['--prompt', '--prompt-ids', '--max-tokens', '--temperature', '--top-k', '--top-p', '--seed', '--device', '--dtype']) expect(text).toContain(o);
    } finally {
      log.mockRestore();
    }
  });

  it('checks its numbers before loading the checkpoint', async () => {
    await expect(generateCommand(['/no/such/folder', '--prompt', 'w1', '--temperature', 'warm'])).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
    for (const ids of ['1,x', '1,,2', '1.5', '2,-3'])
      await expect(generateCommand(['/no/such/folder', '--prompt-ids', ids])).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
    await expect(generateCommand(['/no/such/folder', '--prompt', 'w1', '--max-tokens', ''])).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
  });

  it('prints usage for bad arguments', async () => {
    process.exitCode = 0;
    await captured(() => generateCommand([ck.dir]));
    expect(process.exitCode).toBe(2);
    process.exitCode = 0;
  });
});

describe('statespace serve, as a process', () => {
  const ck = writeTinyCheckpoint(path.join(tmp, 'served'), { architecture: 'mamba', vocab: 24 });
  const root = path.resolve(__dirname, '../..');

  it('serves completions on the port it reports and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, ['dist/lib/cli.js', 'serve', ck.dir, '--port', '0', '--name', 'tiny'], { cwd: root });
    let err = '';
    child.stderr.on('data', (d) => (err += String(d)));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no URL from the server; stderr: ${err}`)), 20000);
        child.stderr.on('data', () => {
          const m = /on (http:\/\/[\d.:]+)/.exec(err);
          if (m) {
            clearTimeout(t);
            resolve(m[1]);
          }
        });
        child.on('exit', (code) => reject(new Error(`server exited (${code}): ${err}`)));
      });
      expect((await fetch(`${url}/health`)).status).toBe(200);
      const r = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: [3, 5, 7], max_tokens: 4, temperature: 0 }),
      });
      expect(r.status).toBe(200);
      const body = (await r.json()) as { model: string; choices: { text: string; finish_reason: string }[] };
      expect(body.model).toBe('tiny');
      expect(body.choices).toHaveLength(1);
      expect(['length', 'stop']).toContain(body.choices[0].finish_reason);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30000);
});
