/**
 * The decode-step ops read strided views of wider projections in place (x, z, dt, B, C of
 * selectiveStateUpdate, x of causalConv1dUpdate, z of gatedRmsNorm, x of linear): each must give
 * exactly what it gives on contiguous copies of the same views. Shared by the CPU and CUDA tests.
 */
import { expect } from 'vitest';
import { DType, Device, Tensor, captureGraph, causalConv1dUpdate, copyInto, gatedRmsNorm, linear, linearConvUpdate, linearConvUpdateProj, rand, randn, selectiveStateUpdate } from '../lib/index';
import { relErr } from './helpers';

async function same(a: Tensor, b: Tensor, what: string) {
  expect(Array.from(await a.data()), what).toEqual(Array.from(await b.data()));
}

export async function checkDecodeViews(device: Device, dtype: DType): Promise<void> {
  for (const batch of [1, 3, 6]) {
    // Mamba-1: [x | z] from in_proj, [dt | B | C] from x_proj (dt rank 5, dstate 16)
    const I = 40, N = 16, R = 8;
    const xz = randn([batch, 2 * I], { dtype, device });
    const dbc = randn([batch, R + 2 * N], { dtype, device });
    const A = rand([I, N], { device, low: -3, high: -0.1 });
    const D = randn([I], { device });
    const bias = randn([I], { device });
    const state0 = randn([batch, I, N], { device });
    const convState0 = randn([batch, I, 3], { dtype, device });
    const convW = randn([I, 4], { dtype, device });
    const views = { x: xz.slice(1, 0, I), z: xz.slice(1, I, 2 * I), B: dbc.slice(1, R, R + N), C: dbc.slice(1, R + N, R + 2 * N) };
    const dtW = randn([I, R], { dtype, device });
    const dtr = dbc.slice(1, 0, R);
    const run = async (contig: boolean) => {
      const v = (t: Tensor) => (contig ? t.contiguous() : t);
      const state = state0.clone();
      const conv = convState0.clone();
      const u = causalConv1dUpdate({ x: v(views.x), convState: conv, weight: convW, activation: 'silu' });
      const dt = linear({ x: v(dtr), weight: dtW });
      const y = selectiveStateUpdate({ state, x: u, dt, A, B: v(views.B), C: v(views.C), D, z: v(views.z), dtBias: bias, dtSoftplus: true });
      return { state, conv, u, dt, y };
    };
    const a = await run(false), b = await run(true);
    for (const k of ['state', 'conv', 'u', 'dt', 'y'] as const) await same(a[k], b[k], `mamba1 batch ${batch} ${k}`);
    // Mamba-2: [z | xBC | dt] from in_proj (heads 4, headdim 8, groups 2, dstate 16)
    const H = 4, P = 8, G = 2, I2 = H * P, cd = I2 + 2 * G * N;
    // (4 unused columns at the end keep the row stride a multiple of 16 bytes, so the views and
    // their copies take the same vectorised kernels)
    const proj = randn([batch, I2 + cd + H + 4], { dtype, device });
    const st2 = randn([batch, H, P, N], { device });
    const conv2 = randn([batch, cd, 3], { dtype, device });
    const w2 = randn([cd, 4], { dtype, device });
    const A2 = rand([H], { device, low: -3, high: -0.1 });
    const normW = randn([I2], { dtype, device });
    const run2 = async (contig: boolean) => {
      const v = (t: Tensor) => (contig ? t.contiguous() : t);
      const state = st2.clone();
      const conv = conv2.clone();
      const xbc = causalConv1dUpdate({ x: v(proj.slice(1, I2, I2 + cd)), convState: conv, weight: w2, activation: 'silu' });
      const xs = xbc.slice(1, 0, I2).unflatten(1, [H, P]);
      const B = xbc.slice(1, I2, I2 + G * N).unflatten(1, [G, N]);
      const C = xbc.slice(1, I2 + G * N, cd).unflatten(1, [G, N]);
      const y = selectiveStateUpdate({ state, x: v(xs), dt: v(proj.slice(1, I2 + cd, I2 + cd + H)), A: A2, B: v(B), C: v(C), D: A2, dtSoftplus: true });
      const yn = gatedRmsNorm({ x: y.reshape([batch, I2]), z: v(proj.slice(1, 0, I2)), weight: normW, groupSize: I2 / G });
      return { state, conv, y, yn };
    };
    const a2 = await run2(false), b2 = await run2(true);
    for (const k of ['state', 'conv', 'y', 'yn'] as const) await same(a2[k], b2[k], `mamba2 batch ${batch} ${k}`);
  }
}

