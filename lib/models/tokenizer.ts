/**
 * Text in, text out: tokenizer.json of a checkpoint folder.
 *
 * When the @huggingface/tokenizers package is installed it does the work (every tokenizer type
 * the Hub uses). Otherwise a small built-in reader covers the common cases of SSM checkpoints:
 * byte-level BPE (GPT-2 / GPT-NeoX style, what the Mamba checkpoints use) and WordLevel, with
 * added (special) tokens, NFC/NFKC normalisers and the ByteLevel decoder. Anything else gives a
 * clear ERR_FORMAT error that names the missing piece.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatError } from '../errors';

export interface TextTokenizer {
  /** Which implementation runs ('@huggingface/tokenizers' or 'built-in'). */
  readonly backend: string;
  encode(text: string): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
}

/** Loads <dir>/tokenizer.json; null when the folder has none. */
export async function loadTokenizer(dir: string): Promise<TextTokenizer | null> {
  const file = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(file)) return null;
  let json: TokenizerJson;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw formatError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const hf = await hfTokenizer(json, dir);
  return hf ?? new BuiltinTokenizer(json, file);
}

// A real dynamic import (TypeScript would turn `import()` into require() under CommonJS, which
// cannot load an ES module).
const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<Record<string, unknown>>;

async function hfTokenizer(json: TokenizerJson, dir: string): Promise<TextTokenizer | null> {
  if (process.env.STATESPACE_TOKENIZER === 'builtin') return null;
  let mod: Record<string, unknown>;
  try {
    mod = await dynamicImport('@huggingface/tokenizers');
  } catch {
    return null;
  }
  const Ctor = mod.Tokenizer as new (j: unknown, c: unknown) => {
    encode(t: string, o?: unknown): { ids: number[] };
    decode(ids: number[], o?: unknown): string;
  };
  if (typeof Ctor !== 'function') return null;
  let config: unknown = {};
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  if (fs.existsSync(cfgFile)) {
    try {
      config = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    } catch {
      config = {};
    }
  }
  const tok = new Ctor(json, config);
  return {
    backend: '@huggingface/tokenizers',
    encode: (text) => Array.from(tok.encode(text, { add_special_tokens: false }).ids),
    decode: (ids, o) => tok.decode([...ids], { skip_special_tokens: o?.skipSpecialTokens ?? false }),
  };
}

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

interface TokenizerJson {
  added_tokens?: AddedToken[];
  normalizer?: { type: string; normalizers?: Array<{ type: string }> } | null;
  pre_tokenizer?: { type: string; add_prefix_space?: boolean; use_regex?: boolean; pretokenizers?: unknown[] } | null;
  decoder?: { type: string } | null;
  model: {
    type: string;
    vocab: Record<string, number>;
    merges?: Array<string | [string, string]>;
    unk_token?: string | null;
    continuing_subword_prefix?: string | null;
    end_of_word_suffix?: string | null;
  };
}

/** GPT-2's reversible map from bytes to printable characters. */
function byteToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = keep.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  return map;
}

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

class BuiltinTokenizer implements TextTokenizer {
  readonly backend = 'built-in';
  private readonly kind: 'bpe' | 'wordlevel';
  private readonly vocab: Map<string, number>;
  private readonly idToToken: Map<number, string>;
  private readonly ranks = new Map<string, number>();
  private readonly added: AddedToken[];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedSplit: RegExp | null;
  private readonly normalize: (s: string) => string;
  private readonly byteLevel: boolean;
  private readonly addPrefixSpace: boolean;
  /** The Whitespace pre-tokenizer (words and runs of punctuation) rather than WhitespaceSplit. */
  private readonly whitespaceRegex: boolean;
  private readonly b2u = byteToUnicode();
  private readonly u2b = new Map<string, number>();
  private readonly unk: number | null;
  private readonly cache = new Map<string, number[]>();

