import { beforeAll, afterAll, it } from 'vitest';
import { debugPoison } from '../../lib/index';
import { checkArgmax } from '../argmax_cases';
import { describeGpu } from '../helpers';

describeGpu('argmax on CUDA', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    it(`${dtype}: first largest value of each row, NaN largest, against the reference`, async () => {
      await checkArgmax('cuda', dtype);
    });
  }
});
