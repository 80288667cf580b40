import { expect, it } from 'vitest';
import { add, captureGraph, linear, linearConvUpdate, randn, silu, tensor, tidy, zeros } from '../../lib/index';
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

  // linearConvUpdate's restOnSide forks a second stream into the capture: joined by the gated
  // linear that reads its columns, or (nothing reading them) at the end of the capture.
  it('captures restOnSide: joined by a gated linear, or at the end of the capture', async () => {
    const [K, N, lo, C] = [2560, 10576, 5120, 5376]; // mamba2-2.7b's in_proj: z = [0, 5120) on the side
    const opts = { device: 'cuda' as const, dtype: 'bfloat16' as const };
    const x = randn([1, K], { seed: 4, device: 'cuda' });
    const w = randn([N, K], { seed: 5, ...opts });
    const nw = randn([K], { seed: 6, ...opts });
    const cw = randn([C, 4], { seed: 7, ...opts });
    const state = randn([1, C, 3], { seed: 8, ...opts });
    const v = randn([1, lo], { seed: 9, ...opts });
    const gw = randn([lo], { seed: 10, ...opts });
    const w2 = randn([40, lo], { seed: 11, ...opts });
    const s0 = state.clone();
    const out = zeros([1, 40], opts);
    const conv = zeros([1, C], opts);
    const step = () => {
      const p = linearConvUpdate({ x, weight: w, normWeight: nw, convState: state, convWeight: cw, convStart: lo, activation: 'silu', restOnSide: true });
      copyInto(conv, p.slice(1, lo, lo + C));
      copyInto(out, linear({ x: v, weight: w2, normWeight: gw, normGate: p.slice(1, 0, lo) }));
    };
    tidy(step); // warm-up outside the capture
    const g = captureGraph('cuda', step);
    // the conv columns only: the capture ends with the side stream still forked
    const gConv = captureGraph('cuda', () => copyInto(conv, linearConvUpdate({ x, weight: w, normWeight: nw, convState: state, convWeight: cw, convStart: lo, activation: 'silu', restOnSide: true }).slice(1, lo, lo + C)));
    for (let round = 0; round < 2; round++) {
      copyInto(state, s0);
      g.replay();
      const [got, gotConv] = [await out.data(), await conv.data()];
      copyInto(state, s0);
      tidy(step); // eagerly
      expectClose(got, await out.data(), 1e-6, `round ${round}: gated linear`);
      expectClose(gotConv, await conv.data(), 1e-6, `round ${round}: conv columns`);
      copyInto(state, s0);
      gConv.replay();
      expectClose(await conv.data(), gotConv, 1e-6, `round ${round}: capture ending forked`);
    }
    g.dispose();
    gConv.dispose();
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
