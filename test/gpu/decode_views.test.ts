import { beforeAll, afterAll, it } from 'vitest';
import { debugPoison } from '../../lib/index';
import { checkDecodeViews } from '../decode_views';
import { describeGpu } from '../helpers';

describeGpu('decode ops on strided views (CUDA)', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    it(`${dtype}: views of wider projections give what contiguous copies give`, async () => {
      await checkDecodeViews('cuda', dtype);
    });
  }
});
