import { beforeAll, afterAll, expect, it } from 'vitest';
import { debugPoison, sampleTokens, tensor } from '../../lib/index';
import { checkArgmax } from '../argmax_cases';
import { defineSampleTests } from '../sample_cases';
import { describeGpu, rng } from '../helpers';

describeGpu('argmax on CUDA', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    it(`${dtype}: first largest value of each row, NaN largest, against the reference`, async () => {
      await checkArgmax('cuda', dtype);
    });
  }
});

describeGpu('sampleTokens on CUDA', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));
  defineSampleTests('cuda', ['float32', 'float16', 'bfloat16']);
  it('CUDA and CPU choose the same tokens (but where a uniform falls within a rounding of a boundary)', async () => {
    const r = rng();
    const R = 64, n = 50280;
    const v = Float32Array.from({ length: R * n }, () => Math.round((r() * 2 - 1) * 512) / 64);
    const ps = {
      temperature: Float32Array.from({ length: R }, (_, i) => [0.5, 0.8, 1, 1.2][i % 4]),
      topK: Int32Array.from({ length: R }, (_, i) => [0, 50, 1000][i % 3]),
      topP: Float32Array.from({ length: R }, (_, i) => [1, 0.9, 0.95][i % 3]),
      uniform: Float32Array.from({ length: R }, () => r()),
    };
    const on = (device: 'cpu' | 'cuda') =>
      sampleTokens({
        logits: tensor(v, [R, n], { device }),
        temperature: tensor(ps.temperature, [R], { device }),
        topK: tensor(ps.topK, [R], { dtype: 'int32', device }),
        topP: tensor(ps.topP, [R], { device }),
        uniform: tensor(ps.uniform, [R], { device }),
      }).data();
    const [gpu, cpu] = [await on('cuda'), await on('cpu')];
    let same = 0;
    for (let i = 0; i < R; i++) same += gpu[i] === cpu[i] ? 1 : 0;
    expect(same, `${same} of ${R} rows agree`).toBeGreaterThanOrEqual(R - 2);
  });
});
