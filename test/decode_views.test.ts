import { describe, it } from 'vitest';
import { checkDecodeViews } from './decode_views';

describe('decode ops on strided views (CPU)', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`${dtype}: views of wider projections give what contiguous copies give`, async () => {
      await checkDecodeViews('cpu', dtype);
    });
  }
});
