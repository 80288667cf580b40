import { describe, expect, it } from 'vitest';
import { DTYPES, Tensor, copyInto, empty, full, memory, ones, rand, randn, tensor, tidy, zeros } from '../lib/index';
import { native } from '../lib/native';
import { expectCode, randnArray, rng } from './helpers';

/** Independent decoders for 16-bit floats (from the IEEE layouts). */
function decodeF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function decodeBF16(h: number): number {
  const f = new Float32Array(new Uint32Array([h << 16]).buffer);
  return f[0];
}

/** Checks h is the nearest 16-bit value to x, ties to even. */
/** `overflow` is the largest finite value plus half its ulp: from there on, ±Inf. */
function checkRounding(x: number, h: number, decode: (h: number) => number, overflow: number): void {
  const v = decode(h);
  if (Number.isNaN(x)) return expect(Number.isNaN(v)).toBe(true);
  if (Math.abs(x) >= overflow) return expect(v).toBe(Math.sign(x) * Infinity);
  expect(Number.isFinite(v), `x=${x} must stay finite`).toBe(true);
  for (const nb of [h - 1, h + 1]) {
    const w = decode(nb & 0xffff);
    if (!Number.isFinite(w) || Math.sign(w) !== Math.sign(v) && w !== 0) continue;
    const dv = Math.abs(x - v), dw = Math.abs(x - w);
    expect(dv, `x=${x} h=${h} nb=${nb}`).toBeLessThanOrEqual(dw);
    if (dv === dw) expect(h & 1, `tie for ${x} must round to even`).toBe(0);
  }
}

