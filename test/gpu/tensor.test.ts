import { expect, it } from 'vitest';
import { DTYPES, captureGraph, copyInto, debugPoison, devices, emptyCache, empty, memory, randn, synchronize, tensor, tidy, zeros } from '../../lib/index';
import { describeGpu, expectCode, randnArray } from '../helpers';

describeGpu('CUDA tensors', () => {
  it('lists the device with its properties', () => {
    const d = devices().find((x) => x.device === 'cuda:0');
    expect(d?.name).toBeTruthy();
    expect(Number(d?.computeCapability)).toBeGreaterThanOrEqual(8);
    expect(d?.totalMemory).toBeGreaterThan(1e9);
  });

  it('round-trips every dtype through the GPU, including strided views', async () => {
    const x = randnArray(3 * 5 * 7);
    for (const dtype of DTYPES.filter((d) => d !== 'float64')) {
      const cpu = tensor(x, [3, 5, 7]).astype(dtype);
      const gpu = cpu.to('cuda');
      expect(gpu.device).toBe('cuda:0');
      expect(await gpu.data()).toEqual(await cpu.data());
      // strided view converted on the GPU equals the same on the CPU
      const a = await gpu.permute(2, 0, 1).astype('float32').data();
      const b = await cpu.permute(2, 0, 1).astype('float32').data();
      expect(a).toEqual(b);
      expect(await gpu.to('cpu').data()).toEqual(await cpu.data());
    }
    const bits = tensor(new Uint16Array([0x7f80, 0xff80, 0x7fc1, 0x3f80]), [4], { dtype: 'bfloat16', device: 'cuda' });
    expect(Array.from(await bits.bits())).toEqual([0x7f80, 0xff80, 0x7fc1, 0x3f80]);
    expectCode(() => tensor([1], [1], { dtype: 'float64', device: 'cuda' }), 'ERR_DTYPE', 'float64');
  });

  it('copyInto uploads a CPU tensor straight into a CUDA tensor or view, converting the dtype', async () => {
    debugPoison(true);
    try {
      const x = randnArray(4 * 6);
      const dst = empty([4, 6], { device: 'cuda' });
      copyInto(dst, tensor(x, [4, 6]));
      expect(Array.from(await dst.data())).toEqual(Array.from(Float32Array.from(x)));
      // into one row of a bf16 tensor, from a strided f32 view (converted on the CPU first)
      const half = zeros([3, 6], { dtype: 'bfloat16', device: 'cuda' });
      const src = tensor(x, [6, 4]).permute(1, 0).slice(0, 1, 2); // (1, 6), strided
      copyInto(half.slice(0, 2, 3), src);
      const want = Array.from(await src.astype('bfloat16').astype('float32').data());
      const got = Array.from(await half.astype('float32').data());
      expect(got.slice(12)).toEqual(want);
      expect(got.slice(0, 12)).toEqual(new Array(12).fill(0));
      const ids = zeros([3], { dtype: 'int32', device: 'cuda' });
      copyInto(ids, tensor(Int32Array.of(7, -2, 9), [3], { dtype: 'int32' }));
      expect(Array.from(await ids.data())).toEqual([7, -2, 9]);
      // what the CPU side refuses: other shapes, int32 <-> float, an upload inside a graph capture
      expectCode(() => copyInto(dst, tensor(x.slice(0, 6), [1, 6])), 'ERR_SHAPE', 'src');
      expectCode(() => copyInto(ids, tensor(Float32Array.of(1, 2, 3), [3])), 'ERR_DTYPE', 'src');
      expect(() => captureGraph('cuda', () => copyInto(dst, tensor(x, [4, 6])))).toThrow(/captur/);
      // a refused copy leaves the destinations as they were
      expect(Array.from(await dst.data())).toEqual(Array.from(Float32Array.from(x)));
      expect(Array.from(await ids.data())).toEqual([7, -2, 9]);
    } finally {
      debugPoison(false);
    }
  });

  it('copies transposed and strided views exactly (tiled transpose, 2-D memcpy and generic paths)', async () => {
    const cases: Array<[number[], (t: import('../../lib/index').Tensor) => import('../../lib/index').Tensor]> = [
      [[130, 67], (t) => t.transpose(0, 1)],
      [[3, 70, 45], (t) => t.transpose(1, 2)],
      [[2, 33, 5, 31], (t) => t.permute(0, 3, 1, 2)],
      [[4, 9, 1, 300], (t) => t.permute(3, 0, 2, 1).slice(0, 7, 290)],
      [[1, 37, 211], (t) => t.slice(2, 5, 150)], // rows with a stride (2-D memcpy)
      [[37, 211], (t) => t.slice(1, 1, 2)], // one column: rows of one element
    ];
    for (const [shape, f] of cases) {
      const x = randn(shape, { seed: shape[0] });
      for (const [a, b] of [['float32', 'float32'], ['bfloat16', 'bfloat16'], ['float32', 'bfloat16'], ['float16', 'float32']] as const) {
        const cpu = await f(x.astype(a)).astype(b).contiguous().data();
        // tidy frees the GPU intermediates now: leaving them to the garbage collector would move
        // the pool's accounting under the memory test below
        const g = tidy(() => f(x.to('cuda').astype(a)).astype(b).contiguous());
        const gpu = await g.data();
        g.dispose();
        expect(gpu, `${shape} ${a}->${b}`).toEqual(cpu);
      }
    }
  });

  it('seeded randn gives the same numbers as on the CPU, with normal statistics', async () => {
    const n = 1 << 20;
    const g = await randn([n], { seed: 1234, device: 'cuda' }).data();
    const c = await randn([n], { seed: 1234 }).data();
    let maxDiff = 0, m = 0, v = 0;
    for (let i = 0; i < n; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(g[i] - c[i]));
      m += g[i];
    }
    m /= n;
    for (let i = 0; i < n; i++) v += (g[i] - m) ** 2;
    v /= n;
    expect(maxDiff).toBeLessThan(1e-6);
    expect(Math.abs(m)).toBeLessThan(0.005);
    expect(Math.abs(v - 1)).toBeLessThan(0.01);
    const hb = await randn([1000], { seed: 9, device: 'cuda', dtype: 'bfloat16' }).data();
    const hc = await randn([1000], { seed: 9, dtype: 'bfloat16' }).data();
    expect(hb).toEqual(hc);
  });

  it('accounts memory in use and cached by the pool', async () => {
    await synchronize('cuda');
    const before = memory()['cuda:0'];
    const bytes = 64 << 20;
    const t = zeros([bytes / 4], { device: 'cuda' });
    expect(memory()['cuda:0'].inUse).toBe(before.inUse + bytes);
    t.dispose();
    await synchronize('cuda');
    const after = memory()['cuda:0'];
    // At most what was in use before: tensors that earlier tests left to the garbage collector
    // may be freed by their finalizers during the awaits, but the 64 MiB must be back.
    expect(after.inUse).toBeLessThanOrEqual(before.inUse);
    expect(after.cached).toBeGreaterThanOrEqual(bytes);
    emptyCache('cuda');
    expect(memory()['cuda:0'].cached).toBeLessThan(after.cached);
  });

  it('turns an allocation larger than the card into ERR_CUDA_OOM and recovers', async () => {
    const total = devices().find((x) => x.device === 'cuda:0')!.totalMemory!;
    const keep = tensor([1, 2, 3], [3], { device: 'cuda' });
    let err: (Error & { code?: string }) | undefined;
    try {
      zeros([Math.ceil((total * 1.5) / 4)], { device: 'cuda' });
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err).toBeInstanceOf(RangeError);
    expect(err?.code).toBe('ERR_CUDA_OOM');
    // the process lives on, earlier tensors are intact, and new work runs
    expect(Array.from(await keep.data())).toEqual([1, 2, 3]);
    const r = await randn([1000], { seed: 1, device: 'cuda' }).data();
    expect(r.length).toBe(1000);
  });

  it('poison mode fills new GPU memory with NaN', async () => {
    debugPoison(true);
    try {
      const e = await empty([257], { device: 'cuda' }).data();
      expect(e.every((x) => Number.isNaN(x))).toBe(true);
    } finally {
      debugPoison(false);
    }
  });

  it('a read still completes when the tensor is disposed right after asking', async () => {
    const t = randn([1 << 22], { seed: 3, device: 'cuda' });
    const pending = t.data();
    t.dispose();
    const v = await pending;
    const c = await randn([1 << 22], { seed: 3 }).data();
    let maxDiff = 0;
    for (let i = 0; i < v.length; i++) maxDiff = Math.max(maxDiff, Math.abs(v[i] - c[i]));
    expect(maxDiff).toBeLessThan(1e-6);
  });
});
