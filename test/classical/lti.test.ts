import { describe, expect, it } from 'vitest';
import { classical, tensor } from '../../lib/index';
import { expectClose, expectCode, expectNoNaN, randnArray, rng, values } from '../helpers';
import { convolveRef, kernelRef, simulateRef } from '../reference/classical';

const f64 = (x: ArrayLike<number>, shape: number[]) => tensor(Float64Array.from(x), shape);
const f32 = (x: ArrayLike<number>, shape: number[]) => tensor(Float32Array.from(x), shape);

/** A random stable system (spectral radius < 1 after scaling). */
function system(n: number, m: number, p: number, r: () => number) {
  const A = randnArray(n * n, r, 0.9 / Math.sqrt(n) / 1.5);
  return { A, B: randnArray(n * m, r), C: randnArray(p * n, r), D: randnArray(p * m, r) };
}

describe('classical.simulate', () => {
  it('matches the float64 recurrence (batch, MIMO, x0, D), float64 and float32', async () => {
    const r = rng();
    const [batch, n, m, p, L] = [3, 5, 2, 3, 37];
    const s = system(n, m, p, r);
    const u = randnArray(batch * m * L, r), x0 = randnArray(batch * n, r);
    const ref = simulateRef(s.A, s.B, s.C, s.D, u, x0, batch, n, m, p, L);
    for (const [mk, tol] of [[f64, 1e-12], [f32, 1e-5]] as const) {
      const out = classical.simulate({ A: mk(s.A, [n, n]), B: mk(s.B, [n, m]), C: mk(s.C, [p, n]), D: mk(s.D, [p, m]), u: mk(u, [batch, m, L]), x0: mk(x0, [batch, n]) });
      expect(out.y.shape).toEqual([batch, p, L]);
      expect(out.state.shape).toEqual([batch, n]);
      const y = await values(out.y);
      expectNoNaN(y, 'y');
      expectClose(y, ref.y, tol, 'y');
      expectClose(await values(out.state), ref.state, tol, 'state');
    }
  });

  it('without D and x0 starts from rest', async () => {
    const r = rng();
    const [n, L] = [3, 11];
    const s = system(n, 1, 1, r);
    const u = randnArray(L, r);
    const out = classical.simulate({ A: f64(s.A, [n, n]), B: f64(s.B, [n, 1]), C: f64(s.C, [1, n]), u: f64(u, [1, 1, L]) });
    expectClose(await values(out.y), simulateRef(s.A, s.B, s.C, null, u, null, 1, n, 1, 1, L).y, 1e-12);
  });

  it('rejects mismatched shapes and devices', () => {
    const A = f64([0.5, 0, 0, 0.5], [2, 2]), B = f64([1, 1], [2, 1]), C = f64([1, 1], [1, 2]);
    expectCode(() => classical.simulate({ A, B, C, u: f64([1, 2, 3, 4], [1, 2, 2]) }), 'ERR_SHAPE', 'u', 'm = 1');
    expectCode(() => classical.simulate({ A, B, C: f64([1, 1, 1], [1, 3]), u: f64([1], [1, 1, 1]) }), 'ERR_SHAPE', 'C');
    expectCode(() => classical.simulate({ A, B, C, D: f64([1, 1], [1, 2]), u: f64([1], [1, 1, 1]) }), 'ERR_SHAPE', 'D', '(p, m)');
    expectCode(() => classical.simulate({ A, B, C, u: f64([1], [1, 1, 1]), x0: f64([1], [1, 1]) }), 'ERR_SHAPE', 'x0');
    expectCode(() => classical.simulate({ A, B, C, u: f32([1], [1, 1, 1]) }), 'ERR_DTYPE', 'u', 'float64');
    expectCode(() => classical.simulate({ A, B, C } as never), 'ERR_INVALID_ARG', 'u');
  });
});

