import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detokenize } from '../../lib/models/text_stream';
import { loadTokenizer } from '../../lib/models/tokenizer';

process.env.STATESPACE_TOKENIZER = 'builtin';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ss-tok-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** GPT-2's byte → printable character map, written out independently of the implementation. */
function byteChars(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : next++));
}

function byteLevelTokenizer(merges: string[], extraAdded: Array<{ id: number; content: string; special: boolean }> = []) {
  const chars = byteChars();
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => (vocab[c] = i));
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  return {
    version: '1.0',
    added_tokens: extraAdded,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab, merges, unk_token: null },
  };
}

async function load(json: unknown) {
  const dir = fs.mkdtempSync(path.join(tmp, 'm-'));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  const t = await loadTokenizer(dir);
  expect(t).not.toBeNull();
  return t!;
}

describe('built-in tokenizer', () => {
  it('returns null for folders without tokenizer.json', async () => {
    expect(await loadTokenizer(tmp)).toBeNull();
  });

  it('applies BPE merges by rank within GPT-2 pre-tokens', async () => {
    const G = byteChars()[32]; // 'Ġ', the space byte
    const merges = ['l l', 'h e', 'he ll', 'hell o', `${G} w`, `${G}w o`, 'r l', `${G}wo rl`, `${G}worl d`];
    const tok = await load(byteLevelTokenizer(merges));
    expect(tok.backend).toBe('built-in');
    const id = (s: string) => 256 + merges.findIndex((m) => m.replace(' ', '') === s);
    expect(tok.encode('hello world')).toEqual([id('hello'), id(`${G}world`)]);
    // "hellx": 'hell' merges, then no merge for 'x'
    expect(tok.encode('hellx')).toEqual([id('hell'), 'x'.charCodeAt(0)]);
    // punctuation and digits are separate pre-tokens; bytes without merges stay bytes
    expect(tok.encode('he!')).toEqual([id('he'), '!'.charCodeAt(0)]);
    expect(tok.encode("it's")).toEqual(['i', 't', "'", 's'].map((c) => c.charCodeAt(0)));
  });

  it('round trips any text, multi-byte characters included', async () => {
    const tok = await load(byteLevelTokenizer(['a b', 'ab c']));
    for (const s of ['abc abc', 'héllo wörld', '数学 🙂 done', '  two  spaces\n\nnewlines\t', '']) expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.encode('🙂').length).toBe(4); // four UTF-8 bytes
  });

  it('splits out added tokens and skips special ones on request', async () => {
    const json = byteLevelTokenizer([], [{ id: 300, content: '<|endoftext|>', special: true }]);
    const tok = await load(json);
    const ids = tok.encode('hi<|endoftext|>yo');
    expect(ids).toEqual([104, 105, 300, 121, 111]);
    expect(tok.decode(ids)).toBe('hi<|endoftext|>yo');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hiyo');
  });

  it('reads WordLevel tokenizers', async () => {
    const tok = await load({
      model: { type: 'WordLevel', vocab: { '[UNK]': 0, the: 1, cat: 2, '.': 3 }, unk_token: '[UNK]' },
      pre_tokenizer: { type: 'Whitespace' },
    });
    expect(tok.encode('the cat.')).toEqual([1, 2, 3]);
    expect(tok.encode('the dog')).toEqual([1, 0]);
    expect(tok.decode([1, 2])).toBe('the cat');
  });

  it('rejects tokenizers it cannot run with ERR_FORMAT', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'u-'));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'Unigram', vocab: {} } }));
    await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: 'ERR_FORMAT' });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{not json');
    await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: 'ERR_FORMAT' });
  });
});

describe('incremental detokenisation', () => {
  async function* from(ids: number[]) {
    for (const i of ids) yield i;
  }
  const bytes = Array.from(Buffer.from('añ🙂b', 'utf8'));
  const decode = (ids: number[]) => Buffer.from(ids).toString('utf8');

  it('never emits half a character and reassembles the text', async () => {
    const pieces: string[] = [];
    for await (const p of detokenize(from(bytes), decode)) pieces.push(p);
    expect(pieces.join('')).toBe('añ🙂b');
    for (const p of pieces) expect(p).not.toContain('\uFFFD');
    expect(pieces.length).toBe(4);
  });

  it('stops before a stop string, even one split across tokens', async () => {
    const text = Array.from(Buffer.from('hello STOP world', 'utf8'));
    const pieces: string[] = [];
    const result = { tokens: 0, stoppedByString: false };
    for await (const p of detokenize(from(text), decode, ['STOP'], result)) pieces.push(p);
    expect(pieces.join('')).toBe('hello ');
    expect(result.stoppedByString).toBe(true);
    expect(result.tokens).toBe('hello STOP'.length);
    const none: string[] = [];
    for await (const p of detokenize(from(text), decode, ['STOPX'])) none.push(p);
    expect(none.join('')).toBe('hello STOP world');
  });

  it('cancels the token source when it stops early', async () => {
    let returned = false;
    const src = {
      i: 0,
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        return { value: 'ab|cd'.charCodeAt(this.i++ % 5), done: false };
      },
      async return() {
        returned = true;
        return { value: undefined, done: true };
      },
    };
    let out = '';
    for await (const p of detokenize(src as AsyncIterable<number>, decode, ['|'])) out += p;
    expect(out).toBe('ab');
    expect(returned).toBe(true);
  });
});
