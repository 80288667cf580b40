import { describe, it } from 'vitest';
import { argmax, sampleTokens, tensor, zeros } from '../lib/index';
import { checkArgmax } from './argmax_cases';
import { defineSampleTests } from './sample_cases';
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

describe('sampleTokens (CPU)', () => {
  defineSampleTests('cpu', ['float32', 'bfloat16']);
  it('rejects missing, misshapen or mistyped parameters with coded errors', () => {
    const logits = zeros([2, 5]);
    const t = tensor(Float32Array.of(1, 1), [2]);
    const u = tensor(Float32Array.of(0.5, 0.5), [2]);
    expectCode(() => sampleTokens({ logits, temperature: t } as never), 'ERR_INVALID_ARG', 'uniform');
    expectCode(() => sampleTokens({ logits, uniform: u } as never), 'ERR_INVALID_ARG', 'temperature');
    expectCode(() => sampleTokens({ logits, temperature: tensor(Float32Array.of(1, 1, 1), [3]), uniform: u }), 'ERR_SHAPE', 'temperature');
    expectCode(() => sampleTokens({ logits, temperature: t, uniform: u, topK: tensor(Float32Array.of(1, 1), [2]) }), 'ERR_DTYPE', 'topK');
    expectCode(() => sampleTokens({ logits: tensor(Int32Array.of(1, 2), [1, 2], { dtype: 'int32' }), temperature: t.slice(0, 0, 1), uniform: u.slice(0, 0, 1) }), 'ERR_DTYPE', 'logits');
    expectCode(() => sampleTokens({ logits: zeros([2, 0]), temperature: t, uniform: u }), 'ERR_SHAPE', 'logits');
  });
});
