import { describe, expect, it } from 'vitest';
import { classical, tensor } from '../../lib/index';
import { expectClose, expectCode, expectNoNaN, randnArray, rng, values } from '../helpers';
import { C, cmatmul, CM, flat, kernelRef, pairs, s4dKernelRef, s4KernelRef } from '../reference/classical';

const f64 = (x: ArrayLike<number>, shape: number[]) => tensor(Float64Array.from(x), shape);
const f32 = (x: ArrayLike<number>, shape: number[]) => tensor(Float32Array.from(x), shape);

function modes(n: number, r: () => number, decay = 1): C[] {
  return Array.from({ length: n }, () => [-(0.05 + decay * r()), 8 * (r() - 0.5)] as C);
}
const cplx = (n: number, r: () => number): C[] => Array.from({ length: n }, () => [r() - 0.5, r() - 0.5] as C);

describe('classical.s4dKernel', () => {
  it('equals explicit powers C·Ā^k·B̄ (ZOH and bilinear, per-channel parameters and dt)', async () => {
    const r = rng();
    const [h, n, L] = [3, 5, 77];
    const lam = Array.from({ length: h }, () => modes(n, r));
    const B = Array.from({ length: h }, () => cplx(n, r));
    const Cc = Array.from({ length: h }, () => cplx(n, r));
    const dt = Array.from({ length: h }, () => 0.01 + 0.2 * r());
    for (const method of ['zoh', 'bilinear'] as const) {
      const K = classical.s4dKernel({
        Lambda: f64(flat(lam.flat()), [h, n, 2]),
        B: f64(flat(B.flat()), [h, n, 2]),
        C: f64(flat(Cc.flat()), [h, n, 2]),
        dt: f64(dt, [h]),
        L,
        method,
      });
      expect(K.shape).toEqual([h, L]);
      const want = new Float64Array(h * L);
      for (let c = 0; c < h; c++) want.set(s4dKernelRef(lam[c], B[c], Cc[c], dt[c], L, method), c * L);
      expectClose(await values(K), want, 1e-12, method);
    }
  });

  it('shared Λ with scalar dt, B defaulting to ones, conjugate doubling, float32', async () => {
    const r = rng();
    const [h, n, L] = [2, 4, 2000];
    const lam = modes(n, r, 0.01);
    const Cc = Array.from({ length: h }, () => cplx(n, r));
    const ones: C[] = Array.from({ length: n }, () => [1, 0]);
    const want = new Float64Array(h * L);
    for (let c = 0; c < h; c++) want.set(s4dKernelRef(lam, ones, Cc[c], 0.1, L, 'zoh').map((x) => 2 * x), c * L);
    const K = classical.s4dKernel({ Lambda: f64(flat(lam), [n, 2]), C: f64(flat(Cc.flat()), [h, n, 2]), dt: 0.1, L, conjugate: true });
    expectClose(await values(K), want, 1e-11, 'f64');
    const K32 = classical.s4dKernel({ Lambda: f32(flat(lam), [n, 2]), C: f32(flat(Cc.flat()), [h, n, 2]), dt: 0.1, L, conjugate: true });
    const k32 = await values(K32);
    expectNoNaN(k32);
    expectClose(k32, want, 1e-5, 'f32');
  });

  it('the S4D-Lin kernel of conjugate pairs equals the real system it stands for', async () => {
    // modes λ and their conjugates as a real 2n x 2n block-diagonal system, discretised densely
    const r = rng();
    const n = 3, L = 40, dt = 0.05;
    const init = classical.s4dInit('lin', n, { dtype: 'float64' });
    const lam = pairs(await values(init.Lambda));
    const Cc = cplx(n, r);
    const K = await values(classical.s4dKernel({ Lambda: init.Lambda, B: init.B, C: f64(flat(Cc), [n, 2]), dt, L, conjugate: true }));
    const N = 2 * n;
    const A = new Float64Array(N * N), Bm = new Float64Array(N), Cm = new Float64Array(N);
    lam.forEach(([a, w], i) => {
      A.set([a, -w], 2 * i * N + 2 * i);
      A.set([w, a], (2 * i + 1) * N + 2 * i);
      Bm[2 * i] = 2; // x = 2·Re(ξ), 2·Im(ξ) with ξ' = λ ξ + u
      Cm[2 * i] = Cc[i][0];
      Cm[2 * i + 1] = -Cc[i][1]; // Re(c ξ)·2 = c_re·x_re − c_im·x_im
    });
    const d = classical.discretize({ A: f64(A, [N, N]), B: f64(Bm, [N, 1]), dt });
    const want = kernelRef(await values(d.A), await values(d.B), Cm, N, 1, 1, L);
    expectClose(K, want, 1e-11);
  });
});