describe('classical.kernel', () => {
  it('is (CB, CAB, …, CA^{L−1}B) for MIMO systems', async () => {
    const r = rng();
    const [n, m, p, L] = [4, 3, 2, 23];
    const s = system(n, m, p, r);
    const K = classical.kernel({ A: f64(s.A, [n, n]), B: f64(s.B, [n, m]), C: f64(s.C, [p, n]), L });
    expect(K.shape).toEqual([p, m, L]);
    expectClose(await values(K), kernelRef(s.A, s.B, s.C, n, m, p, L), 1e-12);
    const K32 = classical.kernel({ A: f32(s.A, [n, n]), B: f32(s.B, [n, m]), C: f32(s.C, [p, n]), L });
    expectClose(await values(K32), kernelRef(s.A, s.B, s.C, n, m, p, L), 1e-6);
  });

  it('rejects L < 1', () => {
    const A = f64([0.5], [1, 1]);
    expectCode(() => classical.kernel({ A, B: A, C: A, L: 0 }), 'ERR_SHAPE', 'L');
  });
});

describe('classical.convolve', () => {
  it('depthwise FFT convolution equals the direct sum (odd lengths, short and long kernels)', async () => {
    const r = rng();
    for (const [batch, h, L, Lk] of [[2, 3, 1, 1], [2, 3, 37, 37], [1, 4, 100, 13], [2, 2, 33, 70], [1, 1, 1000, 1000]]) {
      const u = randnArray(batch * h * L, r), K = randnArray(h * Lk, r), D = randnArray(h, r);
      const want = convolveRef(u, K, D, batch, h, h, L, Lk, false);
      const y = classical.convolve(f64(u, [batch, h, L]), f64(K, [h, Lk]), { D: f64(D, [h]) });
      expect(y.shape).toEqual([batch, h, L]);
      expectClose(await values(y), want, 1e-12, `f64 ${[batch, h, L, Lk]}`);
      const y32 = classical.convolve(f32(u, [batch, h, L]), f32(K, [h, Lk]), { D: f32(D, [h]) });
      expectClose(await values(y32), want, 1e-5, `f32 ${[batch, h, L, Lk]}`);
    }
  });

  it('MIMO convolution with the (p, m, L) kernel of a system', async () => {
    const r = rng();
    const [batch, m, p, L, Lk] = [2, 3, 2, 45, 31];
    const u = randnArray(batch * m * L, r), K = randnArray(p * m * Lk, r), D = randnArray(p * m, r);
    const y = classical.convolve(f64(u, [batch, m, L]), f64(K, [p, m, Lk]), { D: f64(D, [p, m]) });
    expect(y.shape).toEqual([batch, p, L]);
    expectClose(await values(y), convolveRef(u, K, D, batch, m, p, L, Lk, true), 1e-12);
  });

  it('simulate equals convolve(kernel) (the two views of one LTI system)', async () => {
    const r = rng();
    const [batch, n, m, p, L] = [2, 6, 2, 3, 300];
    const s = system(n, m, p, r);
    const sys = { A: f64(s.A, [n, n]), B: f64(s.B, [n, m]), C: f64(s.C, [p, n]), D: f64(s.D, [p, m]) };
    const u = f64(randnArray(batch * m * L, r), [batch, m, L]);
    const rec = await values(classical.simulate({ ...sys, u }).y);
    const conv = await values(classical.convolve(u, classical.kernel({ ...sys, L }), { D: sys.D }));
    expectClose(conv, rec, 1e-11);
  });

  it('rejects bad kernels', () => {
    const u = f64([1, 2, 3], [1, 1, 3]);
    expectCode(() => classical.convolve(u, f64([1], [1])), 'ERR_SHAPE', 'K');
    expectCode(() => classical.convolve(u, f64([1, 2], [2, 1])), 'ERR_SHAPE', 'u', 'channels = 2');
    expectCode(() => classical.convolve(u, f64([1], [1, 1]), { D: f64([1, 2], [2]) }), 'ERR_SHAPE', 'D');
    expectCode(() => classical.convolve(f64([1, 2], [2]), f64([1], [1, 1])), 'ERR_SHAPE', 'u');
  });
});