  constructor(json: TokenizerJson, file: string) {
    const bad = (why: string) => formatError(`${file}: ${why} (the built-in tokenizer reads byte-level BPE and WordLevel; install @huggingface/tokenizers for others)`);
    const m = json.model;
    if (!m || typeof m.vocab !== 'object') throw bad('no model.vocab');
    if (m.type === 'BPE') this.kind = 'bpe';
    else if (m.type === 'WordLevel') this.kind = 'wordlevel';
    else throw bad(`model type ${m.type} is not supported`);
    if (this.kind === 'bpe' && (m.continuing_subword_prefix || m.end_of_word_suffix)) throw bad('BPE subword prefixes/suffixes are not supported');
    this.vocab = new Map(Object.entries(m.vocab));
    this.idToToken = new Map([...this.vocab].map(([t, i]) => [i, t]));
    (m.merges ?? []).forEach((mg, r) => {
      const [a, b] = Array.isArray(mg) ? mg : mg.split(' ');
      this.ranks.set(`${a} ${b}`, r);
    });
    this.added = json.added_tokens ?? [];
    for (const t of this.added) {
      this.addedById.set(t.id, t);
      this.idToToken.set(t.id, t.content);
    }
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const contents = this.added.map((t) => t.content).filter((c) => c.length).sort((a, b) => b.length - a.length);
    this.addedSplit = contents.length ? new RegExp(`(${contents.map(esc).join('|')})`, 'u') : null;
    this.normalize = normalizer(json.normalizer ?? null, bad);
    const pre = json.pre_tokenizer ?? null;
    const parts = pre?.type === 'Sequence' ? ((pre.pretokenizers ?? []) as Array<{ type: string; add_prefix_space?: boolean }>) : pre ? [pre] : [];
    const bl = parts.find((p) => p.type === 'ByteLevel');
    const unsupported = parts.find((p) => p.type !== 'ByteLevel' && p.type !== 'Whitespace' && p.type !== 'WhitespaceSplit');
    if (unsupported) throw bad(`pre_tokenizer ${unsupported.type} is not supported`);
    this.byteLevel = !!bl;
    this.addPrefixSpace = bl?.add_prefix_space ?? false;
    this.whitespaceRegex = parts.some((p) => p.type === 'Whitespace');
    if (this.kind === 'bpe' && !this.byteLevel) throw bad('BPE without a ByteLevel pre-tokenizer is not supported');
    this.b2u.forEach((c, b) => this.u2b.set(c, b));
    const unk = m.unk_token ?? null;
    this.unk = unk !== null && this.vocab.has(unk) ? (this.vocab.get(unk) as number) : null;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    const pieces = this.addedSplit ? text.split(this.addedSplit) : [text];
    pieces.forEach((piece, i) => {
      if (this.addedSplit && i % 2 === 1) {
        ids.push((this.added.find((t) => t.content === piece) as AddedToken).id);
        return;
      }
      if (!piece) return;
      let s = this.normalize(piece);
      if (this.byteLevel) {
        if (this.addPrefixSpace && !s.startsWith(' ')) s = ' ' + s;
        for (const word of s.match(GPT2_SPLIT) ?? []) {
          const mapped = Array.from(Buffer.from(word, 'utf8'), (b) => this.b2u[b]).join('');
          for (const id of this.kind === 'bpe' ? this.bpe(mapped) : [this.lookup(mapped)]) ids.push(id);
        }
      } else {
        const words = this.whitespaceRegex ? (s.match(/\w+|[^\w\s]+/gu) ?? []) : s.split(/\s+/u).filter(Boolean);
        for (const word of words) ids.push(this.lookup(word));
      }
    });
    return ids;
  }

  private lookup(token: string): number {
    const id = this.vocab.get(token);
    if (id !== undefined) return id;
    if (this.unk !== null) return this.unk;
    throw formatError(`tokenizer: ${JSON.stringify(token)} is not in the vocabulary and there is no unk_token`);
  }

  /** Byte-level BPE of one pre-token: repeatedly merge the adjacent pair of lowest rank. */
  private bpe(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    let parts = Array.from(word);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const [a, b] = [parts[best], parts[best + 1]];
      const next: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(parts[i]);
      }
      parts = next;
    }
    const ids = parts.map((p) => this.lookup(p));
    if (this.cache.size < 50_000) this.cache.set(word, ids);
    return ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const out: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) out.push(Buffer.from(bytes).toString('utf8'));
      bytes = [];
    };
    const words: string[] = [];
    for (const id of ids) {
      const added = this.addedById.get(id);
      if (added?.special && opts.skipSpecialTokens) continue;
      const tok = this.idToToken.get(id);
      if (tok === undefined) throw formatError(`tokenizer: token id ${id} is not in the vocabulary`);
      if (!this.byteLevel) {
        words.push(tok);
        continue;
      }
      if (added) {
        flush();
        out.push(tok);
        continue;
      }
      for (const ch of tok) {
        const b = this.u2b.get(ch);
        if (b === undefined) {
          flush();
          out.push(ch);
        } else bytes.push(b);
      }
    }
    if (!this.byteLevel) return words.join(' ');
    flush();
    return out.join('');
  }
}

function normalizer(n: { type: string; normalizers?: Array<{ type: string }> } | null, bad: (w: string) => Error): (s: string) => string {
  if (!n) return (s) => s;
  const list = n.type === 'Sequence' ? (n.normalizers ?? []) : [n];
  const fns = list.map((x) => {
    if (x.type === 'NFC' || x.type === 'NFKC' || x.type === 'NFD' || x.type === 'NFKD') return (s: string) => s.normalize(x.type as 'NFC');
    if (x.type === 'Lowercase') return (s: string) => s.toLowerCase();
    throw bad(`normalizer ${x.type} is not supported`);
  });
  return (s) => fns.reduce((acc, f) => f(acc), s);
}
