import { beforeAll, afterAll, afterEach, expect, it } from 'vitest';
import { DType, debugPoison, linearConvUpdateProj, randn } from '../../lib/index';
import { checkDecodeViews, checkDtProj, checkLinearConv, checkLinearConvProj } from '../decode_views';
import { describeGpu, expectNoNaN, relErr } from '../helpers';

describeGpu('decode ops on strided views (CUDA)', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    it(`${dtype}: views of wider projections give what contiguous copies give`, async () => {
      await checkDecodeViews('cuda', dtype);
    });
  }
  for (const [dtype, tol] of [['float32', 1e-5], ['bfloat16', 1e-2], ['float16', 5e-3]] as const) {
    it(`${dtype}: linearConvUpdate equals linear then causalConv1dUpdate on its conv columns`, async () => {
      await checkLinearConv('cuda', dtype, tol);
    });
  }
  afterEach(() => {
    delete process.env.STATESPACE_FORK;
  });
  for (const [dtype, tol] of [['float32', 1e-5], ['bfloat16', 1e-2], ['float16', 5e-3]] as const) {
    it(`${dtype}: linearConvUpdateProj (the columns outside the conv on the side stream) equals linearConvUpdate then linear, also from a CUDA graph`, async () => {
      await checkLinearConvProj('cuda', dtype, tol, true);
    });
  }
  // The conv step inside x_proj's narrow kernel (conv channels >= 4096: 16 K slices; each row tile
  // recomputes its slice's conv, row tile 0 writes u and the state) against the conv kernel then
  // the narrow kernel (STATESPACE_CONV_XPROJ=0): batches 9, 33, 64, x_proj widths 16 to 200 (partial
  // row tiles), slices of unequal widths (4128 channels), with and without a conv bias; u and the
  // conv state equal bit for bit, x_proj within rounding, repeatable bit for bit.
  for (const dtype of ['bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: linearConvUpdateProj's conv step inside x_proj equals the two kernels`, async () => {
      for (const [M, C, P, bias] of [
        [9, 4096, 16, true],
        [33, 4128, 200, false],
        [64, 5120, 192, true],
        [64, 4096, 160, false],
      ] as Array<[number, number, number, boolean]>) {
        const K = 64;
        const x = randn([M, K], { dtype, device: 'cuda' });
        const w = randn([2 * C, K], { dtype, device: 'cuda', std: 1 / Math.sqrt(K) });
        const cw = randn([C, 4], { dtype, device: 'cuda', std: 0.5 });
        const cb = bias ? randn([C], { dtype, device: 'cuda' }) : undefined;
        const xp = randn([P, C], { dtype, device: 'cuda', std: 1 / Math.sqrt(C) });
        const state0 = randn([M, C, 3], { dtype, device: 'cuda' });
        const args = { x, weight: w, convWeight: cw, convBias: cb, convStart: 0, activation: 'silu' as const, xProj: xp };
        const run = async (env: string | undefined) => {
          if (env !== undefined) process.env.STATESPACE_CONV_XPROJ = env;
          try {
            const state = state0.clone();
            const [out, proj] = linearConvUpdateProj({ ...args, convState: state });
            return { out: await out.data(), proj: await proj.data(), state: await state.data() };
          } finally {
            delete process.env.STATESPACE_CONV_XPROJ;
          }
        };
        const fused = await run(undefined), again = await run(undefined), two = await run('0');
        const what = `${dtype} batch ${M}, ${C} channels, x_proj ${P}${bias ? ', conv bias' : ''}`;
        expectNoNaN(fused.proj, what);
        expect(relErr(fused.out, two.out), `${what}: out`).toBe(0);
        expect(relErr(fused.state, two.state), `${what}: conv state`).toBe(0);
        expect(relErr(fused.proj, two.proj), `${what}: x_proj`).toBeLessThan(dtype === 'bfloat16' ? 1e-2 : 5e-3);
        expect(Buffer.compare(Buffer.from(fused.proj.buffer), Buffer.from(again.proj.buffer)), `${what}: repeatable`).toBe(0);
      }
    });
  }

  it('bfloat16: linearConvUpdateProj on one stream (STATESPACE_FORK=0)', async () => {
    process.env.STATESPACE_FORK = '0';
    await checkLinearConvProj('cuda', 'bfloat16', 1e-2, true);
  });
  for (const [dtype, tol] of [['float32', 1e-5], ['bfloat16', 1e-2], ['float16', 5e-3]] as const) {
    it(`${dtype}: selectiveStateUpdate with dtProj equals linear then the state update`, async () => {
      await checkDtProj('cuda', dtype, tol);
    });
  }
});
