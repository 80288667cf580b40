import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerateOptions } from '../../lib/models/lm';
import { DecodeEngine, Scheduler } from '../../lib/models/scheduler';
import { CompletionModel, RunningServer, serve } from '../../lib/models/server';

/**
 * A fake model over the real scheduler: byte tokens (0..255) plus EOS = 256; the next token is a
 * lowercase letter chosen by a per-sequence recurrence, EOS when the state hits a multiple of 29.
 */
const EOS = 256;
let eosEnabled = true;
const fold = (s: number, t: number) => (Math.imul(s ^ (t + 0x9e37), 0x01000193) >>> 0) % 1_000_003;
const nextOf = (s: number) => (eosEnabled && s % 29 === 0 ? EOS : 97 + (s % 26));
function row(s: number): Float32Array {
  const r = new Float32Array(257);
  r[nextOf(s)] = 1;
  return r;
}

class LetterEngine implements DecodeEngine {
  readonly maxBatch = 4;
  states = new Array(4).fill(0);
  maxRows = 0;
  async prefill(ids: Int32Array, slot: number, from: number, to: number) {
    await new Promise((r) => setTimeout(r, 1));
    this.states[slot] = ids.subarray(from, to).reduce(fold, from === 0 ? 1 : this.states[slot]);
    return to === ids.length ? row(this.states[slot]) : null;
  }
  async step(tokens: Int32Array) {
    await new Promise((r) => setTimeout(r, 2));
    this.maxRows = Math.max(this.maxRows, tokens.length);
    return Array.from(tokens, (t, i) => row((this.states[i] = fold(this.states[i], t))));
  }
  moveSlot(from: number, to: number) {
    this.states[to] = this.states[from];
  }
}

function expected(prompt: string, max: number, stop: string[] = []): { text: string; finish: string } {
  let s = Array.from(Buffer.from(prompt, 'utf8')).reduce(fold, 1);
  let text = '';
  for (let i = 0; i < max; i++) {
    const t = nextOf(s);
    if (t === EOS) return { text, finish: 'stop' };
    text += String.fromCharCode(t);
    const cut = stop.map((x) => text.indexOf(x)).filter((k) => k >= 0);
    if (cut.length) return { text: text.slice(0, Math.min(...cut)), finish: 'stop' };
    s = fold(s, t);
  }
  return { text, finish: 'length' };
}

const engine = new LetterEngine();
const scheduler = new Scheduler(engine);
const model: CompletionModel = {
  tokenizer: {},
  generation: { stop: [EOS] },
  config: { vocabSize: 257 },
  scheduler,
  encode: (t) => Array.from(Buffer.from(t, 'utf8')),
  decode: (ids) => Buffer.from(ids.filter((i) => i < 256)).toString('utf8'),
  generate: (prompt, o: GenerateOptions) =>
    scheduler.submit({
      prompt: Int32Array.from(prompt),
      maxNewTokens: o.maxNewTokens ?? 16,
      temperature: o.temperature ?? 0,
      topK: o.topK ?? 0,
      topP: o.topP ?? 1,
      stop: o.stop ?? [],
      signal: o.signal,
    }),
};

let srv: RunningServer;
beforeAll(async () => {
  srv = await serve(model, { port: 0, modelName: 'fake' });
});
afterAll(async () => {
  await srv.close();
});

