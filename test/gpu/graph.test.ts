import { expect, it } from 'vitest';
import { add, captureGraph, linear, randn, silu, tensor, zeros } from '../../lib/index';
import { copyInto } from '../../lib/index';
import { describeGpu, expectClose, expectCode, randnArray } from '../helpers';

describeGpu('CUDA graphs', () => {
  it('replays captured ops on the current contents of their inputs', async () => {
    const x = randn([3, 37], { seed: 1, device: 'cuda' });
    const w = randn([29, 37], { seed: 2, device: 'cuda' });
    const out = zeros([3, 29], { device: 'cuda' });
    const step = () => copyInto(out, add(silu(linear({ x, weight: w })), linear({ x, weight: w })));
    step(); // warm-up outside the capture (library handles, workspaces)
    const g = captureGraph('cuda', step);
    for (let round = 0; round < 3; round++) {
      const xv = randnArray(3 * 37);
      copyInto(x, tensor(Float32Array.from(xv), [3, 37], { device: 'cuda' }));
      g.replay();
      const got = await out.data();
      // reference: the same ops run eagerly
      const ref = await add(silu(linear({ x, weight: w })), linear({ x, weight: w })).data();
      expectClose(got, ref, 1e-6, `round ${round}`);
    }
    g.dispose();
    expectCode(() => g.replay(), 'ERR_DISPOSED');
  });

  it('refuses captures that leak tensors or read from the GPU, and the stream works afterwards', async () => {
    const x = randn([8], { seed: 3, device: 'cuda' });
    let leaked: unknown;
    expectCode(
      () =>
        captureGraph('cuda', () => {
          leaked = silu(x);
          return leaked;
        }),
      'ERR_INVALID_ARG',
      'still alive',
    );
    expectCode(() => captureGraph('cuda', () => void silu(x).dataSync()), 'ERR_INVALID_ARG', 'capturing');
    expectCode(() => captureGraph('cpu', () => undefined), 'ERR_DEVICE');
    const v = await silu(x).data();
    expect(v.length).toBe(8);
  });
});
