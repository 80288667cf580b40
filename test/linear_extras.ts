/**
 * linear's decode extras (normWeight/normGate: the RMSNorm before a projection; residual: the
 * residual add after it) against the float64 reference rmsNorm → linear → add, on the CPU (the
 * ops run in turn) and on CUDA (one row: the matrix-vector kernel's on-the-fly norm and epilogue).
 */
import { expect } from 'vitest';
import { DType, Device, Tensor, argmax, causalConv1dUpdate, linear, linearConvUpdate, tensor, zeros } from '../lib/index';
import { relErr, rng } from './helpers';
import { randnInput } from './model_inputs';
import { linearRef, rmsNormRef } from './reference/dense';

export interface ExtrasCase {
  M: number;
  N: number;
  K: number;
  /** Weight dtype; x is float32 unless gated or xInWeightDtype (then x, and the gate, are in the weight's dtype). */
  dtype: DType;
  gate?: boolean;
  xInWeightDtype?: boolean;
  residual?: boolean;
  bias?: boolean;
  /** Ask for CUDA's weight-streaming kernel (linear's streamWeights). */
  stream?: boolean;
}

export async function checkLinearExtras(device: Device, cases: ExtrasCase[], tol: number): Promise<void> {
  const r = rng();
  for (const c of cases) {
    const { M, N, K, dtype } = c;
    const xDtype: DType = c.gate || c.xInWeightDtype ? dtype : 'float32';
    const x = randnInput([M, K], xDtype, device, 1, r);
    const gate = c.gate ? randnInput([M, K], dtype, device, 1, r) : undefined;
    const nw = randnInput([K], dtype, device, 1, r);
    const w = randnInput([N, K], dtype, device, 1 / Math.sqrt(K), r);
    const b = c.bias ? randnInput([N], 'float32', device, 1, r) : undefined;
    const res = c.residual ? randnInput([M, N], 'float32', device, 1, r) : undefined;
    const eps = 1e-5;
    const xn = rmsNormRef(x.v, nw.v, K, eps, { z: gate?.v }).y;
    const want = linearRef(xn, w.v, M, N, K, b?.v);
    if (res) for (let i = 0; i < want.length; i++) want[i] += res.v[i];
    const y = linear({ x: x.t, weight: w.t, bias: b?.t, normWeight: nw.t, normGate: gate?.t, normEps: eps, residual: res?.t, streamWeights: c.stream });
    expect(y.dtype).toBe(res ? 'float32' : dtype);
    expect(y.shape).toEqual([M, N]);
    const what = `${device} ${dtype} x ${xDtype} ${M}x${N}x${K}${c.gate ? ' gated' : ''}${c.residual ? ' +residual' : ''}${c.bias ? ' +bias' : ''}${c.stream ? ' streamed' : ''}`;
    const got = await y.data();
    expect(got.every(Number.isFinite), `${what}: finite`).toBe(true);
    expect(relErr(got, want), what).toBeLessThan(tol);
    // the residual add alone, without a norm
    if (res && !c.gate) {
      const xw = randnInput([M, K], dtype, device, 1, r);
      const plain = linear({ x: xw.t, weight: w.t, bias: b?.t, residual: res.t, streamWeights: c.stream });
      const p = linearRef(xw.v, w.v, M, N, K, b?.v).map((v, i) => v + res.v[i]);
      expect(relErr(await plain.data(), p), `${what}: residual only`).toBeLessThan(tol);
    }
  }
}

/** linearConvUpdate with a norm: its conv columns equal causalConv1dUpdate of linear's (normed) product. */
export async function checkNormedLinearConv(device: Device, dtype: DType, tol: number, stream = false): Promise<void> {
  const r = rng();
  for (const [M, K, N, lo, C] of [
    [1, 256, 100, 10, 40],
    [1, 40, 77, 0, 77],
    [2, 64, 90, 20, 50],
    [1, 1024, 4400, 1000, 2100], // 16-bit weights over 8 MB
  ]) {
    const x = randnInput([M, K], 'float32', device, 1, r).t;
    const nw = randnInput([K], dtype, device, 1, r).t;
    const w = randnInput([N, K], dtype, device, 1 / Math.sqrt(K), r).t;
    const cw = randnInput([C, 4], dtype, device, 1, r).t;
    const s0 = randnInput([M, C, 3], dtype, device, 1, r).t;
    const s1 = s0.clone(), s2 = s0.clone();
    const fused = await linearConvUpdate({ x, weight: w, normWeight: nw, convState: s1, convWeight: cw, convStart: lo, activation: 'silu', streamWeights: stream }).data();
    const plain = linear({ x, weight: w, normWeight: nw });
    const conv = await causalConv1dUpdate({ x: plain.slice(1, lo, lo + C), convState: s2, weight: cw, activation: 'silu' }).data();
    const want = Float64Array.from(await plain.data());
    for (let m = 0; m < M; m++) for (let j = 0; j < C; j++) want[m * N + lo + j] = conv[m * C + j];
    const what = `${device} ${dtype} linearConvUpdate+norm ${M}x${N}x${K}`;
    expect(relErr(fused, want), what).toBeLessThan(tol);
    expect(relErr(await s1.data(), await s2.data()), `${what}: conv state`).toBeLessThan(tol);
  }
}

