import { describe, it } from 'vitest';
import { argmax, tensor, zeros } from '../lib/index';
import { checkArgmax } from './argmax_cases';
import { expectCode } from './helpers';

describe('argmax (CPU)', () => {
  for (const dtype of ['float32', 'float64', 'bfloat16'] as const) {
    it(`${dtype}: first largest value of each row, NaN largest, against the reference`, async () => {
      await checkArgmax('cpu', dtype);
    });
  }

  it('rejects integer inputs and empty rows with coded errors', () => {
    expectCode(() => argmax(tensor(Int32Array.of(1, 2), [2], { dtype: 'int32' })), 'ERR_DTYPE', 'x');
    expectCode(() => argmax(zeros([3, 0])), 'ERR_SHAPE', 'x');
  });
});
