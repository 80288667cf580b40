// The classical toolkit is CPU-only: CUDA tensors are refused with a clear ERR_DEVICE, and
// moving them to the CPU gives the same results.
import { it } from 'vitest';
import { classical, tensor } from '../../lib/index';
import { describeGpu, expectClose, expectCode, randnArray, values } from '../helpers';

describeGpu('classical with CUDA tensors', () => {
  it('refuses CUDA inputs with ERR_DEVICE naming the argument', () => {
    const A = tensor([-0.5], [1, 1], { device: 'cuda' });
    const B = tensor([1], [1, 1], { device: 'cuda' });
    expectCode(() => classical.discretize({ A, B, dt: 0.1 }), 'ERR_DEVICE', 'A', 'cpu');
    const u = tensor(Float32Array.from(randnArray(8)), [1, 1, 8], { device: 'cuda' });
    expectCode(() => classical.convolve(u, tensor([1], [1, 1])), 'ERR_DEVICE', 'u');
  });

  it('works on tensors moved back to the CPU', async () => {
    const x = Float32Array.from(randnArray(2 * 3 * 40));
    const u = tensor(x, [2, 3, 40], { device: 'cuda' }).to('cpu');
    const K = tensor(Float32Array.from(randnArray(3 * 40)), [3, 40]);
    const direct = await values(classical.convolve(tensor(x, [2, 3, 40]), K));
    expectClose(await values(classical.convolve(u, K)), direct, 1e-6);
  });
});
