/**
 * A safetensors reader: 8-byte little-endian header length, a JSON header naming every tensor's
 * dtype, shape and byte range, then the raw little-endian data. Tensors are read one at a time
 * with positioned file reads (never the whole file), so a checkpoint larger than host memory
 * loads as long as its largest tensor fits. Sharded checkpoints (model.safetensors.index.json)
 * are one TensorStore over several files.
 *
 * Everything wrong with a file (truncated, bad header, ranges outside the data, overlapping
 * tensors, a shard that lacks a tensor the index promises) is an ERR_FORMAT error naming the file
 * and the tensor; nothing crashes and no file handle leaks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatError } from '../errors';

/** Stored element types this reader converts. */
export type StoredDType = 'F32' | 'F16' | 'BF16';
const SUPPORTED: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
/** Element sizes of the other safetensors dtypes, so their byte ranges can still be validated. */
const OTHER_SIZES: Record<string, number> = { F64: 8, I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1 };

/** Largest header accepted (the format's own readers use 100 MB). */
const MAX_HEADER = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offset of the data in the file. */
  begin: number;
  nbytes: number;
  file: string;
}

/** A tensor's values as read: Float32Array for F32, raw 16-bit patterns for F16/BF16. */
export interface RawTensor {
  info: TensorInfo;
  dtype: StoredDType;
  data: Float32Array | Uint16Array;
}

/** Parses and validates one file's header. */
export async function readHeader(file: string): Promise<{ tensors: Map<string, TensorInfo>; metadata: Record<string, string> }> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    throw formatError(`${file}: cannot open: ${(e as Error).message}`);
  }
  try {
    const size = (await fh.stat()).size;
    if (size < 8) throw formatError(`${file}: truncated safetensors file (${size} bytes, the header length alone takes 8)`);
    const lenBuf = Buffer.alloc(8);
    await readExactly(fh, lenBuf, 0, file, 'header length');
    const hlen = Number(lenBuf.readBigUInt64LE(0));
    if (hlen < 2 || hlen > MAX_HEADER || 8 + hlen > size)
      throw formatError(`${file}: bad safetensors header length ${hlen} for a file of ${size} bytes (truncated or not a safetensors file)`);
    const hbuf = Buffer.alloc(hlen);
    await readExactly(fh, hbuf, 8, file, 'header');
    let header: unknown;
    try {
      header = JSON.parse(hbuf.toString('utf8'));
    } catch (e) {
      throw formatError(`${file}: the safetensors header is not valid JSON (${(e as Error).message})`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header))
      throw formatError(`${file}: the safetensors header must be a JSON object`);
    const dataStart = 8 + hlen;
    const dataLen = size - dataStart;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    const ranges: Array<[number, number, string]> = [];
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (raw !== null && typeof raw === 'object') metadata = raw as Record<string, string>;
        continue;
      }
      const info = parseEntry(file, name, raw);
      const [b, e] = info.range;
      if (e > dataLen)
        throw formatError(`${file}: tensor ${name} ends at byte ${e} of the data, but the file holds only ${dataLen} data bytes (truncated?)`);
      ranges.push([b, e, name]);
      tensors.set(name, { name, dtype: info.dtype, shape: info.shape, begin: dataStart + b, nbytes: e - b, file });
    }
    ranges.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < ranges.length; i++)
      if (ranges[i][0] < ranges[i - 1][1])
        throw formatError(`${file}: tensors ${ranges[i - 1][2]} and ${ranges[i][2]} overlap in the data section`);
    return { tensors, metadata };
  } finally {
    await fh.close();
  }
}

function parseEntry(file: string, name: string, raw: unknown): { dtype: string; shape: number[]; range: [number, number] } {
  const bad = (why: string) => formatError(`${file}: tensor ${name}: ${why}`);
  if (raw === null || typeof raw !== 'object') throw bad('header entry is not an object');
  const { dtype, shape, data_offsets: off } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== 'string') throw bad('missing dtype');
  const elem = SUPPORTED[dtype] ?? OTHER_SIZES[dtype];
  if (elem === undefined) throw bad(`unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw bad(`bad shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(off) || off.length !== 2 || off.some((d) => !Number.isSafeInteger(d) || d < 0) || off[1] < off[0])
    throw bad(`bad data_offsets ${JSON.stringify(off)}`);
  const n = (shape as number[]).reduce((a, b) => a * b, 1);
  if (off[1] - off[0] !== n * elem)
    throw bad(`data_offsets span ${off[1] - off[0]} bytes, but ${dtype} ${JSON.stringify(shape)} needs ${n * elem}`);
  return { dtype, shape: shape as number[], range: [off[0], off[1]] };
}

