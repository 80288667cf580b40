import { beforeAll, expect, it } from 'vitest';
import { DType, debugPoison, selectiveStateUpdate, tensor } from '../../lib/index';
import { describeGpu, expectClose, randnArray, rng, uniformArray } from '../helpers';
import { BIG_POOL, HEADDIM64_POOL, checkConvPool, checkStatePool } from '../state_pool_checks';

/**
 * A bf16 pool at batch 40 (the Mamba-1 tiles: a full block of 32 entries and one warp of 8;
 * 300 channels leave a partial 16-channel tile; dt_proj fused) and Mamba-2 rows of headdim 64,
 * dstate 128, 2 groups: CUDA against the CPU op on the same inputs.
 */
async function bf16PoolMatchesCpu(m1: boolean) {
  const r = rng();
  const slots = 45, batch = 40;
  const perm = Array.from({ length: slots }, (_, i) => i).sort(() => r() - 0.5);
  const idx = perm.slice(0, batch);
  idx[3] = -1;
  idx[17] = -1;
  idx[29] = slots + 2; // past the pool: skipped, y = NaN
  const H = m1 ? 300 : 6, P = m1 ? 1 : 64, N = m1 ? 16 : 128, G = m1 ? 1 : 2, rank = 32;
  const pool = randnArray(slots * H * P * N, r);
  const rowShape = m1 ? [batch, H] : [batch, H, P];
  const inputs = {
    x: randnArray(batch * H * P, r),
    z: randnArray(batch * H * P, r),
    dt: randnArray(batch * (m1 ? rank : H), r),
    dtProj: randnArray(H * rank, r, 1 / Math.sqrt(rank)),
    A: uniformArray(m1 ? H * N : H, -3, -0.2, r),
    B: randnArray(batch * G * N, r),
    C: randnArray(batch * G * N, r),
    D: randnArray(H, r),
    dtBias: uniformArray(H, -2, 0.5, r),
  };
  const run = async (device: 'cpu' | 'cuda') => {
    const bf = (v: Float64Array, shape: number[], dtype: DType = 'bfloat16') => tensor(v, shape, { dtype, device });
    const state = bf(pool, [slots, H, ...(m1 ? [] : [P]), N]);
    const y = selectiveStateUpdate({
      state,
      x: bf(inputs.x, rowShape),
      z: bf(inputs.z, rowShape),
      dt: bf(inputs.dt, [batch, m1 ? rank : H]),
      ...(m1 ? { dtProj: bf(inputs.dtProj, [H, rank]) } : {}),
      A: bf(inputs.A, m1 ? [H, N] : [H], 'float32'),
      B: bf(inputs.B, [batch, G, N]),
      C: bf(inputs.C, [batch, G, N]),
      D: bf(inputs.D, [H], 'float32'),
      dtBias: bf(inputs.dtBias, [H], 'float32'),
      dtSoftplus: true,
      stateIndices: tensor(Int32Array.from(idx), [batch], { device }),
    });
    return { y: await y.data(), state: await state.data() };
  };
  const [cpu, gpu] = [await run('cpu'), await run('cuda')];
  const rows = H * P;
  for (let b = 0; b < batch; b++) {
    const got = gpu.y.subarray(b * rows, (b + 1) * rows);
    if (idx[b] < 0) expect(Array.from(got).every((v) => v === 0), `row ${b}: padding gives 0`).toBe(true);
    else if (idx[b] >= slots) expect(Array.from(got).every((v) => Number.isNaN(v)), `row ${b}: out of the pool gives NaN`).toBe(true);
    else expectClose(got, cpu.y.subarray(b * rows, (b + 1) * rows), 1e-2, `${m1 ? 'M1' : 'M2'} row ${b}`);
  }
  expectClose(gpu.state, cpu.state, 1e-2, `${m1 ? 'M1' : 'M2'} pool`);
}

describeGpu('decode on a state pool (CUDA)', () => {
  beforeAll(() => debugPoison(true));
  it('selectiveStateUpdate with stateIndices: Mamba-1 and Mamba-2 forms', async () => {
    await checkStatePool('cuda', true);
    await checkStatePool('cuda', false);
  });
  it('selectiveStateUpdate with stateIndices at batch 20 (the Mamba-1 warp tiles, f32 state)', async () => {
    await checkStatePool('cuda', true, BIG_POOL);
    await checkStatePool('cuda', false, BIG_POOL);
  });
  it('selectiveStateUpdate with stateIndices, Mamba-2 rows of headdim 64', async () => {
    await checkStatePool('cuda', false, HEADDIM64_POOL);
  });
  it('bf16 state pool at batch 40 (Mamba-1 tiles with dt_proj, Mamba-2 headdim 64 / dstate 128) equals the CPU op', async () => {
    await bf16PoolMatchesCpu(true);
    await bf16PoolMatchesCpu(false);
  });
  it('causalConv1dUpdate with convStateIndices', async () => {
    await checkConvPool('cuda');
  });
});
