import { describe, expect, it } from 'vitest';
import { buildInfo, cudaAvailable, randn, synchronize, synchronizeSync, tensor, zeros } from '../lib/index';
import { expectCode } from './helpers';

describe('execution model', () => {
  it('keeps the event loop running while a long CPU op runs and data() is pending', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = Date.now();
    const big = randn([24_000_000], { seed: 7 }); // ~100 MB of normal samples: hundreds of ms
    const enqueuedMs = Date.now() - t0;
    const pending = big.astype('bfloat16').astype('float32').data();
    const v = await pending;
    const totalMs = Date.now() - t0;
    clearInterval(timer);
    expect(v.length).toBe(24_000_000);
    expect(enqueuedMs).toBeLessThan(50); // the op was queued, not run, on the JS thread
    expect(totalMs).toBeGreaterThan(100);
    expect(ticks).toBeGreaterThan(totalMs / 10); // the timer kept firing throughout
  });

  it('runs queued CPU work in order', async () => {
    const a = randn([200_000], { seed: 1 });
    const b = a.astype('float16');
    const c = b.astype('float64');
    const d = c.astype('float32');
    const [x, y] = await Promise.all([d.data(), b.data()]);
    expect(x).toEqual(y);
    await synchronize('cpu');
    synchronizeSync('cpu');
  });

  it('reports why CUDA is unavailable and refuses CUDA tensors with ERR_DEVICE', () => {
    const b = buildInfo();
    expect(typeof b.cuda).toBe('boolean');
    expect(b.cpuThreads).toBeGreaterThan(0);
    if (!cudaAvailable()) {
      expect(b.cudaUnavailable.length).toBeGreaterThan(0);
      expectCode(() => zeros([2], { device: 'cuda' }), 'ERR_DEVICE', 'cuda:0');
      expectCode(() => tensor([1, 2]).to('cuda:1'), 'ERR_DEVICE', 'cuda:1');
    }
    expectCode(() => zeros([2], { device: 'gpu' as never }), 'ERR_DEVICE', "'cpu'");
    expectCode(() => zeros([2], { dtype: 'float8' as never }), 'ERR_DTYPE', 'float8');
    expectCode(() => zeros([2, -1]), 'ERR_SHAPE');
    expectCode(() => randn([3], { seed: -1 }), 'ERR_INVALID_ARG', 'seed');
  });

  it('leaves inputs untouched when a call fails', async () => {
    const t = tensor([1, 2, 3]);
    expectCode(() => t.permute(0, 1), 'ERR_INVALID_ARG');
    expectCode(() => t.reshape([2, 2]), 'ERR_SHAPE');
    expect(Array.from(await t.data())).toEqual([1, 2, 3]);
    expect(t.shape).toEqual([3]);
  });
});