describe('tensor creation and reading', () => {
  it('round-trips every dtype on the CPU', async () => {
    const vals = [0, 1, -2.5, 3.25, 1024, -0.125];
    for (const dtype of DTYPES) {
      const t = tensor(vals, [2, 3], { dtype });
      expect(t.shape).toEqual([2, 3]);
      expect(t.dtype).toBe(dtype);
      expect(Array.from(await t.data())).toEqual(dtype === 'int32' ? [0, 1, -2, 3, 1024, 0] : vals);
      expect(Array.from(t.dataSync())).toEqual(Array.from(await t.data()));
    }
  });

  it('infers shape from nested arrays and dtype from typed arrays', async () => {
    expect(tensor([[1, 2, 3], [4, 5, 6]]).shape).toEqual([2, 3]);
    expect(tensor(new Int32Array([1, 2])).dtype).toBe('int32');
    expect(tensor(new Float64Array([1, 2])).dtype).toBe('float64');
    expect(await tensor([[1, 2], [3, 4]]).array()).toEqual([[1, 2], [3, 4]]);
    expectCode(() => tensor([[1, 2], [3]]), 'ERR_SHAPE', 'ragged');
    expectCode(() => tensor([1, 2, 3], [2, 2]), 'ERR_SHAPE', '3 elements');
  });

  it('rounds float32 to bfloat16 and float16 to nearest even, keeping NaN and ±Inf', async () => {
    const r = rng();
    const xs = [NaN, Infinity, -Infinity, 0, -0, 65504, 65520, 65519.99, 1e-8, 2.98e-8, 5.96e-8, 6.1e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38];
    for (let i = 0; i < 2000; i++) xs.push(Math.fround((r() - 0.5) * 10 ** (r() * 12 - 6)));
    const f32 = new Float32Array(xs);
    const bf = await tensor(f32, undefined, { dtype: 'bfloat16' }).bits();
    const hf = await tensor(f32, undefined, { dtype: 'float16' }).bits();
    for (let i = 0; i < f32.length; i++) {
      checkRounding(f32[i], bf[i], decodeBF16, 3.3895313892515355e38 + 2 ** 119);
      checkRounding(f32[i], hf[i], decodeF16, 65504 + 16);
    }
    // values read back as float32 equal the decoded bits
    const back = await tensor(f32, undefined, { dtype: 'float16' }).data();
    for (let i = 0; i < f32.length; i++) expect(Object.is(back[i], decodeF16(hf[i])) || (isNaN(back[i]) && isNaN(decodeF16(hf[i])))).toBe(true);
  });

  it('takes raw 16-bit patterns from a Uint16Array', async () => {
    const bits = new Uint16Array([0x3f80, 0x7f80, 0xff80, 0x7fc0, 0x0001]);
    const t = tensor(bits, [5], { dtype: 'bfloat16' });
    expect(Array.from(await t.bits())).toEqual(Array.from(bits));
    const v = await t.data();
    expect(v[0]).toBe(1);
    expect(v[1]).toBe(Infinity);
    expect(v[2]).toBe(-Infinity);
    expect(Number.isNaN(v[3])).toBe(true);
    expect(v[4]).toBeGreaterThan(0);
    expectCode(() => tensor(bits, [5], { dtype: 'float32' }), 'ERR_DTYPE', 'Uint16Array');
  });

  it('fills zeros, ones, full and leaves empty allocated', async () => {
    expect(Array.from(await zeros([3]).data())).toEqual([0, 0, 0]);
    expect(Array.from(await ones([2], { dtype: 'bfloat16' }).data())).toEqual([1, 1]);
    expect(Array.from(await full([2, 2], 7, { dtype: 'int32' }).data())).toEqual([7, 7, 7, 7]);
    expect(empty([4, 5]).size).toBe(20);
    expect(zeros([0, 3]).size).toBe(0);
    expect((await zeros([0]).data()).length).toBe(0);
  });

  it('randn and rand are seeded and have the right statistics', async () => {
    const n = 200_000;
    const a = await randn([n], { seed: 42 }).data();
    const b = await randn([n], { seed: 42 }).data();
    const c = await randn([n], { seed: 43 }).data();
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    let m = 0, v = 0, k = 0;
    for (const x of a) m += x;
    m /= n;
    for (const x of a) {
      v += (x - m) ** 2;
      k += (x - m) ** 4;
    }
    v /= n;
    k = k / n / v ** 2;
    expect(Math.abs(m)).toBeLessThan(0.01);
    expect(Math.abs(v - 1)).toBeLessThan(0.015);
    expect(Math.abs(k - 3)).toBeLessThan(0.06);
    const u = await rand([n], { seed: 5, low: -2, high: 3 }).data();
    let mu = 0, lo = Infinity, hi = -Infinity;
    for (const x of u) {
      mu += x;
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    expect(lo).toBeGreaterThanOrEqual(-2);
    expect(hi).toBeLessThan(3);
    expect(Math.abs(mu / n - 0.5)).toBeLessThan(0.02);
    const s = await randn([4], { seed: 1, mean: 10, std: 0 }).data();
    expect(Array.from(s)).toEqual([10, 10, 10, 10]);
    // the same seed gives the same numbers whatever the dtype's rounding
    const h = await randn([1000], { seed: 42, dtype: 'bfloat16' }).data();
    const ref = await tensor(a.slice(0, 1000)).astype('bfloat16').data();
    expect(h).toEqual(ref);
  });
});

describe('views and copies', () => {
  const base = () => tensor(Float32Array.from({ length: 24 }, (_, i) => i), [2, 3, 4]);

  it('reshape, permute, transpose, slice and contiguous', async () => {
    const t = base();
    expect((await t.reshape([4, -1]).data()).length).toBe(24);
    expect(t.reshape([6, 4]).shape).toEqual([6, 4]);
    const p = t.permute(2, 0, 1);
    expect(p.shape).toEqual([4, 2, 3]);
    expect(p.isContiguous).toBe(false);
    const pd = await p.data();
    for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) for (let k = 0; k < 3; k++) expect(pd[i * 6 + j * 3 + k]).toBe(j * 12 + k * 4 + i);
    const tr = t.transpose(0, 2).contiguous();
    expect(tr.isContiguous).toBe(true);
    expect(tr.shape).toEqual([4, 3, 2]);
    const s = t.slice(2, 1, 3);
    expect(s.shape).toEqual([2, 3, 2]);
    expect(Array.from(await s.data())).toEqual([1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22]);
    // reshape of a non-contiguous view copies
    expect(Array.from(await p.reshape([-1]).data())).toEqual(Array.from(pd));
    expectCode(() => t.reshape([5, -1]), 'ERR_SHAPE');
    expectCode(() => t.permute(0, 0, 1), 'ERR_INVALID_ARG');
    expectCode(() => t.slice(0, 1, 5).slice(0, 3), 'ERR_SHAPE');
  });

  it('astype converts strided views between every pair of dtypes', async () => {
    const src = tensor([[0.5, -1.5, 2], [3, 4.25, -8]]).transpose(0, 1);
    for (const a of DTYPES) {
      const x = src.astype(a);
      for (const b of DTYPES) {
        const y = await x.astype(b).data();
        const expected = a === 'int32' || b === 'int32' ? [0, 3, -1, 4, 2, -8] : [0.5, 3, -1.5, 4.25, 2, -8];
        expect(Array.from(y), `${a} -> ${b}`).toEqual(expected);
      }
    }
  });

  it('copyInto writes a strided source into a slot of a larger tensor, converting dtypes', async () => {
    const cache = zeros([3, 2, 2], { dtype: 'bfloat16' });
    const src = tensor([[1, 2], [3, 4]]).transpose(0, 1); // strided float32
    copyInto(cache.slice(0, 1, 2), src.unflatten(0, [1, 2]));
    expect(Array.from(await cache.data())).toEqual([0, 0, 0, 0, 1, 3, 2, 4, 0, 0, 0, 0]);
    expectCode(() => copyInto(cache.slice(0, 0, 1), src), 'ERR_SHAPE', 'src');
    expectCode(() => copyInto(cache.transpose(1, 2), cache), 'ERR_INVALID_ARG', 'contiguous');
    expectCode(() => copyInto(zeros([2], { dtype: 'int32' }), zeros([2])), 'ERR_DTYPE');
    expect(Array.from(await cache.data())).toEqual([0, 0, 0, 0, 1, 3, 2, 4, 0, 0, 0, 0]);
  });

  it('unflatten and squeeze are views; views never reach outside their storage', async () => {
    const t = tensor(Float32Array.from({ length: 12 }, (_, i) => i), [12]);
    const u = t.unflatten(0, [3, 4]);
    expect(u.shape).toEqual([3, 4]);
    expect(Array.from(await u.slice(1, 1, 2).squeeze(1).data())).toEqual([1, 5, 9]);
    expectCode(() => t.unflatten(0, [5, 3]), 'ERR_SHAPE');
    expectCode(() => u.squeeze(0), 'ERR_SHAPE');
  });

  it('op outputs and views carry their strides, offsets, dtype and device', async () => {
    // (op outputs come back without strides when contiguous from offset 0, and a view's metadata
    // is computed in JS: both must equal what the storage holds)
    const t = tensor(Float32Array.from({ length: 24 }, (_, i) => i), [2, 3, 4], { dtype: 'bfloat16' });
    for (const out of [t, t.clone(), t.astype('float32'), zeros([2, 3, 4])]) {
      expect(out.strides).toEqual([12, 4, 1]);
      expect(out.offset).toBe(0);
      expect(Object.isFrozen(out.strides)).toBe(true);
    }
    const v = t.slice(1, 1, 3).permute(2, 0, 1);
    expect([v.shape, v.strides, v.offset, v.dtype, v.device]).toEqual([[4, 2, 2], [1, 12, 4], 4, 'bfloat16', 'cpu']);
    expect(Array.from(await v.data()).slice(0, 4)).toEqual([4, 8, 16, 20]);
    // the native side still refuses a view past its storage, whatever JS asks for
    expectCode(() => (native as unknown as { view: (...a: unknown[]) => unknown }).view(t, [2, 3, 4], [12, 4, 1], 1), 'ERR_SHAPE', 'outside');
    expect(Array.from(await t.data())[23]).toBe(23);
  });

  it('views survive disposing the base, and copies are independent', async () => {
    const t = base();
    const v = t.reshape([24]);
    const c = t.clone();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect((await v.data())[23]).toBe(23);
    expect((await c.data())[5]).toBe(5);
  });
});

