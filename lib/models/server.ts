/**
 * An OpenAI-style completions server over node:http.
 *
 *   POST /v1/completions   {prompt, max_tokens, temperature, top_p, top_k, seed, stop, stream}
 *                          → a text_completion object, or server-sent events when stream is true
 *   GET  /v1/models        the served model
 *   GET  /health           {status: "ok", running, waiting}
 *
 * Concurrent requests decode together: every request is one sequence of the model's scheduler.
 * A client that disconnects cancels its sequence (its slot is freed at the next step). Bad
 * requests get a 4xx JSON error ({error: {message, type, param, code}}); nothing a client sends
 * can stop the server.
 */
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { GenerateOptions } from './lm';
import { SchedulerStats } from './scheduler';
import { detokenize, TextStreamResult } from './text_stream';

/** What the server needs of a model (CausalLM has it all). */
export interface CompletionModel {
  generate(prompt: ArrayLike<number>, opts: GenerateOptions): AsyncIterableIterator<number>;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  readonly tokenizer: unknown;
  readonly generation: { stop: readonly number[] };
  readonly config: { vocabSize: number };
  readonly scheduler?: { stats(): SchedulerStats };
}

export interface ServeOptions {
  port?: number;
  host?: string;
  /** Name reported as `model` (default: "statespace"). */
  modelName?: string;
  /** max_tokens when a request gives none (default 16, as OpenAI's completions API). */
  defaultMaxTokens?: number;
  /** Upper bound on max_tokens (default 4096). */
  maxTokensLimit?: number;
  /** Largest request body in bytes (default 1 MiB). */
  maxBodyBytes?: number;
}

export interface RunningServer {
  server: http.Server;
  url: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null, readonly type = 'invalid_request_error') {
    super(message);
  }
}