async function readExactly(fh: fs.promises.FileHandle, buf: Buffer, pos: number, file: string, what: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, pos + done);
    if (bytesRead === 0) throw formatError(`${file}: unexpected end of file while reading the ${what} (truncated)`);
    done += bytesRead;
  }
}

/**
 * The tensors of a checkpoint: one .safetensors file, or the shards listed by an index.
 * `get` reads one tensor (validated against its header entry).
 */
export class TensorStore {
  private constructor(readonly tensors: Map<string, TensorInfo>, readonly metadata: Record<string, string>) {}

  /** Opens `file` (a .safetensors file or a model.safetensors.index.json). */
  static async open(file: string): Promise<TensorStore> {
    if (file.endsWith('.json')) return TensorStore.openIndex(file);
    const { tensors, metadata } = await readHeader(file);
    return new TensorStore(tensors, metadata);
  }

  /** Opens the checkpoint of a model folder: model.safetensors, else the sharded index. */
  static async openDir(dir: string): Promise<TensorStore> {
    const single = path.join(dir, 'model.safetensors');
    const index = path.join(dir, 'model.safetensors.index.json');
    if (fs.existsSync(single)) return TensorStore.open(single);
    if (fs.existsSync(index)) return TensorStore.openIndex(index);
    const others = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')) : [];
    if (others.length === 1) return TensorStore.open(path.join(dir, others[0]));
    throw formatError(
      `${dir}: no model.safetensors or model.safetensors.index.json` +
        (others.length ? ` (found ${others.join(', ')}; name the file or add an index)` : ''),
    );
  }

  private static async openIndex(indexFile: string): Promise<TensorStore> {
    let index: { weight_map?: Record<string, unknown>; metadata?: Record<string, string> };
    try {
      index = JSON.parse(await fs.promises.readFile(indexFile, 'utf8'));
    } catch (e) {
      throw formatError(`${indexFile}: cannot read the shard index: ${(e as Error).message}`);
    }
    const map = index?.weight_map;
    if (!map || typeof map !== 'object') throw formatError(`${indexFile}: the shard index has no weight_map object`);
    const dir = path.dirname(indexFile);
    const shards = new Map<string, Map<string, TensorInfo>>();
    for (const f of new Set(Object.values(map))) {
      if (typeof f !== 'string' || f.includes('..') || path.isAbsolute(f))
        throw formatError(`${indexFile}: bad shard file name ${JSON.stringify(f)}`);
      shards.set(f, (await readHeader(path.join(dir, f))).tensors);
    }
    const tensors = new Map<string, TensorInfo>();
    for (const [name, f] of Object.entries(map)) {
      const info = shards.get(f as string)?.get(name);
      if (!info) throw formatError(`${indexFile}: the index puts tensor ${name} in ${f}, but that shard has no such tensor`);
      tensors.set(name, info);
    }
    return new TensorStore(tensors, index.metadata ?? {});
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw formatError(`checkpoint: missing tensor ${name}`);
    return t;
  }

  /** Reads one tensor's values (F32 as Float32Array; F16/BF16 as their raw bits). */
  async get(name: string): Promise<RawTensor> {
    const info = this.info(name);
    if (!(info.dtype in SUPPORTED))
      throw formatError(`${info.file}: tensor ${name} is stored as ${info.dtype}; statespace loads F32, F16 and BF16 weights`);
    const buf = Buffer.alloc(info.nbytes);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(info.file, 'r');
    } catch (e) {
      throw formatError(`${info.file}: cannot open: ${(e as Error).message}`);
    }
    try {
      await readExactly(fh, buf, info.begin, info.file, `data of tensor ${name}`);
    } finally {
      await fh.close();
    }
    // Copy into an aligned buffer of the right element type (little-endian hosts only, as x64/arm64).
    const n = info.nbytes / SUPPORTED[info.dtype];
    const dtype = info.dtype as StoredDType;
    const data = dtype === 'F32' ? new Float32Array(n) : new Uint16Array(n);
    new Uint8Array(data.buffer).set(buf);
    return { info, dtype, data };
  }
}
