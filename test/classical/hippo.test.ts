import { describe, expect, it } from 'vitest';
import { classical } from '../../lib/index';
import { expectClose, expectCode, rng, values } from '../helpers';
import { C, cconj, cmatmul, CM, cmul, csub, pairs } from '../reference/classical';

const dense = async (t: { data(): Promise<unknown> }) => Float64Array.from((await t.data()) as Float64Array);

describe('classical.hippo', () => {
  it('LegS has the analytic entries', async () => {
    const N = 5 + Math.floor(rng()() * 20);
    const { A, B } = classical.hippo('legs', N, { dtype: 'float64' });
    expect(A.shape).toEqual([N, N]);
    expect(B.shape).toEqual([N, 1]);
    const a = await values(A), b = await values(B);
    for (let n = 0; n < N; n++) {
      expect(b[n]).toBeCloseTo(Math.sqrt(2 * n + 1), 12);
      for (let k = 0; k < N; k++) {
        const want = n > k ? -Math.sqrt((2 * n + 1) * (2 * k + 1)) : n === k ? -(n + 1) : 0;
        expect(a[n * N + k]).toBeCloseTo(want, 12);
      }
    }
  });

  it('LegT, LagT follow their closed forms; FouT + B Bᵀ is skew-symmetric', async () => {
    const N = 8;
    const legt = await values(classical.hippo('legt', N, { dtype: 'float64' }).A);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < N; k++) {
        const sign = n < k && (k - n) % 2 ? -1 : 1;
        expect(legt[n * N + k]).toBeCloseTo(-Math.sqrt((2 * n + 1) * (2 * k + 1)) * sign, 12);
      }
    const lagt = await values(classical.hippo('lagt', N, { dtype: 'float64' }).A);
    for (let n = 0; n < N; n++) for (let k = 0; k < N; k++) expect(lagt[n * N + k]).toBe(n > k ? -1 : n === k ? -0.5 : 0);
    const f = classical.hippo('fourier', N, { dtype: 'float64' });
    const fa = await values(f.A), fb = await values(f.B);
    expect(Array.from(fb)).toEqual([1, 0, Math.SQRT2, 0, Math.SQRT2, 0, Math.SQRT2, 0]);
    for (let i = 0; i < N; i++)
      for (let j = 0; j < N; j++) {
        const s = fa[i * N + j] + fb[i] * fb[j], t = fa[j * N + i] + fb[j] * fb[i];
        expect(s + t).toBeCloseTo(0, 12);
      }
    expect(fa[2 * N + 1] + fb[2] * fb[1]).toBeCloseTo(Math.PI, 12); // frequency π on the first (cos, sin) pair
  });

  it('float32 matches float64', async () => {
    const a32 = await values(classical.hippo('legs', 9).A);
    const a64 = await values(classical.hippo('legs', 9, { dtype: 'float64' }).A);
    expectClose(a32, a64, 1e-7);
  });

  it('rejects bad kinds and sizes with coded errors', () => {
    expectCode(() => classical.hippo('legx' as never, 4), 'ERR_INVALID_ARG', 'kind', 'legx');
    expectCode(() => classical.hippo('legs', 0), 'ERR_SHAPE', 'N');
    expectCode(() => classical.hippo('fourier', 5), 'ERR_SHAPE', 'even');
    expectCode(() => classical.hippo('legs', 4, { dtype: 'int32' }), 'ERR_DTYPE', 'dtype');
    expectCode(() => classical.hippo('legs', 2.5), 'ERR_INVALID_ARG', 'N');
  });
});

/** V (Λ − P Pᴴ) Vᴴ as an n x n complex matrix. */
function reconstruct(lambda: C[], P: C[], V: CM, n: number): CM {
  const mid: CM = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) mid.push(csub(i === j ? lambda[i] : [0, 0], cmul(P[i], cconj(P[j]))));
  const Vh: CM = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Vh.push(cconj(V[j * n + i]));
  return cmatmul(cmatmul(V, mid, n, n, n), Vh, n, n, n);
}

