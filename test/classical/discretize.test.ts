import { describe, expect, it } from 'vitest';
import { classical, tensor } from '../../lib/index';
import { expectClose, expectCode, randnArray, rng, uniformArray, values } from '../helpers';
import { add, C, cdiv, cexp, cscale, csub, expmTaylor, eye, matmul, pairs, solve } from '../reference/classical';

const f64 = (x: ArrayLike<number>, shape: number[]) => tensor(Float64Array.from(x), shape);

describe('classical.discretize (dense)', () => {
  it('ZOH of a scalar a is e^{a dt}, B̄ = (e^{a dt} − 1)/a · b', async () => {
    const r = rng();
    for (let i = 0; i < 5; i++) {
      const a = -3 + 4 * r(), b = randnArray(1, r)[0], dt = 0.01 + r();
      for (const A of [f64([a], [1, 1]), f64([a], [1])]) {
        const d = classical.discretize({ A, B: f64([b], [1, 1]), dt });
        expect((await values(d.A))[0]).toBeCloseTo(Math.exp(a * dt), 13);
        expect((await values(d.B))[0]).toBeCloseTo(((Math.exp(a * dt) - 1) / a) * b, 13);
      }
    }
  });

  it('ZOH state matrix equals a float64 Taylor series of e^{A dt} for small random matrices', async () => {
    const r = rng();
    for (const n of [1, 2, 3, 5, 8]) {
      const A = randnArray(n * n, r), m = 2, B = randnArray(n * m, r), dt = 0.05 + 0.5 * r();
      const d = classical.discretize({ A: f64(A, [n, n]), B: f64(B, [n, m]), dt, method: 'zoh' });
      const want = expmTaylor(A.map((x) => x * dt), n);
      expectClose(await values(d.A), want, 1e-12, `Ā n=${n}`);
      // B̄ = Σ_k A^k dt^{k+1} / (k+1)! · B: the top-right block of the augmented exponential
      const aug = new Float64Array((n + m) ** 2);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) aug[i * (n + m) + j] = A[i * n + j] * dt;
        for (let j = 0; j < m; j++) aug[i * (n + m) + n + j] = B[i * m + j] * dt;
      }
      const E = expmTaylor(aug, n + m);
      const wantB = Float64Array.from({ length: n * m }, (_, k) => E[Math.floor(k / m) * (n + m) + n + (k % m)]);
      expectClose(await values(d.B), wantB, 1e-12, `B̄ n=${n}`);
    }
  });

  it('ZOH of a large-norm matrix (scaling and squaring) and of a rotation generator', async () => {
    const w = 1 + 10 * rng()(), dt = 0.3 + rng()();
    const d = classical.discretize({ A: f64([0, -w, w, 0], [2, 2]), B: f64([0, 1], [2, 1]), dt });
    const c = Math.cos(w * dt), s = Math.sin(w * dt);
    expectClose(await values(d.A), [c, -s, s, c], 1e-13, 'rotation');
    // B̄ = ∫₀^dt e^{As} ds B = [(cos − 1)/w, sin/w]
    expectClose(await values(d.B), [(c - 1) / w, s / w], 1e-12, 'rotation B̄');
    // ‖A dt‖ ≈ 40: e^{A dt} for A = S diag(λ) S⁻¹ is S diag(e^{λ dt}) S⁻¹
    const S = [2, 1, 1, 1], Sinv = [1, -1, -1, 2], lam = [-3, -40 * rng()() - 1];
    const A = matmul(matmul(Float64Array.from(S), Float64Array.from([lam[0], 0, 0, lam[1]]), 2, 2, 2), Float64Array.from(Sinv), 2, 2, 2);
    const want = matmul(matmul(Float64Array.from(S), Float64Array.from([Math.exp(lam[0]), 0, 0, Math.exp(lam[1])]), 2, 2, 2), Float64Array.from(Sinv), 2, 2, 2);
    const e = classical.discretize({ A: f64(A, [2, 2]), B: f64([1, 1], [2, 1]), dt: 1 });
    expectClose(await values(e.A), want, 1e-12, 'scaled');
  });

  it('bilinear, Euler and backward Euler match their formulas', async () => {
    const r = rng();
    const n = 4, m = 3, dt = 0.1 + 0.3 * r();
    const A = randnArray(n * n, r), B = randnArray(n * m, r);
    const I = eye(n);
    const As = A.map((x) => x * dt);
    const cases: Array<[string, Float64Array, Float64Array]> = [
      ['euler', add(I, As), B.map((x) => x * dt)],
      ['bilinear', solve(add(I, As, -0.5), add(I, As, 0.5), n, n), solve(add(I, As, -0.5), B.map((x) => x * dt), n, m)],
      ['backward-euler', solve(add(I, As, -1), I, n, n), solve(add(I, As, -1), B.map((x) => x * dt), n, m)],
    ];
    for (const [method, wantA, wantB] of cases) {
      const d = classical.discretize({ A: f64(A, [n, n]), B: f64(B, [n, m]), dt, method: method as 'euler' });
      expectClose(await values(d.A), wantA, 1e-12, `${method} Ā`);
      expectClose(await values(d.B), wantB, 1e-12, `${method} B̄`);
    }
  });

  it('passes C and D through and works in float32', async () => {
    const n = 3, r = rng();
    const A = randnArray(n * n, r), B = randnArray(n, r);
    const Ct = tensor(Float32Array.from(randnArray(n, r)), [1, n]);
    const d32 = classical.discretize({ A: tensor(Float32Array.from(A), [n, n]), B: tensor(Float32Array.from(B), [n, 1]), C: Ct, dt: 0.2 });
    expect(d32.C).toBe(Ct);
    expect(d32.A.dtype).toBe('float32');
    const d64 = classical.discretize({ A: f64(A, [n, n]), B: f64(B, [n, 1]), dt: 0.2 });
    expectClose(await values(d32.A), await values(d64.A), 1e-6);
  });
});

