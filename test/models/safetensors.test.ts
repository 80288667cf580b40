import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TensorStore } from '../../lib/models/safetensors';
import { CheckpointWeights } from '../../lib/models/weights';
import { randnArray, rng } from '../helpers';
import { safetensorsBytes, toBf16Bits, writeSafetensors, writeSharded } from './safetensors_writer';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ss-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const file = (bytes: Buffer) => {
  const f = path.join(tmp, `f${n++}.safetensors`);
  fs.writeFileSync(f, bytes);
  return f;
};

async function expectFormat(p: Promise<unknown>, ...parts: string[]) {
  const err = await p.then(
    () => undefined,
    (e) => e as Error & { code?: string },
  );
  expect(err, 'expected ERR_FORMAT').toBeDefined();
  expect(err!.code, err!.message).toBe('ERR_FORMAT');
  for (const s of parts) expect(err!.message).toContain(s);
}

const bf16ToF32 = (b: number) => new Float32Array(new Uint32Array([b << 16]).buffer)[0];

describe('safetensors reader', () => {
  const r = rng();
  const a = randnArray(3 * 5, r);
  const b = randnArray(7, r);
  const c = randnArray(2 * 3 * 4, r);
  const tensors = {
    'w.a': { shape: [3, 5], data: a },
    'w.b': { shape: [7], data: b, dtype: 'BF16' as const },
    'w.c': { shape: [2, 3, 4], data: c, dtype: 'F16' as const },
    'w.empty': { shape: [0, 4], data: [] },
  };

  it('round trips F32 exactly and BF16/F16 to their rounded values', async () => {
    const f = file(safetensorsBytes(tensors));
    const store = await TensorStore.open(f);
    expect([...store.tensors.keys()].sort()).toEqual(['w.a', 'w.b', 'w.c', 'w.empty']);
    expect(store.metadata.format).toBe('pt');
    const ra = await store.get('w.a');
    expect(ra.dtype).toBe('F32');
    expect(Array.from(ra.data)).toEqual(Array.from(Float32Array.from(a)));
    const rb = await store.get('w.b');
    expect(rb.dtype).toBe('BF16');
    expect(Array.from(rb.data)).toEqual(Array.from(b, toBf16Bits));
    // through the loader: bf16 bits → float32 tensor equals the bf16 value, within 2^-8 of the original
    const w = new CheckpointWeights(store);
    const tb = (await (await w.load('w.b', [7], 'float32', 'cpu')).data()) as Float32Array;
    for (let i = 0; i < 7; i++) {
      expect(tb[i]).toBe(bf16ToF32(toBf16Bits(b[i])));
      expect(Math.abs(tb[i] - b[i])).toBeLessThanOrEqual(Math.abs(b[i]) * 2 ** -8);
    }
    const tc = (await (await w.load('w.c', [2, 3, 4], 'float32', 'cpu')).data()) as Float32Array;
    for (let i = 0; i < c.length; i++) expect(Math.abs(tc[i] - c[i])).toBeLessThanOrEqual(Math.abs(c[i]) * 2 ** -11 + 2 ** -24);
    // f32 stored → bf16 model dtype
    const ta = await w.load('w.a', [3, 5], 'bfloat16', 'cpu');
    expect(ta.dtype).toBe('bfloat16');
    expect(Array.from(await ta.bits())).toEqual(Array.from(a, toBf16Bits));
    expect((await store.get('w.empty')).data.length).toBe(0);
  });

  it('reshapes size-1 dimensions (conv1d weights) and rejects real shape mismatches', async () => {
    const f = file(safetensorsBytes({ conv: { shape: [4, 1, 3], data: randnArray(12) } }));
    const w = new CheckpointWeights(await TensorStore.open(f));
    expect((await w.load('conv', [4, 3], 'float32', 'cpu')).shape).toEqual([4, 3]);
    await expectFormat(w.load('conv', [3, 4], 'float32', 'cpu'), 'conv', '(4, 1, 3)', '(3, 4)');
    await expectFormat(w.load('nope', [1], 'float32', 'cpu'), 'missing tensor nope');
  });

  it('reads sharded checkpoints through the index, and finds them in a folder', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'shard-'));
    writeSharded(dir, tensors, 3);
    const store = await TensorStore.openDir(dir);
    expect(store.tensors.size).toBe(4);
    expect(Array.from((await store.get('w.a')).data)).toEqual(Array.from(Float32Array.from(a)));
    expect(new Set([...store.tensors.values()].map((t) => path.basename(t.file))).size).toBe(3);
    // an index that promises a tensor its shard lacks
    const idx = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    idx.weight_map['w.ghost'] = idx.weight_map['w.a'];
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(idx));
    await expectFormat(TensorStore.openDir(dir), 'w.ghost');
    idx.weight_map['w.ghost'] = 'missing.safetensors';
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(idx));
    await expectFormat(TensorStore.openDir(dir), 'missing.safetensors');
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    await expectFormat(TensorStore.openDir(dir), 'index');
    await expectFormat(TensorStore.openDir(fs.mkdtempSync(path.join(tmp, 'empty-'))), 'no model.safetensors');
  });

  it('gives ERR_FORMAT for truncated and inconsistent files', async () => {
    const good = safetensorsBytes(tensors);
    // every truncation point: header length, header, data
    for (const cut of [0, 5, 8, 12, 40, good.length - 30, good.length - 1]) {
      const f = file(good.subarray(0, cut));
      await expectFormat(TensorStore.open(f).then((s) => Promise.all([...s.tensors.keys()].map((k) => s.get(k)))), path.basename(f));
    }
    const broken = (edit: (h: Record<string, unknown>) => void) => file(safetensorsBytes(tensors, edit));
    await expectFormat(TensorStore.open(broken((h) => ((h['w.a'] as { shape: number[] }).shape = [3, 6]))), 'w.a', 'needs');
    await expectFormat(TensorStore.open(broken((h) => ((h['w.a'] as { data_offsets: number[] }).data_offsets = [4, 64]))), 'overlap');
    await expectFormat(TensorStore.open(broken((h) => ((h['w.b'] as { dtype: string }).dtype = 'Q4'))), 'unknown dtype');
    await expectFormat(TensorStore.open(broken((h) => ((h['w.b'] as { data_offsets: unknown }).data_offsets = 'x'))), 'data_offsets');
    await expectFormat(TensorStore.open(broken((h) => (h['w.b'] = 7))), 'not an object');
    await expectFormat(TensorStore.open(broken((h) => ((h['w.a'] as { data_offsets: number[] }).data_offsets = [1e9, 1e9 + 60]))), 'truncated');
    // a header that is not JSON / not an object / absurdly long
    const bad = Buffer.alloc(8 + 4);
    bad.writeBigUInt64LE(4n);
    bad.write('{{{{', 8);
    await expectFormat(TensorStore.open(file(bad)), 'not valid JSON');
    bad.write('[1] ', 8);
    await expectFormat(TensorStore.open(file(bad)), 'JSON object');
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(2n ** 60n);
    await expectFormat(TensorStore.open(file(huge)), 'header length');
    await expectFormat(TensorStore.open(path.join(tmp, 'does-not-exist.safetensors')), 'cannot open');
  });

  it('rejects unsupported stored dtypes clearly when loaded', async () => {
    const f = file(
      safetensorsBytes({ x: { shape: [2], data: [1, 2] } }, (h) => {
        (h.x as { dtype: string }).dtype = 'I32';
      }),
    );
    const store = await TensorStore.open(f);
    await expectFormat(store.get('x'), 'I32', 'F32, F16 and BF16');
  });

  it('writes and reads a file with the writer helper', async () => {
    const f = path.join(tmp, 'helper.safetensors');
    writeSafetensors(f, { t: { shape: [2, 2], data: [1, 2, 3, 4] } });
    expect(Array.from((await (await TensorStore.open(f)).get('t')).data)).toEqual([1, 2, 3, 4]);
  });
});
