import { beforeAll, expect, it } from 'vitest';
import { DType, causalConv1d, causalConv1dBackward, causalConv1dUpdate, debugPoison, tensor, zeros } from '../../lib/index';
import { describeGpu, expectClose, expectNoNaN, randnArray, rng } from '../helpers';
import { randnInput, seqIdxInput } from '../model_inputs';
import { conv1dRef } from '../reference/conv1d';
import { checkConvFinalStatesOut } from '../state_out_checks';

const TOL: Record<string, number> = { float32: 1e-4, float16: 5e-3, bfloat16: 2e-2 };

describeGpu('causalConv1d on CUDA', () => {
  beforeAll(() => debugPoison(true));

  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    it(`${dtype}: forward and final states vs float64 reference (widths 1,2,4,5, seqIdx, initial states)`, async () => {
      for (const width of [1, 2, 4, 5]) {
        // 2048, 4104, 16 and 8 (multiples of 8, no seqIdx) take the width-4 vector kernel at width 4
        // (1024 steps per block: 4104 is four blocks and part of a fifth).
        for (const [seqlen, seq] of [[1, false], [37, true], [2500, false], [2049, true], [2048, false], [4104, false], [16, false], [8, false]] as const) {
          const r = rng();
          const batch = 3, dim = 67;
          const x = randnInput([batch, dim, seqlen], dtype, 'cuda', 1, r);
          const w = randnInput([dim, width], 'float32', 'cuda', 0.5, r);
          const b = randnInput([dim], dtype, 'cuda', 1, r);
          const init = width > 1 ? randnInput([batch, dim, width - 1], dtype, 'cuda', 1, r) : undefined;
          const s = seq ? seqIdxInput(batch, seqlen, 4, 'cuda', r) : undefined;
          const out = causalConv1d({ x: x.t, weight: w.t, bias: b.t, activation: 'silu', initialStates: init?.t, seqIdx: s?.t, returnFinalStates: true });
          const ref = conv1dRef({ batch, dim, seqlen, width, x: x.v, weight: w.v, bias: b.v, initialStates: init?.v, seqIdx: s?.v, silu: true });
          const y = await out.y.data();
          expectNoNaN(y, 'y');
          expectClose(y, ref.y, TOL[dtype], `y width ${width} seqlen ${seqlen}`);
          if (width > 1) expectClose(await out.finalStates!.data(), ref.finalStates, TOL[dtype], 'final states');
        }
      }
    });
  }

  // Mamba-2 hands the conv a channels-last slice of in_proj's output: read in place on CUDA, with
  // y returned channels-last (a view). Width 4 without seqIdx takes the 8-channel vector kernel
  // (dim a multiple of 8, aligned); the rest the per-output kernel with strides.
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    it(`${dtype}: channels-last x (a slice of a (batch, seqlen, channels) tensor) read in place`, async () => {
      const cases: Array<[number, number, number, number, number, boolean]> = [
        // batch, dim, seqlen, width, channel offset in a row of 'wide' channels, seqIdx
        [1, 136, 2049, 4, 8, false],
        [2, 64, 37, 4, 0, false],
        [3, 67, 50, 4, 1, false],
        [2, 40, 33, 3, 8, true],
      ];
      for (const [batch, dim, seqlen, width, from, seq] of cases) {
        const r = rng();
        const wide = dim + 24;
        const src = randnInput([batch, seqlen, wide], dtype, 'cuda', 1, r);
        const x = src.t.slice(2, from, from + dim).transpose(1, 2); // (batch, dim, seqlen), channel stride 1
        const xv = new Float64Array(batch * dim * seqlen);
        for (let b = 0; b < batch; b++)
          for (let d = 0; d < dim; d++) for (let t = 0; t < seqlen; t++) xv[(b * dim + d) * seqlen + t] = src.v[(b * seqlen + t) * wide + from + d];
        const w = randnInput([dim, width], 'float32', 'cuda', 0.5, r);
        const bias = randnInput([dim], dtype, 'cuda', 1, r);
        const init = randnInput([batch, dim, width - 1], dtype, 'cuda', 1, r);
        const s = seq ? seqIdxInput(batch, seqlen, 3, 'cuda', r) : undefined;
        const out = causalConv1d({ x, weight: w.t, bias: bias.t, activation: 'silu', initialStates: init.t, seqIdx: s?.t, returnFinalStates: true });
        const ref = conv1dRef({ batch, dim, seqlen, width, x: xv, weight: w.v, bias: bias.v, initialStates: init.v, seqIdx: s?.v, silu: true });
        const tag = `${dtype} ${batch}x${dim}x${seqlen} width ${width} from ${from}`;
        expect(out.y.shape).toEqual([batch, dim, seqlen]);
        const y = await out.y.contiguous().data();
        expectNoNaN(y, 'y');
        expectClose(y, ref.y, TOL[dtype], `${tag}: y`);
        expectClose(await out.finalStates!.data(), ref.finalStates, TOL[dtype], `${tag}: final states`);
      }
    });
  }

  it('widths beyond the tiled kernel (1030) take the per-output kernel', async () => {
    const r = rng();
    const [batch, dim, seqlen, width] = [2, 3, 1100, 1030];
    const x = randnInput([batch, dim, seqlen], 'float32', 'cuda', 1, r);
    const w = randnInput([dim, width], 'float32', 'cuda', 0.05, r);
    const init = randnInput([batch, dim, width - 1], 'float32', 'cuda', 1, r);
    const s = seqIdxInput(batch, seqlen, 3, 'cuda', r);
    const out = causalConv1d({ x: x.t, weight: w.t, initialStates: init.t, seqIdx: s.t, activation: 'silu', returnFinalStates: true });
    const ref = conv1dRef({ batch, dim, seqlen, width, x: x.v, weight: w.v, initialStates: init.v, seqIdx: s.v, silu: true });
    expectClose(await out.y.data(), ref.y, 1e-4, 'y');
    expectClose(await out.finalStates!.data(), ref.finalStates, 1e-6, 'final states');
  });

  // Width 4 without seqIdx at seqlen % 8 == 0 takes the vector backward, widths 1-5 otherwise the
  // tiled one, 1030 the per-element kernels; seqlens past 2048 span three tiles, so the partial sums
  // of dweight cross tile and batch edges.
  it('backward equals the CPU float64 backward (f32 and bf16; every backward kernel; options on and off)', async () => {
    const r = rng();
    const cases: Array<[number, number, number, number, boolean, boolean]> = [
      // batch, dim, seqlen, width, options (bias, initial/final states, SiLU), seqIdx
      [2, 33, 129, 4, true, true],
      [3, 5, 2049, 4, true, true],
      [2, 7, 2500, 4, false, false],
      [2, 5, 2056, 4, true, false],
      [2, 7, 2048, 4, false, false],
      [1, 3, 8, 4, true, false],
      [1, 3, 1, 4, true, true],
      [2, 6, 2, 5, true, true],
      [2, 4, 1500, 2, true, true],
      [1, 9, 700, 1, true, true],
      [2, 3, 1100, 1030, true, true],
    ];
    for (const [batch, dim, seqlen, width, all, withSeq] of cases) {
      const xv = randnArray(batch * dim * seqlen, r), wv = randnArray(dim * width, r).map((v) => v / Math.sqrt(width));
      const bv = randnArray(dim, r), dyv = randnArray(batch * dim * seqlen, r);
      const iv = randnArray(batch * dim * (width - 1), r), dfv = randnArray(batch * dim * (width - 1), r);
      const seq = withSeq ? seqIdxInput(batch, seqlen, 3, 'cpu', r) : undefined;
      const args = (dtype: DType, device: 'cpu' | 'cuda') => {
        const wdt = dtype === 'float64' ? 'float64' : 'float32';
        return {
          x: tensor(xv, [batch, dim, seqlen], { dtype, device }),
          weight: tensor(wv, [dim, width], { dtype: wdt, device }),
          bias: all ? tensor(bv, [dim], { dtype: wdt, device }) : undefined,
          initialStates: all && width > 1 ? tensor(iv, [batch, dim, width - 1], { dtype, device }) : undefined,
          seqIdx: seq?.t.to(device),
          activation: all ? ('silu' as const) : undefined,
          dy: tensor(dyv, [batch, dim, seqlen], { dtype, device }),
          dFinalStates: all && width > 1 ? tensor(dfv, [batch, dim, width - 1], { dtype, device }) : undefined,
        };
      };
      const ref = causalConv1dBackward(args('float64', 'cpu'));
      for (const [dtype, tol] of [['float32', 1e-4], ['bfloat16', 3e-2]] as const) {
        const g = causalConv1dBackward(args(dtype, 'cuda'));
        for (const k of ['dx', 'dweight', 'dbias', 'dInitialStates'] as const) {
          const want = ref[k];
          if (!want) {
            expect(g[k], `${k} without its input`).toBeUndefined();
            continue;
          }
          const got = await g[k]!.data();
          const tag = `${dtype} ${batch}x${dim}x${seqlen} width ${width} ${all ? 'options' : 'bare'}${withSeq ? ' seqIdx' : ''}: ${k}`;
          expectNoNaN(got, tag);
          expectClose(got, await want.data(), tol, tag);
        }
      }
    }
  });

  it('backward is reproducible bit for bit (dweight sums in a fixed order)', async () => {
    const r = rng();
    const [batch, dim, seqlen, width] = [4, 64, 3000, 4];
    const x = randnInput([batch, dim, seqlen], 'bfloat16', 'cuda', 1, r);
    const dy = randnInput([batch, dim, seqlen], 'bfloat16', 'cuda', 1, r);
    const w = randnInput([dim, width], 'float32', 'cuda', 0.5, r);
    const b = randnInput([dim], 'float32', 'cuda', 1, r);
    const run = async () => {
      const g = causalConv1dBackward({ x: x.t, weight: w.t, bias: b.t, activation: 'silu', dy: dy.t });
      return [await g.dweight.data(), await g.dbias!.data(), await g.dx.data()];
    };
    const [a, c] = [await run(), await run()];
    for (let i = 0; i < a.length; i++) expect(Buffer.from(c[i].buffer).equals(Buffer.from(a[i].buffer))).toBe(true);
  });

  it('finalStatesOut: the final states written into a cache slot (also when it is the initial state)', () => {
    for (const seqlen of [2, 16, 300]) {  // 16: the width-4 vector kernel writes the final states itself
      checkConvFinalStatesOut({ batch: 2, dim: 40, seqlen, width: 4 }, 'bfloat16', 'cuda');
      checkConvFinalStatesOut({ batch: 1, dim: 9, seqlen, width: 4 }, 'float32', 'cuda');
    }
  });

  it('update steps equal the full convolution; the state ends as its final state', async () => {
    for (const [dtype, width] of [['float32', 4], ['bfloat16', 5], ['float32', 1]] as Array<[DType, number]>) {
      const batch = 5, dim = 131, seqlen = 7;
      const x = randnInput([batch, dim, seqlen], dtype, 'cuda');
      const w = randnInput([dim, width], 'float32', 'cuda');
      const b = randnInput([dim], 'float32', 'cuda');
      const full = causalConv1d({ x: x.t, weight: w.t, bias: b.t, activation: 'silu', returnFinalStates: true });
      const yfull = await full.y.data();
      const state = zeros([batch, dim, width - 1], { dtype, device: 'cuda' });
      for (let t = 0; t < seqlen; t++) {
        const xt = x.t.slice(2, t, t + 1).reshape([batch, dim]);
        const yt = await causalConv1dUpdate({ x: xt, convState: state, weight: w.t, bias: b.t, activation: 'silu' }).data();
        const want = Float64Array.from({ length: batch * dim }, (_, i) => yfull[i * seqlen + t]);
        expectClose(yt, want, dtype === 'float32' ? 1e-5 : 1e-2, `${dtype} step ${t}`);
      }
      expect(Array.from(await state.data())).toEqual(Array.from(await full.finalStates!.data()));
    }
  });

  // x, state, weight and bias all bf16, width 4, channels a multiple of 8: the 16-byte decode kernel
  // (a thread per 8 channels), against the full convolution's kernels.
  it('bf16 width-4 update steps (the vectorised decode kernel) equal the full convolution', async () => {
    const batch = 20, dim = 136, seqlen = 5, width = 4;
    const x = randnInput([batch, dim, seqlen], 'bfloat16', 'cuda');
    const w = randnInput([dim, width], 'bfloat16', 'cuda');
    const b = randnInput([dim], 'bfloat16', 'cuda');
    const full = causalConv1d({ x: x.t, weight: w.t, bias: b.t, activation: 'silu', returnFinalStates: true });
    const yfull = await full.y.data();
    const state = zeros([batch, dim, width - 1], { dtype: 'bfloat16', device: 'cuda' });
    for (let t = 0; t < seqlen; t++) {
      const xt = x.t.slice(2, t, t + 1).reshape([batch, dim]);
      const yt = await causalConv1dUpdate({ x: xt, convState: state, weight: w.t, bias: b.t, activation: 'silu' }).data();
      const want = Float64Array.from({ length: batch * dim }, (_, i) => yfull[i * seqlen + t]);
      expectNoNaN(yt, `step ${t}`);
      expectClose(yt, want, 1e-2, `bf16 width 4 step ${t}`);
    }
    expect(Array.from(await state.data())).toEqual(Array.from(await full.finalStates!.data()));
  });
});
