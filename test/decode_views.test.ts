import { describe, expect, it } from 'vitest';
import { linearConvUpdate, linearConvUpdateProj, randn, selectiveStateUpdate, zeros } from '../lib/index';
import { expectCode } from './helpers';
import { checkDecodeViews, checkDtProj, checkLinearConv, checkLinearConvProj } from './decode_views';

describe('decode ops on strided views (CPU)', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`${dtype}: views of wider projections give what contiguous copies give`, async () => {
      await checkDecodeViews('cpu', dtype);
    });
  }
  for (const [dtype, tol] of [['float32', 1e-6], ['bfloat16', 1e-2]] as const) {
    it(`${dtype}: linearConvUpdate equals linear then causalConv1dUpdate on its conv columns`, async () => {
      await checkLinearConv('cpu', dtype, tol);
    });
  }
  for (const [dtype, tol] of [['float32', 1e-6], ['bfloat16', 1e-2]] as const) {
    it(`${dtype}: linearConvUpdateProj equals linearConvUpdate then linear on its conv columns`, async () => {
      await checkLinearConvProj('cpu', dtype, tol);
    });
  }
  for (const [dtype, tol] of [['float32', 1e-6], ['bfloat16', 1e-2]] as const) {
    it(`${dtype}: selectiveStateUpdate with dtProj equals linear then the state update`, async () => {
      await checkDtProj('cpu', dtype, tol);
    });
  }
  it('rejects a dtProj outside the Mamba-1 form or of the wrong shape, conv columns past the outputs, and a bad xProj', async () => {
    const m2 = { state: zeros([2, 3, 4, 16]), x: randn([2, 3, 4]), A: randn([3]), B: randn([2, 1, 16]), C: randn([2, 1, 16]) };
    expectCode(() => selectiveStateUpdate({ ...m2, dt: randn([2, 5]), dtProj: randn([3, 5]) }), 'ERR_INVALID_ARG', 'dtProj');
    const m1 = { state: zeros([2, 8, 16]), x: randn([2, 8]), A: randn([8, 16]), B: randn([2, 16]), C: randn([2, 16]) };
    expectCode(() => selectiveStateUpdate({ ...m1, dt: randn([2, 5]), dtProj: randn([8, 4]) }), 'ERR_SHAPE', 'dtProj');
    expectCode(
      () => linearConvUpdate({ x: randn([2, 6]), weight: randn([10, 6]), convState: zeros([2, 4, 3]), convWeight: randn([4, 4]), convStart: 8 }),
      'ERR_SHAPE',
      'convStart',
    );
    const lcu = { x: randn([2, 6]), weight: randn([10, 6]), convState: zeros([2, 4, 3]), convWeight: randn([4, 4]), convStart: 0 };
    expectCode(() => linearConvUpdateProj({ ...lcu, xProj: randn([5, 6]) }), 'ERR_SHAPE', 'xProj');
    expectCode(() => linearConvUpdateProj({ ...lcu, xProj: randn([5, 4], { dtype: 'bfloat16' }) }), 'ERR_DTYPE', 'xProj');
    // rejected before anything runs: the conv state is untouched
    expect(Array.from(await lcu.convState.data()).every((v) => v === 0)).toBe(true);
  });
});