/**
 * linearConvUpdate (in_proj with the conv step on some of its columns) against linear followed by
 * causalConv1dUpdate on those columns: batch 1..8 takes the fused matrix-vector kernel on CUDA,
 * batch 9 the two ops in turn.
 */
export async function checkLinearConv(device: Device, dtype: DType, tol: number): Promise<void> {
  for (const [batch, K, N, lo, C, W, withBias] of [
    [1, 64, 100, 10, 40, 4, true],
    [3, 40, 77, 0, 77, 3, false],
    [8, 128, 300, 150, 150, 4, true],
    [9, 64, 90, 20, 50, 2, true],
  ] as Array<[number, number, number, number, number, number, boolean]>) {
    const x = randn([batch, K], { dtype, device });
    const w = randn([N, K], { dtype, device, std: 1 / Math.sqrt(K) });
    const b = withBias ? randn([N], { dtype, device }) : undefined;
    const cw = randn([C, W], { dtype, device });
    const cb = withBias ? randn([C], { dtype, device }) : undefined;
    const state0 = randn([batch, C, W - 1], { dtype, device });
    const s1 = state0.clone(), s2 = state0.clone();
    const fused = linearConvUpdate({ x, weight: w, bias: b, convState: s1, convWeight: cw, convBias: cb, convStart: lo, activation: 'silu' });
    const plain = linear({ x, weight: w, bias: b });
    const conv = causalConv1dUpdate({ x: plain.slice(1, lo, lo + C), convState: s2, weight: cw, bias: cb, activation: 'silu' });
    const f = await fused.data(), p = await plain.data(), c = await conv.data();
    const want = Float64Array.from(p);
    for (let m = 0; m < batch; m++) for (let j = 0; j < C; j++) want[m * N + lo + j] = c[m * C + j];
    const what = `${device} ${dtype} batch ${batch} columns [${lo}, ${lo + C}) of ${N}, width ${W}`;
    expect(relErr(f, want), what).toBeLessThan(tol);
    expect(relErr(await s1.data(), await s2.data()), `${what}: conv state`).toBeLessThan(tol);
  }
}

/**
 * linearConvUpdateProj (in_proj, its conv step and x_proj of the conv columns in one op) against
 * linearConvUpdate followed by linear on the conv columns, and linearConvUpdate alone, against the
 * two ops in turn on one stream (STATESPACE_FORK=0). On CUDA at batch 9..64 without a bias the
 * larger column range outside the conv runs on the side stream beside the rest: the conv
 * first (Mamba-1: z on the side), in the middle (the larger range on the side, the smaller with the
 * conv columns), last; batch 100 and a bias take
 * the ops in turn. With `graph`, the op is also captured (after an eager warm-up) and replayed
 * from the same conv state: bit-identical to the eager call.
 */