describe('classical.discretize (diagonal fast path)', () => {
  it('a real diagonal equals the dense path on diag(a), for every method', async () => {
    const r = rng();
    const n = 6, m = 2, dt = 0.05 + r();
    const a = uniformArray(n, -4, 0.5, r), B = randnArray(n * m, r);
    const Ad = new Float64Array(n * n);
    a.forEach((v, i) => (Ad[i * n + i] = v));
    for (const method of ['zoh', 'bilinear', 'euler', 'backward-euler'] as const) {
      const diag = classical.discretize({ A: f64(a, [n]), B: f64(B, [n, m]), dt, method });
      const full = classical.discretize({ A: f64(Ad, [n, n]), B: f64(B, [n, m]), dt, method });
      const fa = await values(full.A);
      expectClose(await values(diag.A), Array.from({ length: n }, (_, i) => fa[i * n + i]), 1e-13, `${method} Ā`);
      expectClose(await values(diag.B), await values(full.B), 1e-12, `${method} B̄`);
    }
  });

  it('tiny a·dt keeps B̄ accurate (expm1)', async () => {
    const d = classical.discretize({ A: f64([-1e-12], [1]), B: f64([1], [1, 1]), dt: 1 });
    expect((await values(d.B))[0]).toBeCloseTo(1 - 0.5e-12, 15);
    const z = classical.discretize({ A: f64([0], [1]), B: f64([2], [1, 1]), dt: 0.5 });
    expect((await values(z.B))[0]).toBe(1);
  });

  it('a complex diagonal: λ̄ = e^{λ dt}, B̄ = (e^{λ dt} − 1)/λ · b (ZOH) and the bilinear map', async () => {
    const r = rng();
    const n = 5, dt = 0.01 + 0.2 * r();
    const lam: C[] = Array.from({ length: n }, () => [-2 * r(), 10 * (r() - 0.5)] as C);
    const b: C[] = Array.from({ length: n }, () => [r() - 0.5, r() - 0.5] as C);
    const A = f64(lam.flat(), [n, 2]), B = f64(b.flat(), [n, 1, 2]);
    const zoh = classical.discretize({ A, B, dt, complex: true });
    expect(zoh.A.shape).toEqual([n, 2]);
    expect(zoh.B.shape).toEqual([n, 1, 2]);
    const wantA = lam.map((l) => cexp(cscale(l, dt)));
    const wantB = lam.map((l, i) => {
      const f = cdiv(csub(cexp(cscale(l, dt)), [1, 0]), l);
      return [f[0] * b[i][0] - f[1] * b[i][1], f[0] * b[i][1] + f[1] * b[i][0]];
    });
    expectClose(await values(zoh.A), wantA.flat(), 1e-13, 'λ̄');
    expectClose(await values(zoh.B), wantB.flat(), 1e-12, 'B̄');
    const bil = classical.discretize({ A, B: f64(b.map((x) => x[0]), [n, 1]), dt, complex: true, method: 'bilinear' });
    const got = pairs(await values(bil.A));
    lam.forEach((l, i) => {
      const want = cdiv([1 + (l[0] * dt) / 2, (l[1] * dt) / 2], [1 - (l[0] * dt) / 2, -(l[1] * dt) / 2]);
      expect(got[i][0]).toBeCloseTo(want[0], 13);
      expect(got[i][1]).toBeCloseTo(want[1], 13);
    });
  });
});

describe('classical.discretize errors', () => {
  it('names the argument and what was expected', () => {
    const A = f64([1, 2, 3, 4, 5, 6], [2, 3]);
    expectCode(() => classical.discretize({ A, B: f64([1, 1], [2, 1]), dt: 0.1 }), 'ERR_SHAPE', 'A', '(2, 3)');
    const Aok = f64([1, 0, 0, 1], [2, 2]);
    expectCode(() => classical.discretize({ A: Aok, B: f64([1, 1, 1], [3, 1]), dt: 0.1 }), 'ERR_SHAPE', 'B', '(3, 1)');
    expectCode(() => classical.discretize({ A: Aok, B: f64([1, 1], [2, 1]), dt: -1 }), 'ERR_INVALID_ARG', 'dt');
    expectCode(() => classical.discretize({ A: Aok, B: f64([1, 1], [2, 1]), dt: 0.1, method: 'rk4' as never }), 'ERR_INVALID_ARG', 'method', 'rk4');
    expectCode(() => classical.discretize({ A: Aok, B: tensor([1, 1], [2, 1]), dt: 0.1 }), 'ERR_DTYPE', 'B', 'float32');
    expectCode(() => classical.discretize({ A: tensor(new Int32Array(4), [2, 2]), B: tensor([1, 1], [2, 1]), dt: 0.1 }), 'ERR_DTYPE', 'A');
    expectCode(() => classical.discretize({ A: f64([1, 2, 3], [3]), B: f64([1, 1, 1], [3, 1]), dt: 0.1, complex: true }), 'ERR_SHAPE', 'A', '(n, 2)');
  });

  it('a singular implicit system rejects the read with ERR_NUMERIC', async () => {
    // I − dt·A is singular for A = I/dt (backward Euler)
    const d = classical.discretize({ A: f64([2, 0, 0, 2], [2, 2]), B: f64([1, 1], [2, 1]), dt: 0.5, method: 'backward-euler' });
    await expect(d.A.data()).rejects.toMatchObject({ code: 'ERR_NUMERIC' });
  });
});
