import { beforeAll, afterAll, it } from 'vitest';
import { debugPoison } from '../../lib/index';
import { checkDecodeViews, checkDtProj, checkLinearConv } from '../decode_views';
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
  for (const [dtype, tol] of [['float32', 1e-5], ['bfloat16', 1e-2], ['float16', 5e-3]] as const) {
    it(`${dtype}: selectiveStateUpdate with dtProj equals linear then the state update`, async () => {
      await checkDtProj('cuda', dtype, tol);
    });
  }
});
