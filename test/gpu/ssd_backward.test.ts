/**
 * ssdChunkScanBackward on CUDA (16-bit): every gradient against the CPU float64 backward on the
 * same (rounded) inputs, over the sizes that run the tensor-core chunk-gradient kernel (headdim
 * ≤ 64, dstate ≤ 128) and those that run the general one; bitwise reproducibility; no NaN for
 * large dt·|A|. The CPU backward itself is checked against finite differences (test/ssd.test.ts).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DType, debugPoison, ssdChunkScan, tensor } from '../../lib/index';
import { describeGpu, expectClose, expectNoNaN, randnArray, relErr, rng, values } from '../helpers';
import { SsdRefInputs } from '../reference/ssd';
import { SsdCase, makeSsdProblem, roundedTo, ssdGrads, ssdTensors } from '../ssd_inputs';

// The kernels round their operands (dt'·x products, masks, chunk states) to the 16-bit type.
const TOL: Record<string, number> = { bfloat16: 5e-2, float16: 2e-2 };

/** CUDA gradients in `dtype` and the CPU float64 gradients of the same rounded inputs and dy. */
async function both(pr: SsdRefInputs, dtype: DType, chunk: number | undefined, r: () => number) {
  const { batch: b, seqlen: l, heads: h, headdim: p, dstate: n } = pr;
  const dy = randnArray(b * l * h * p, r), dfin = randnArray(b * h * p * n, r);
  const cuda = await ssdGrads(ssdTensors(pr, dtype, 'cuda', chunk), dy, dfin, dtype, 'cuda');
  const dyr = Float64Array.from(tensor(dy, [dy.length], { dtype }).dataSync());
  const cpu = await ssdGrads(ssdTensors(roundedTo(pr, dtype), 'float64', 'cpu', chunk), dyr, dfin, 'float64', 'cpu');
  return { cuda, cpu };
}

// [name, case, chunkSize]: tensor-core path (headdim ≤ 64, dstate ≤ 128) first, then the general kernel.
const CASES: Array<[string, SsdCase, number | undefined]> = [
  ['headdim 64, dstate 128, odd seqlen 333, z, D, dtBias, initial states', { batch: 2, seqlen: 333, heads: 4, headdim: 64, dstate: 128, groups: 1, z: true, D: 'head', dtBias: true, initialStates: true }, 256],
  ['20 heads in 2 groups (runs of 8 and 2), headdim 40, dstate 48, seqIdx, chunk 128', { batch: 2, seqlen: 200, heads: 20, headdim: 40, dstate: 48, groups: 2, seqStarts: [3, 64, 65, 150], z: true, D: 'channel', dtBias: true }, 128],
  ['groups 8, headdim 1, dstate 16, D per channel, chunk 64', { batch: 1, seqlen: 130, heads: 8, headdim: 1, dstate: 16, groups: 8, D: 'channel', initialStates: true }, 64],
  ['headdim 32, dstate 112, seqlen 64, no z, no D', { batch: 3, seqlen: 64, heads: 3, headdim: 32, dstate: 112, groups: 1 }, undefined],
  ['headdim 8, dstate 64, seqlen 1, initial states', { batch: 2, seqlen: 1, heads: 2, headdim: 8, dstate: 64, groups: 2, initialStates: true, z: true }, undefined],
  ['headdim 64, dstate 32, seqlen 65, odd chunk 100, dtLimit without softplus', { batch: 1, seqlen: 65, heads: 4, headdim: 64, dstate: 32, groups: 2, dtSoftplus: false, dtLimit: [0.05, 0.2], z: true, D: 'head' }, 100],
  // 2·batch·heads = 288 state blocks: one block per state tile (smaller grids split dstate in two)
  ['144 heads, headdim 16, dstate 64, seqIdx: the unsplit state kernel', { batch: 1, seqlen: 130, heads: 144, headdim: 16, dstate: 64, groups: 4, seqStarts: [64, 100], z: true, D: 'channel', dtBias: true, initialStates: true }, undefined],
  // 64 chunks × 4 groups: the tensor-core kernel takes a whole group (9 heads) per block and writes dB / dC itself
  ['whole groups per block: 36 heads in 4 groups, headdim 24, dstate 40, seqlen 4090, seqIdx', { batch: 1, seqlen: 4090, heads: 36, headdim: 24, dstate: 40, groups: 4, seqStarts: [1000, 2047, 2048], z: true, D: 'channel', dtBias: true, initialStates: true }, undefined],
  ['headdim 48, dstate 128, restart on a chunk edge (seqIdx at 128, 192)', { batch: 2, seqlen: 260, heads: 16, headdim: 48, dstate: 128, groups: 2, seqStarts: [128, 192], initialStates: true, z: true, D: 'head', dtBias: true }, 256],
  ['general kernel: headdim 128, dstate 256, odd chunk 77', { batch: 1, seqlen: 201, heads: 2, headdim: 128, dstate: 256, groups: 1, z: true, D: 'head', initialStates: true }, 77],
  ['general kernel: headdim 72, dstate 40, seqIdx', { batch: 2, seqlen: 131, heads: 3, headdim: 72, dstate: 40, groups: 1, seqStarts: [5, 64, 65, 100], D: 'head', dtBias: true }, undefined],
  ['general kernel: headdim 64, dstate 256', { batch: 1, seqlen: 150, heads: 4, headdim: 64, dstate: 256, groups: 2, z: true }, undefined],
];

