/**
 * A small safetensors writer for tests: named float arrays → one file (F32, F16 or BF16, rounded
 * to nearest even), and a sharded variant with model.safetensors.index.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type WriteDType = 'F32' | 'F16' | 'BF16';

export interface NamedArray {
  shape: number[];
  data: ArrayLike<number>;
  dtype?: WriteDType;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toBf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40; // NaN stays NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function toF16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

export function encodeTensor(a: NamedArray): Buffer {
  const dt = a.dtype ?? 'F32';
  const n = a.data.length;
  if (dt === 'F32') return Buffer.from(Float32Array.from(a.data).buffer);
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) bits[i] = dt === 'BF16' ? toBf16Bits(a.data[i]) : toF16Bits(a.data[i]);
  return Buffer.from(bits.buffer);
}

/** Serialises tensors; `header` may be edited (to build broken files) before writing. */
export function safetensorsBytes(tensors: Record<string, NamedArray>, edit?: (h: Record<string, unknown>) => void): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const bufs: Buffer[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const b = encodeTensor(t);
    header[name] = { dtype: t.dtype ?? 'F32', shape: t.shape, data_offsets: [off, off + b.length] };
    bufs.push(b);
    off += b.length;
  }
  edit?.(header);
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...bufs]);
}

export function writeSafetensors(file: string, tensors: Record<string, NamedArray>): void {
  fs.writeFileSync(file, safetensorsBytes(tensors));
}

/** Writes the tensors over `shards` files plus model.safetensors.index.json into dir. */
export function writeSharded(dir: string, tensors: Record<string, NamedArray>, shards: number): void {
  const names = Object.keys(tensors);
  const map: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part: Record<string, NamedArray> = {};
    names.filter((_, i) => i % shards === s).forEach((n) => {
      part[n] = tensors[n];
      map[n] = file;
    });
    writeSafetensors(path.join(dir, file), part);
  }
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
}
