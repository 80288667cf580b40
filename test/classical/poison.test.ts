// With poisoning on, fresh outputs start as NaN: every op must write every element.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { classical, debugPoison, tensor } from '../../lib/index';
import { expectNoNaN, randnArray, rng, values } from '../helpers';

const f32 = (x: ArrayLike<number>, shape: number[]) => tensor(Float32Array.from(x), shape);

describe('classical ops write every output element', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));

  it('all ops, odd sizes, float32', async () => {
    const r = rng();
    const [n, m, p, L, batch] = [5, 3, 2, 67, 3];
    const A = f32(randnArray(n * n, r, 0.3), [n, n]), B = f32(randnArray(n * m, r), [n, m]), C = f32(randnArray(p * n, r), [p, n]);
    const u = f32(randnArray(batch * m * L, r), [batch, m, L]);
    const lam = f32(Array.from({ length: 2 * n }, (_, i) => (i % 2 ? 3 * r() : -0.1 - r())), [n, 2]);
    const cplx = f32(randnArray(2 * n, r), [n, 2]);
    const outs = [
      ...Object.values(classical.discretize({ A, B, dt: 0.1 })),
      ...Object.values(classical.discretize({ A: lam, B: f32(randnArray(n, r), [n, 1]), dt: 0.1, complex: true })),
      ...Object.values(classical.hippo('fourier', 6)),
      ...Object.values(classical.nplr('legs', 7)),
      ...Object.values(classical.s4dInit('legs', 3)),
      ...Object.values(classical.simulate({ A, B, C, u })),
      classical.kernel({ A, B, C, L }),
      classical.convolve(u, classical.kernel({ A, B, C, L: 20 })),
      classical.convolve(f32(randnArray(2 * 3 * 31, r), [2, 3, 31]), f32(randnArray(3 * 31, r), [3, 31])),
      classical.s4dKernel({ Lambda: lam, C: cplx, dt: 0.1, L, method: 'bilinear' }),
      classical.s4Kernel({ Lambda: lam, P: cplx, B: cplx, C: cplx, dt: 0.1, L }),
      ...Object.values(
        classical.kalman.smooth({
          A: f32([0.9, 0.1, 0, 0.8], [2, 2]), C: f32([1, 0], [1, 2]), Q: f32([0.1, 0, 0, 0.1], [2, 2]), R: f32([0.5], [1, 1]),
          x0: f32([0, 0], [2]), P0: f32([1, 0, 0, 1], [2, 2]), z: f32(randnArray(3 * 9, r), [3, 9, 1]),
        }),
      ),
    ];
    for (const t of outs) if (t) expectNoNaN(await values(t), t.toString());
  });
});