describe('classical.nplr', () => {
  for (const kind of ['legs', 'fourier'] as const)
    it(`reconstructs HiPPO-${kind}: A = V(Λ − P Pᴴ)Vᴴ, B = V B̃, V unitary`, async () => {
      const N = kind === 'fourier' ? 2 * (3 + Math.floor(rng()() * 20)) : 5 + Math.floor(rng()() * 56);
      const { A, B } = classical.hippo(kind, N, { dtype: 'float64' });
      const r = classical.nplr(kind, N, { dtype: 'float64' });
      expect(r.V.shape).toEqual([N, N, 2]);
      const lambda = pairs(await dense(r.Lambda)), P = pairs(await dense(r.P)), Bt = pairs(await dense(r.B));
      const V = pairs(await dense(r.V));
      const rec = reconstruct(lambda, P, V, N);
      const a = await values(A);
      expectClose(rec.flat(), Array.from(a, (x) => [x, 0]).flat(), 1e-11, 'A');
      const VB = cmatmul(V, Bt, N, N, 1);
      expectClose(VB.flat(), Array.from(await values(B), (x) => [x, 0]).flat(), 1e-11, 'B');
      const Vh: CM = [];
      for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) Vh.push(cconj(V[j * N + i]));
      const I = cmatmul(Vh, V, N, N, N);
      for (let i = 0; i < N; i++)
        for (let j = 0; j < N; j++) {
          expect(I[i * N + j][0]).toBeCloseTo(i === j ? 1 : 0, 10);
          expect(I[i * N + j][1]).toBeCloseTo(0, 10);
        }
      // the normal part is c·I + skew: every eigenvalue shares one real part (−1/2 for LegS, 0 for FouT)
      for (const l of lambda) expect(l[0]).toBeCloseTo(kind === 'legs' ? -0.5 : 0, 10);
      for (let i = 1; i < N; i++) expect(lambda[i][1]).toBeLessThanOrEqual(lambda[i - 1][1] + 1e-12);
    });

  it('rejects measures without a rank-1 NPLR form', () => {
    expectCode(() => classical.nplr('lagt' as never, 4), 'ERR_INVALID_ARG', 'nplr');
  });
});

describe('classical.s4dInit', () => {
  it("'legs' keeps the positive-frequency half of the 2N LegS spectrum", async () => {
    const N = 3 + Math.floor(rng()() * 10);
    const s = classical.s4dInit('legs', N, { dtype: 'float64' });
    const full = pairs(await dense(classical.nplr('legs', 2 * N, { dtype: 'float64' }).Lambda));
    const half = pairs(await dense(s.Lambda));
    expect(half.length).toBe(N);
    for (let i = 0; i < N; i++) {
      expect(half[i][0]).toBeCloseTo(-0.5, 10);
      expect(half[i][1]).toBeGreaterThan(0);
      expect(half[i][1]).toBeCloseTo(full[i][1], 9);
      // conjugate partner present in the full spectrum
      expect(full.some((l) => Math.abs(l[1] + half[i][1]) < 1e-8)).toBe(true);
    }
    // Σ |B̃|² over both halves = Σ B_n² = N'² (unitary V); the kept half carries exactly half of it.
    const bt = pairs(await dense(s.B));
    const energy = bt.reduce((a, b) => a + b[0] ** 2 + b[1] ** 2, 0);
    expect(energy).toBeCloseTo((2 * N) ** 2 / 2, 8);
  });

  it("'lin', 'inv', 'real' follow their formulas", async () => {
    const N = 7;
    const lin = pairs(await dense(classical.s4dInit('lin', N, { dtype: 'float64' }).Lambda));
    const inv = pairs(await dense(classical.s4dInit('inv', N, { dtype: 'float64' }).Lambda));
    const real = classical.s4dInit('real', N, { dtype: 'float64' });
    const re = pairs(await dense(real.Lambda));
    const b = pairs(await dense(real.B));
    for (let n = 0; n < N; n++) {
      expect(lin[n]).toEqual([-0.5, Math.PI * n]);
      expect(inv[n][0]).toBe(-0.5);
      expect(inv[n][1]).toBeCloseTo(((2 * N) / Math.PI) * ((2 * N) / (2 * n + 1) - 1), 10);
      expect(re[n]).toEqual([-(n + 1), 0]);
      expect(b[n]).toEqual([1, 0]);
    }
  });

  it('rejects unknown kinds', () => {
    expectCode(() => classical.s4dInit('foo' as never, 4), 'ERR_INVALID_ARG', 'kind');
  });
});