function request(method: string, path: string, body?: string | object): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(srv.url + path, { method, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

function sseEvents(text: string): unknown[] {
  const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
  expect(events[events.length - 1]).toBe('[DONE]');
  return events.slice(0, -1).map((e) => JSON.parse(e));
}

describe('completions server', () => {
  it('answers /health and /v1/models', async () => {
    const h = await request('GET', '/health');
    expect(h.status).toBe(200);
    expect(JSON.parse(h.text)).toMatchObject({ status: 'ok', model: 'fake' });
    expect(JSON.parse((await request('GET', '/v1/models')).text).data[0].id).toBe('fake');
  });

  it('completes without streaming, with usage and finish_reason', async () => {
    for (const [prompt, max] of [['hello', 40], ['abc', 3], ['x', 200]] as const) {
      const r = await request('POST', '/v1/completions', { prompt, max_tokens: max, temperature: 0 });
      expect(r.status).toBe(200);
      const body = JSON.parse(r.text);
      const want = expected(prompt, max);
      expect(body.object).toBe('text_completion');
      expect(body.choices[0].text).toBe(want.text);
      expect(body.choices[0].finish_reason).toBe(want.finish);
      expect(body.usage.prompt_tokens).toBe(Buffer.byteLength(prompt));
    }
  });

  it('streams server-sent events that add up to the same text', async () => {
    const prompt = Array.from({ length: 100 }, (_, i) => `stream ${i}`).find((p) => expected(p, 25).text.length >= 10) as string;
    const r = await request('POST', '/v1/completions', { prompt, max_tokens: 25, stream: true });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/event-stream');
    const events = sseEvents(r.text) as Array<{ choices: Array<{ text: string; finish_reason: string | null }> }>;
    const text = events.map((e) => e.choices[0].text).join('');
    const want = expected(prompt, 25);
    expect(text).toBe(want.text);
    expect(events[events.length - 1].choices[0].finish_reason).toBe(want.finish);
    expect(events.length).toBeGreaterThan(2);
  });

  it('honours stop strings', async () => {
    const full = expected('stop test', 60).text;
    const stop = full.slice(5, 7);
    const r = JSON.parse((await request('POST', '/v1/completions', { prompt: 'stop test', max_tokens: 60, stop: [stop] })).text);
    expect(r.choices[0].text).toBe(expected('stop test', 60, [stop]).text);
    expect(r.choices[0].finish_reason).toBe('stop');
  });

  it('serves many requests at once, batched, each with its own answer', async () => {
    const prompts = Array.from({ length: 24 }, (_, i) => `prompt number ${i} ${'z'.repeat(i % 5)}`);
    const rs = await Promise.all(
      prompts.map((p, i) => request('POST', '/v1/completions', { prompt: p, max_tokens: 10 + (i % 7), stream: i % 2 === 0 })),
    );
    rs.forEach((r, i) => {
      expect(r.status).toBe(200);
      const text =
        i % 2 === 0
          ? (sseEvents(r.text) as Array<{ choices: Array<{ text: string }> }>).map((e) => e.choices[0].text).join('')
          : JSON.parse(r.text).choices[0].text;
      expect(text, prompts[i]).toBe(expected(prompts[i], 10 + (i % 7)).text);
    });
    expect(engine.maxRows).toBe(4);
  });

  it('rejects bad requests with 4xx JSON errors and keeps serving', async () => {
    const cases: Array<[string, string, string | object | undefined, number]> = [
      ['POST', '/v1/completions', '{"prompt": "x", ', 400],
      ['POST', '/v1/completions', '', 400],
      ['POST', '/v1/completions', '[1, 2]', 400],
      ['POST', '/v1/completions', { prompt: 42 }, 400],
      ['POST', '/v1/completions', { prompt: '' }, 400],
      ['POST', '/v1/completions', { prompt: [1, 2, 999] }, 400],
      ['POST', '/v1/completions', { prompt: ['a', 'b'] }, 400],
      ['POST', '/v1/completions', { prompt: 'x', max_tokens: -1 }, 400],
      ['POST', '/v1/completions', { prompt: 'x', max_tokens: 1.5 }, 400],
      ['POST', '/v1/completions', { prompt: 'x', temperature: 'hot' }, 400],
      ['POST', '/v1/completions', { prompt: 'x', top_p: 0 }, 400],
      ['POST', '/v1/completions', { prompt: 'x', stop: [1] }, 400],
      ['POST', '/v1/completions', { prompt: 'x', n: 2 }, 400],
      ['POST', '/v1/completions', { prompt: 'x', stream: 'yes' }, 400],
      ['POST', '/v1/completions', 'x'.repeat(2 << 20), 413],
      ['GET', '/v1/completions', undefined, 405],
      ['POST', '/health', {}, 405],
      ['GET', '/nope', undefined, 404],
    ];
    for (const [method, path, body, status] of cases) {
      const r = await request(method, path, body);
      expect(r.status, `${method} ${path} ${String(body).slice(0, 40)}`).toBe(status);
      const e = JSON.parse(r.text).error;
      expect(typeof e.message).toBe('string');
    }
    // token-id prompts are fine
    const ok = await request('POST', '/v1/completions', { prompt: [104, 105], max_tokens: 4 });
    expect(JSON.parse(ok.text).choices[0].text).toBe(expected('hi', 4).text);
    // a malformed HTTP request does not take the server down
    await new Promise<void>((resolve) => {
      const net = require('node:net') as typeof import('node:net');
      const sock = net.connect(Number(new URL(srv.url).port), '127.0.0.1', () => sock.write('GARBAGE\r\n\r\n'));
      sock.on('data', () => undefined);
      sock.on('close', () => resolve());
      sock.on('error', () => resolve());
    });
    expect((await request('GET', '/health')).status).toBe(200);
  });

  it('survives random garbage bodies with 4xx answers', async () => {
    const r = () => Math.random();
    const junk = (): string | object => {
      switch (Math.floor(r() * 8)) {
        case 0:
          return Buffer.from(Array.from({ length: Math.floor(r() * 200) }, () => Math.floor(r() * 256))).toString('latin1');
        case 1:
          return '['.repeat(5000) + ']'.repeat(5000);
        case 2:
          return { prompt: 'x', max_tokens: 1e308 };
        case 3:
          return { prompt: Array.from({ length: 5 }, () => r() * 1e6) };
        case 4:
          return { prompt: 'x', temperature: -0.5, top_k: 'a' };
        case 5:
          return { prompt: { nested: [1, 2] } };
        case 6:
          return { prompt: 'x', stop: 'y'.repeat(10), max_tokens: 2, seed: -4 };
        default:
          return 'null';
      }
    };
    for (let i = 0; i < 60; i++) {
      const body = junk();
      const res = await request('POST', '/v1/completions', body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(JSON.parse(res.text).error.message.length).toBeGreaterThan(0);
    }
    expect((await request('GET', '/health')).status).toBe(200);
  });

  it('frees the slot of a client that disconnects', async () => {
    await scheduler.idle();
    eosEnabled = false; // the completions would run 4000 steps (8 s) unless the hang-ups cancel them
    const n = 6;
    const reqs = Array.from({ length: n }, (_, i) =>
      new Promise<void>((resolve) => {
        const req = http.request(srv.url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          res.once('data', () => {
            req.destroy(); // hang up after the first event
            resolve();
          });
        });
        req.on('error', () => resolve());
        req.end(JSON.stringify({ prompt: `disconnect ${i}`, max_tokens: 4000, stream: true }));
      }),
    );
    await Promise.all(reqs);
    const t0 = Date.now();
    while (scheduler.stats().running + scheduler.stats().waiting > 0 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10));
    expect(scheduler.stats()).toMatchObject({ running: 0, waiting: 0 });
    eosEnabled = true;
    const after = await request('POST', '/v1/completions', { prompt: 'after', max_tokens: 5 });
    expect(JSON.parse(after.text).choices[0].text).toBe(expected('after', 5).text);
  });
});