interface CompletionRequest {
  prompt: number[];
  maxTokens: number;
  gen: GenerateOptions;
  stopStrings: string[];
  stream: boolean;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function sendError(res: http.ServerResponse, e: unknown): void {
  const err = e instanceof HttpError ? e : new HttpError(500, (e as Error)?.message ?? String(e), null, 'server_error');
  sendJson(res, err.status, { error: { message: err.message, type: err.type, param: err.param, code: err.status } });
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    // Past the limit, keep draining (so the client reads the 413) up to a bound, then hang up.
    if (size > 8 * limit) req.destroy();
    if (size <= limit) chunks.push(chunk as Buffer);
  }
  if (size > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) throw new HttpError(400, 'empty request body: expected a JSON object');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`);
  }
}

function parseCompletion(body: unknown, model: CompletionModel, opts: Required<Omit<ServeOptions, 'port' | 'host' | 'modelName'>>): CompletionRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const num = (key: string, lo: number, hi: number, int = false): number | undefined => {
    const v = b[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (int && !Number.isInteger(v)))
      throw new HttpError(400, `${key} must be ${int ? 'an integer' : 'a number'} in [${lo}, ${hi}]`, key);
    return v;
  };
  // prompt: a string, an array of one string, or an array of token ids
  let prompt: number[];
  let p = b.prompt;
  if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') p = p[0];
  if (typeof p === 'string') {
    if (!model.tokenizer) throw new HttpError(400, 'this model has no tokenizer: send prompt as an array of token ids', 'prompt');
    if (!p.length) throw new HttpError(400, 'prompt must not be empty', 'prompt');
    prompt = model.encode(p);
    if (!prompt.length) throw new HttpError(400, 'prompt encodes to no tokens', 'prompt');
  } else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number')) {
    const V = model.config.vocabSize;
    if (p.some((x) => !Number.isInteger(x) || x < 0 || x >= V)) throw new HttpError(400, `prompt token ids must be integers in [0, ${V})`, 'prompt');
    prompt = p as number[];
  } else {
    throw new HttpError(400, 'prompt must be a non-empty string or a non-empty array of token ids (one prompt per request)', 'prompt');
  }
  num('n', 1, 1, true); // one completion per request
  if (b.echo === true) throw new HttpError(400, 'echo is not supported', 'echo');
  if (b.stream !== undefined && typeof b.stream !== 'boolean') throw new HttpError(400, 'stream must be true or false', 'stream');
  let stopStrings: string[] = [];
  if (typeof b.stop === 'string') stopStrings = [b.stop];
  else if (Array.isArray(b.stop) && b.stop.length <= 4 && b.stop.every((s) => typeof s === 'string')) stopStrings = b.stop as string[];
  else if (b.stop !== undefined && b.stop !== null) throw new HttpError(400, 'stop must be a string or an array of at most 4 strings', 'stop');
  const maxTokens = num('max_tokens', 1, opts.maxTokensLimit, true) ?? opts.defaultMaxTokens;
  const gen: GenerateOptions = {
    maxNewTokens: maxTokens,
    temperature: num('temperature', 0, 2),
    topP: num('top_p', Number.MIN_VALUE, 1),
    topK: num('top_k', 0, model.config.vocabSize, true),
    seed: num('seed', 0, Number.MAX_SAFE_INTEGER, true),
    stop: model.generation.stop,
  };
  return { prompt, maxTokens, gen, stopStrings, stream: b.stream === true };
}

/** Starts the server; resolves once it listens. */
export async function serve(model: CompletionModel, options: ServeOptions = {}): Promise<RunningServer> {
  const modelName = options.modelName ?? 'statespace';
  const limits = {
    defaultMaxTokens: options.defaultMaxTokens ?? 16,
    maxTokensLimit: options.maxTokensLimit ?? 4096,
    maxBodyBytes: options.maxBodyBytes ?? 1 << 20,
  };

  async function complete(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const r = parseCompletion(await readBody(req, limits.maxBodyBytes), model, limits);
    const id = `cmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const abort = new AbortController();
    // The response closing before we end it means the client went away: cancel the sequence.
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const tokens = model.generate(r.prompt, { ...r.gen, signal: abort.signal });
    const info: TextStreamResult = { tokens: 0, stoppedByString: false };
    const hasText = !!model.tokenizer;
    const ids: number[] = [];
    const collect = async function* (): AsyncGenerator<number> {
      for await (const t of tokens) {
        ids.push(t);
        yield t;
      }
    };
    const pieces = hasText ? detokenize(collect(), (x) => model.decode(x), r.stopStrings, info) : null;
    const finish = () => (!info.stoppedByString && ids.length >= r.maxTokens ? 'length' : 'stop');
    const usage = () => ({ prompt_tokens: r.prompt.length, completion_tokens: ids.length, total_tokens: r.prompt.length + ids.length });
    const choice = (text: string, finishReason: string | null, extra: Record<string, unknown> = {}) => ({
      id,
      object: 'text_completion',
      created,
      model: modelName,
      choices: [{ text, index: 0, logprobs: null, finish_reason: finishReason, ...extra }],
    });

    if (!r.stream) {
      let text = '';
      if (pieces) for await (const s of pieces) text += s;
      else for await (const t of collect()) void t;
      if (abort.signal.aborted) return;
      sendJson(res, 200, { ...choice(text, finish(), hasText ? {} : { tokens: ids }), usage: usage() });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const event = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    try {
      if (pieces) for await (const s of pieces) event(choice(s, null));
      else for await (const t of collect()) event(choice('', null, { tokens: [t] }));
      event({ ...choice('', finish()), usage: usage() });
      res.end('data: [DONE]\n\n');
    } catch (e) {
      if (abort.signal.aborted) return;
      event({ error: { message: (e as Error).message, type: 'server_error', param: null, code: 500 } });
      res.end('data: [DONE]\n\n');
    }
  }

  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const route = async () => {
      if (url === '/health') {
        if (req.method !== 'GET') throw new HttpError(405, 'use GET');
        const s = model.scheduler?.stats();
        sendJson(res, 200, { status: 'ok', model: modelName, running: s?.running ?? 0, waiting: s?.waiting ?? 0 });
      } else if (url === '/v1/models') {
        if (req.method !== 'GET') throw new HttpError(405, 'use GET');
        sendJson(res, 200, { object: 'list', data: [{ id: modelName, object: 'model', owned_by: 'statespace' }] });
      } else if (url === '/v1/completions') {
        if (req.method !== 'POST') throw new HttpError(405, 'use POST');
        await complete(req, res);
      } else {
        throw new HttpError(404, `no route ${req.method} ${url}`);
      }
    };
    route().catch((e) => {
      try {
        if (!res.writableEnded && !res.destroyed) sendError(res, e);
      } catch {
        res.destroy();
      }
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8000, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