describe('classical.s4Kernel', () => {
  for (const L of [64, 51]) // radix-2 and Bluestein inverse DFTs
    it(`equals explicit powers of the bilinear DPLR system (L = ${L})`, async () => {
      const r = rng();
      const [h, n] = [2, 5];
      const lam = modes(n, r, 0.5);
      const P = cplx(n, r), B = cplx(n, r);
      const Cc = Array.from({ length: h }, () => cplx(n, r));
      const dt = [0.05 + 0.1 * r(), 0.05 + 0.1 * r()];
      const K = classical.s4Kernel({
        Lambda: f64(flat(lam), [n, 2]),
        P: f64(flat(P), [n, 2]),
        B: f64(flat(B), [n, 2]),
        C: f64(flat(Cc.flat()), [h, n, 2]),
        dt: f64(dt, [h]),
        L,
      });
      const want = new Float64Array(h * L);
      for (let c = 0; c < h; c++) want.set(s4KernelRef(lam, P, B, Cc[c], dt[c], L), c * L);
      const k = await values(K);
      expectNoNaN(k);
      expectClose(k, want, 1e-10);
      const K32 = classical.s4Kernel({
        Lambda: f32(flat(lam), [n, 2]),
        P: f32(flat(P), [n, 2]),
        B: f32(flat(B), [n, 2]),
        C: f32(flat(Cc.flat()), [h, n, 2]),
        dt: f32(dt, [h]),
        L,
      });
      expect(K32.dtype).toBe('float32');
      expectClose(await values(K32), want, 1e-5, 'float32');
    });

  it('with P = 0 reduces to the bilinear S4D kernel', async () => {
    const r = rng();
    const n = 6, L = 128;
    const lam = modes(n, r), B = cplx(n, r), Cc = cplx(n, r);
    const args = { Lambda: f64(flat(lam), [n, 2]), B: f64(flat(B), [n, 2]), C: f64(flat(Cc), [n, 2]), dt: 0.1, L };
    const s4 = await values(classical.s4Kernel({ ...args, P: f64(new Float64Array(2 * n), [n, 2]) }));
    const s4d = await values(classical.s4dKernel({ ...args, method: 'bilinear' }));
    expectClose(s4, s4d, 1e-11);
  });

  it('the NPLR form of HiPPO-LegS gives the kernel of the real bilinear HiPPO-LegS system', async () => {
    const r = rng();
    const N = 8, L = 100, dt = 0.02;
    const { A, B } = classical.hippo('legs', N, { dtype: 'float64' });
    const np = classical.nplr('legs', N, { dtype: 'float64' });
    const Creal = randnArray(N, r);
    const V = pairs(await values(np.V)) as CM;
    const Cmodes = cmatmul(Array.from(Creal, (x) => [x, 0] as C), V, 1, N, N); // C V
    const K = await values(classical.s4Kernel({ Lambda: np.Lambda, P: np.P, B: np.B, C: f64(flat(Cmodes), [N, 2]), dt, L }));
    const d = classical.discretize({ A, B, dt, method: 'bilinear' });
    const want = kernelRef(await values(d.A), await values(d.B), Creal, N, 1, 1, L);
    expectClose(K, want, 1e-9);
  });

  it('rejects inconsistent mode counts and channels', () => {
    const x = (n: number) => f64(new Float64Array(2 * n), [n, 2]);
    expectCode(() => classical.s4Kernel({ Lambda: x(3), P: x(4), B: x(3), C: x(3), dt: 0.1, L: 8 }), 'ERR_SHAPE', 'P', 'n = 3');
    expectCode(
      () => classical.s4dKernel({ Lambda: f64(new Float64Array(12), [2, 3, 2]), C: f64(new Float64Array(18), [3, 3, 2]), dt: 0.1, L: 8 }),
      'ERR_SHAPE', 'C', 'h = 2',
    );
    expectCode(() => classical.s4dKernel({ Lambda: f64([1, 2, 3], [3]), C: x(3), dt: 0.1, L: 8 }), 'ERR_SHAPE', 'Lambda', '(re, im)');
    expectCode(() => classical.s4dKernel({ Lambda: x(3), C: x(3), dt: 0, L: 8 }), 'ERR_INVALID_ARG', 'dt');
    expectCode(() => classical.s4dKernel({ Lambda: x(3), C: x(3), dt: 0.1, L: 8, method: 'euler' as never }), 'ERR_INVALID_ARG', 'method');
  });
});