export async function checkLinearConvProj(device: Device, dtype: DType, tol: number, graph = false): Promise<void> {
  for (const [batch, K, N, lo, C, P, withBias] of [
    [64, 256, 1024, 0, 512, 48, false],
    [17, 96, 300, 100, 120, 20, false],
    [48, 64, 200, 136, 64, 33, false],
    [9, 40, 90, 0, 90, 16, false],
    [64, 128, 256, 0, 128, 24, true],
    [3, 64, 100, 0, 50, 12, false],
    [100, 64, 160, 0, 80, 16, false],
  ] as Array<[number, number, number, number, number, number, boolean]>) {
    const x = randn([batch, K], { dtype, device });
    const w = randn([N, K], { dtype, device, std: 1 / Math.sqrt(K) });
    const b = withBias ? randn([N], { dtype, device }) : undefined;
    const cw = randn([C, 4], { dtype, device });
    const cb = randn([C], { dtype, device });
    const xp = randn([P, C], { dtype, device, std: 1 / Math.sqrt(C) });
    const state0 = randn([batch, C, 3], { dtype, device });
    const s1 = state0.clone(), s2 = state0.clone(), s3 = state0.clone();
    const args = { x, weight: w, bias: b, convWeight: cw, convBias: cb, convStart: lo, activation: 'silu' as const };
    const [out, proj] = linearConvUpdateProj({ ...args, convState: s1, xProj: xp });
    const alone = linearConvUpdate({ ...args, convState: s3 }); // forked as well (on CUDA, unless STATESPACE_FORK=0)
    // the reference: the ops in turn on one stream
    const fork = process.env.STATESPACE_FORK;
    process.env.STATESPACE_FORK = '0';
    let plain: Tensor, plainProj: Tensor;
    try {
      plain = linearConvUpdate({ ...args, convState: s2 });
      plainProj = linear({ x: plain.slice(1, lo, lo + C), weight: xp });
    } finally {
      if (fork === undefined) delete process.env.STATESPACE_FORK;
      else process.env.STATESPACE_FORK = fork;
    }
    const what = `${device} ${dtype} batch ${batch} columns [${lo}, ${lo + C}) of ${N}, x_proj ${P}${withBias ? ', bias' : ''}`;
    expect(out.shape).toEqual([batch, N]);
    expect(proj.shape).toEqual([batch, P]);
    expect(relErr(await out.data(), await plain.data()), what).toBeLessThan(tol);
    expect(relErr(await alone.data(), await plain.data()), `${what}: linearConvUpdate`).toBeLessThan(tol);
    expect(relErr(await proj.data(), await plainProj.data()), `${what}: x_proj`).toBeLessThan(tol);
    expect(relErr(await s1.data(), await s2.data()), `${what}: conv state`).toBeLessThan(tol);
    expect(relErr(await s3.data(), await s2.data()), `${what}: conv state (linearConvUpdate)`).toBeLessThan(tol);
    if (!graph) continue;
    const outG = out.clone(), projG = proj.clone();
    const state = state0.clone();
    const g = captureGraph(device, () => {
      const [o, p] = linearConvUpdateProj({ ...args, convState: state, xProj: xp });
      copyInto(outG, o);
      copyInto(projG, p);
    });
    try {
      copyInto(state, state0);
      g.replay();
      const eagerState = state0.clone();
      const [o, p] = linearConvUpdateProj({ ...args, convState: eagerState, xProj: xp });
      const bitsEqual = async (a: Tensor, c: Tensor, name: string) => {
        const av = await a.data(), cv = await c.data();
        expect(Buffer.from(av.buffer, av.byteOffset, av.byteLength).equals(Buffer.from(cv.buffer, cv.byteOffset, cv.byteLength)), `${what}: graph ${name}`).toBe(true);
      };
      await bitsEqual(outG, o, 'out');
      await bitsEqual(projG, p, 'x_proj');
      await bitsEqual(state, eagerState, 'conv state');
    } finally {
      g.dispose();
    }
  }
}

/**
 * selectiveStateUpdate with dtProj (Mamba-1's dt_proj inside the state update) against linear
 * followed by the plain state update. On CUDA batch <= 8 takes the fused one-row-per-thread kernel;
 * batch 9..64 with 16-bit inputs and rank % 16 == 0 the batched kernel's tensor-core product (batch
 * 64: one 16-entry chunk per block; batch 60 over 16896 channels: two chunks per block, the second
 * partly empty; batch 20: a partial 128-channel block), other batches (100) the linear layer first,
 * as the CPU does; dt rank 24, 32, 48, 160 and 176, with the low-rank input a strided view.
 */
export async function checkDtProj(device: Device, dtype: DType, tol: number): Promise<void> {
  for (let [batch, dim, rank] of [
    [1, 300, 160],
    [5, 64, 24],
    [9, 48, 24],
    [64, 300, 160],
    // rank < 0: the same with a bfloat16 state
    ...(device === 'cpu' ? [] : [[60, 16896, 32], [64, 300, -160], [20, 40, 48], [100, 72, -176]]),
  ]) {
    const stateDtype = rank < 0 ? 'bfloat16' : 'float32';
    rank = Math.abs(rank);
    const N = 16;
    const dbc = randn([batch, rank + 2 * N], { dtype, device });
    const dtr = dbc.slice(1, 0, rank);
    const B = dbc.slice(1, rank, rank + N), C = dbc.slice(1, rank + N, rank + 2 * N);
    const W = randn([dim, rank], { dtype, device, std: 1 / Math.sqrt(rank) });
    const x = randn([batch, dim], { dtype, device });
    const z = randn([batch, dim], { dtype, device });
    const A = rand([dim, N], { device, low: -3, high: -0.1 });
    const D = randn([dim], { device });
    const bias = rand([dim], { device, low: -4, high: -1 });
    const state0 = randn([batch, dim, N], { device, dtype: stateDtype });
    const s1 = state0.clone(), s2 = state0.clone();
    const common = { x, A, B, C, D, z, dtBias: bias, dtSoftplus: true };
    const fused = selectiveStateUpdate({ ...common, state: s1, dt: dtr, dtProj: W });
    const plain = selectiveStateUpdate({ ...common, state: s2, dt: linear({ x: dtr, weight: W }) });
    const what = `${device} ${dtype} batch ${batch} dim ${dim} rank ${rank} ${stateDtype} state`;
    expect(relErr(await fused.data(), await plain.data()), what).toBeLessThan(tol);
    expect(relErr(await s1.data(), await s2.data()), `${what}: state`).toBeLessThan(tol);
  }
}
