import { beforeAll, afterAll, afterEach, it } from 'vitest';
import { debugPoison } from '../../lib/index';
import { checkDecodeViews, checkDtProj, checkLinearConv, checkLinearConvProj } from '../decode_views';
import { describeGpu } from '../helpers';

describeGpu('decode ops on strided views (CUDA)', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    it(`${dtype}: views of wider projections give what contiguous copies give`, async () => {
      await checkDecodeViews('cuda', dtype);
    });
  }
  for (const [dtype, tol] of [['float32', 1e-5], ['bfloat16', 1e-2], ['float16', 5e-3]] as const) {
    it(`${dtype}: linearConvUpdate equals linear then causalConv1dUpdate on its conv columns`, async () => {
      await checkLinearConv('cuda', dtype, tol);
    });
  }
  afterEach(() => {
    delete process.env.STATESPACE_FORK;
  });
  for (const [dtype, tol] of [['float32', 1e-5], ['bfloat16', 1e-2], ['float16', 5e-3]] as const) {
    it(`${dtype}: linearConvUpdateProj (the columns outside the conv on the side stream) equals linearConvUpdate then linear, also from a CUDA graph`, async () => {
      await checkLinearConvProj('cuda', dtype, tol, true);
    });
  }
  it('bfloat16: linearConvUpdateProj on one stream (STATESPACE_FORK=0)', async () => {
    process.env.STATESPACE_FORK = '0';
    await checkLinearConvProj('cuda', 'bfloat16', 1e-2, true);
  });
  for (const [dtype, tol] of [['float32', 1e-5], ['bfloat16', 1e-2], ['float16', 5e-3]] as const) {
    it(`${dtype}: selectiveStateUpdate with dtProj equals linear then the state update`, async () => {
      await checkDtProj('cuda', dtype, tol);
    });
  }
});