describeGpu('ssdChunkScanBackward on CUDA vs the CPU float64 backward', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));

  for (const [name, c, chunk] of CASES) {
    for (const dtype of ['bfloat16', 'float16'] as DType[]) {
      it(`${dtype}: ${name}`, async () => {
        const r = rng();
        const { cuda, cpu } = await both(makeSsdProblem(c, r), dtype, chunk, r);
        expect(Object.keys(cuda).sort()).toEqual(Object.keys(cpu).sort());
        for (const k of Object.keys(cpu)) {
          expectNoNaN(cuda[k], `${k} (poisoned before the call)`);
          expectClose(cuda[k], cpu[k], TOL[dtype], k);
        }
      });
    }
  }

  it('bitwise reproducible run to run (tensor-core and general kernels)', async () => {
    const r = rng();
    const shapes: SsdCase[] = [
      { batch: 2, seqlen: 300, heads: 20, headdim: 64, dstate: 128, groups: 2, z: true, D: 'head', dtBias: true, initialStates: true },
      { batch: 1, seqlen: 200, heads: 4, headdim: 96, dstate: 64, groups: 1, z: true, D: 'channel', dtBias: true },
      // whole groups per block (64 chunks × 4 groups), dB / dC written by the chunk kernel
      { batch: 1, seqlen: 4096, heads: 40, headdim: 32, dstate: 64, groups: 4, z: true, D: 'head', dtBias: true },
    ];
    for (const c of shapes) {
      const pr = makeSsdProblem(c, r);
      const dy = randnArray(c.batch * c.seqlen * c.heads * c.headdim, r);
      const dfin = randnArray(c.batch * c.heads * c.headdim * c.dstate, r);
      for (const dtype of ['bfloat16', 'float16'] as DType[]) {
        const o = ssdTensors(pr, dtype, 'cuda');
        const a = await ssdGrads(o, dy, dfin, dtype, 'cuda');
        const b = await ssdGrads(o, dy, dfin, dtype, 'cuda');
        const again = await ssdGrads(o, dy, dfin, dtype, 'cuda');
        for (const k of Object.keys(a)) {
          expect(Buffer.from(a[k].buffer).equals(Buffer.from(b[k].buffer)), `${dtype} headdim ${c.headdim} ${k}`).toBe(true);
          expect(Buffer.from(a[k].buffer).equals(Buffer.from(again[k].buffer)), `${dtype} headdim ${c.headdim} ${k}`).toBe(true);
        }
      }
    }
  });

  it('large dt·|A|: no NaN, and still the CPU gradients', async () => {
    const r = rng();
    const c: SsdCase = { batch: 1, seqlen: 300, heads: 8, headdim: 64, dstate: 128, groups: 1, dtRange: [2, 8], aRange: [-80, -20], z: true, D: 'head', dtBias: true, initialStates: true };
    const pr = makeSsdProblem(c, r);
    for (const dtype of ['bfloat16', 'float16'] as DType[]) {
      const { cuda, cpu } = await both(pr, dtype, undefined, r);
      for (const k of Object.keys(cpu)) {
        expectNoNaN(cuda[k], `${dtype} ${k}`);
        // The decays underflow here (dInitialStates ≈ 1e-200 in float64, exactly 0 on the GPU):
        // errors relative to the reference's norm, or absolute where that is negligible.
        let norm = 0, diff = 0;
        for (let i = 0; i < cpu[k].length; i++) norm += cpu[k][i] ** 2, diff += (cuda[k][i] - cpu[k][i]) ** 2;
        const err = norm > 1e-6 ? relErr(cuda[k], cpu[k]) : Math.sqrt(diff);
        expect(err, `${dtype} ${k}`).toBeLessThan(0.1);
      }
    }
  });

  it('bf16 training shape (batch 2, seqlen 2048, 16 heads): no NaN, forward then backward', async () => {
    const r = rng();
    const c: SsdCase = { batch: 2, seqlen: 2048, heads: 16, headdim: 64, dstate: 128, groups: 1, z: true, D: 'head', dtBias: true };
    const pr = makeSsdProblem(c, r);
    const o = ssdTensors(pr, 'bfloat16', 'cuda');
    const y = await values(ssdChunkScan(o).y);
    expectNoNaN(y, 'y');
    const g = await ssdGrads(o, randnArray(y.length, r), new Float64Array(2 * 16 * 64 * 128), 'bfloat16', 'cuda');
    for (const [k, v] of Object.entries(g)) expectNoNaN(v, k);
  });
});