/**
 * linearConvUpdate's restOnSide (CUDA, one row: the larger column range outside the conv's on a
 * second stream, left running) against the plain op: read back at once (a host read joins the
 * stream), and read on the device by a linear with normGate (which joins it first). Layouts: the
 * conv columns first (the rest after them), Mamba-2's (z first, then the conv's xBC, then dt),
 * and equal ranges on both sides; the large one is slow enough that a missing join would read the
 * poisoned (NaN) output.
 */
export async function checkRestOnSide(device: Device, dtype: DType, tol: number, large = true): Promise<void> {
  const r = rng();
  const shapes = [
    [256, 100, 0, 50],
    [64, 90, 20, 50],
    [2560, 10576, 5120, 5376], // mamba2-2.7b's in_proj: the side takes z = [0, 5120)
  ];
  for (const [K, N, lo, C] of large ? shapes : shapes.slice(0, 2)) {
    const x = randnInput([1, K], 'float32', device, 1, r).t;
    const nw = randnInput([K], dtype, device, 1, r).t;
    const w = randnInput([N, K], dtype, device, 1 / Math.sqrt(K), r).t;
    const cw = randnInput([C, 4], dtype, device, 1, r).t;
    const s0 = randnInput([1, C, 3], dtype, device, 1, r).t;
    const [s0n, s1n] = lo >= N - lo - C ? [0, lo] : [lo + C, N]; // the side's columns
    const v = randnInput([1, s1n - s0n], dtype, device, 1, r).t;
    const gw = randnInput([s1n - s0n], dtype, device, 1, r).t;
    const w2 = randnInput([33, s1n - s0n], dtype, device, 1 / Math.sqrt(s1n - s0n), r).t;
    const args = { x, weight: w, normWeight: nw, convWeight: cw, convStart: lo, activation: 'silu' as const };
    const sp = s0.clone(), ss = s0.clone();
    const plain = linearConvUpdate({ ...args, convState: sp });
    const side = linearConvUpdate({ ...args, convState: ss, restOnSide: true });
    const what = `${device} ${dtype} restOnSide ${N}x${K} conv [${lo}, ${lo + C})`;
    const gated = (out: Tensor) => linear({ x: v, weight: w2, normWeight: gw, normGate: out.slice(1, s0n, s1n) });
    const want = await gated(plain).data();
    expect(relErr(await gated(side).data(), want), `${what}: gated linear`).toBeLessThan(tol);
    expect(relErr(await side.data(), await plain.data()), what).toBeLessThan(tol);
    expect(relErr(await ss.data(), await sp.data()), `${what}: conv state`).toBeLessThan(tol);
    // read back with nothing on the device joining first
    const again = linearConvUpdate({ ...args, convState: s0.clone(), restOnSide: true });
    expect(relErr(await again.data(), await linearConvUpdate({ ...args, convState: s0.clone() }).data()), `${what}: host read`).toBeLessThan(tol);
  }
}

/**
 * linear's argmaxOut against argmax() of the result it returns: random rows, a row with the
 * largest value in two columns (the first wins) and a row with NaN (the first NaN wins), each
 * twice in a row (the CUDA kernel's cross-block state must be reset after every launch).
 */
export async function checkLinearArgmax(device: Device, dtype: DType, shapes: Array<[number, number]>, norm: boolean, stream = false): Promise<void> {
  const r = rng();
  for (const [N, K] of shapes) {
    const x = randnInput([1, K], norm ? 'float32' : dtype, device, 1, r).t;
    const nw = norm ? randnInput([K], dtype, device, 1, r).t : undefined;
    const wv = randnInput([N, K], dtype, 'cpu', 1 / Math.sqrt(K), r).v;
    const dup = Math.floor(N / 2);
    const variants: Array<[string, Float64Array]> = [['random', wv]];
    // column dup and column N-1 both largest: x·w large for w = 10·x-ish? use a copy of the best row
    variants.push(['tie', Float64Array.from(wv)]);
    variants.push(['nan', Float64Array.from(wv)]);
    for (const [what, vals] of variants) {
      if (what === 'nan') {
        vals[(N - 2) * K] = NaN;
        vals[(N - 1) * K] = NaN;
      }
      const w0 = tensor(vals, [N, K], { dtype, device });
      let w = w0;
      if (what === 'tie') {
        // make columns dup and N-1 equal to the current best column, so three columns tie at the max
        const y0 = await linear({ x, weight: w0, normWeight: nw }).data();
        let best = 0;
        for (let i = 1; i < N; i++) if (y0[i] > y0[best]) best = i;
        for (const c of [dup, N - 1]) for (let k = 0; k < K; k++) vals[c * K + k] = vals[best * K + k] * 1;
        w = tensor(vals, [N, K], { dtype, device });
      }
      for (let rep = 0; rep < 2; rep++) {
        const out = zeros([1], { dtype: 'int32', device });
        const y = linear({ x, weight: w, normWeight: nw, argmaxOut: out, streamWeights: stream });
        const want = (await argmax(y).data())[0];
        expect((await out.data())[0], `${device} ${dtype} ${N}x${K} ${what}${norm ? ' norm' : ''} (launch ${rep})`).toBe(want);
        if (what === 'nan') expect(want).toBe(N - 2);
      }
    }
  }
}