describe('lifetime', () => {
  it('dispose frees memory and later use is a coded error', async () => {
    const before = memory().cpu.inUse;
    const t = zeros([1024, 1024]);
    expect(memory().cpu.inUse).toBeGreaterThanOrEqual(before + 4 * 1024 * 1024);
    t.dispose();
    t.dispose(); // idempotent
    await new Promise((r) => setTimeout(r, 10));
    expect(memory().cpu.inUse).toBeLessThan(before + 4 * 1024 * 1024);
    expectCode(() => t.dataSync(), 'ERR_DISPOSED', 'disposed');
    await expect(t.data()).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    expectCode(() => t.astype('float16'), 'ERR_DISPOSED');
  });

  it('Symbol.dispose works with `using`-style scopes', () => {
    let t: Tensor;
    {
      const d = zeros([3]);
      t = d;
      d[Symbol.dispose]();
    }
    expect(t.disposed).toBe(true);
  });

  it('tidy disposes everything but the returned tensors, sync and async', async () => {
    let inner: Tensor[] = [];
    const out = tidy(() => {
      const a = ones([2]);
      const b = zeros([2]);
      inner = [a, b];
      return { keep: [b] };
    });
    expect(inner[0].disposed).toBe(true);
    expect(out.keep[0].disposed).toBe(false);
    const res = await tidy(async () => {
      const a = ones([2]);
      await new Promise((r) => setTimeout(r, 1));
      const b = a.astype('float16');
      inner = [a];
      return b;
    });
    expect(inner[0].disposed).toBe(true);
    expect(Array.from(await res.data())).toEqual([1, 1]);
    // nested: inner keeps flow to the outer scope
    let mid: Tensor | undefined;
    tidy(() => {
      mid = tidy(() => ones([1]));
      expect(mid.disposed).toBe(false);
    });
    expect(mid!.disposed).toBe(true);
  });
});

describe('large data', () => {
  it('copies a big random float64 array exactly', async () => {
    const x = randnArray(100_003);
    const t = tensor(x);
    expect(await t.data()).toEqual(x);
    expect(await t.astype('float32').astype('float64').data()).toEqual(Float64Array.from(Float32Array.from(x)));
  });
});
