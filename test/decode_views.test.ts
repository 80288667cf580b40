import { describe, it } from 'vitest';
import { checkDecodeViews, checkDtProj, checkLinearConv } from './decode_views';

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
    it(`${dtype}: selectiveStateUpdate with dtProj equals linear then the state update`, async () => {
      await checkDtProj('cpu', dtype, tol);
    });
  }
});
