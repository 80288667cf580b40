/**
 * The 16-bit SSD forward on tensor cores (ssd_fwd_mma.cu) against the float64 reference: every
 * tile edge the kernels have (64-token slices, 256-token chunks, 64-row output tiles, 64-wide
 * headdim and dstate tiles), odd sizes that take the element-by-element copies and stores,
 * headdim multiples of 8 that take the 16-byte stores (with partial 16-column pieces), restarts
 * (seqIdx) on and off those edges, and chunkSize independence.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DType, debugPoison, ssdChunkScan } from '../../lib/index';
import { describeGpu, expectClose, expectNoNaN, values } from '../helpers';
import { ssdReference } from '../reference/ssd';
import { SsdCase, makeSsdProblem, roundedTo, ssdTensors } from '../ssd_inputs';

const TOL: Record<string, number> = { bfloat16: 1e-2, float16: 5e-3 };

const CASES: Array<[string, SsdCase]> = [
  // 4 chunks (the last one 232 tokens: a partial last row tile), dstate 200 (4 dstate tiles, the
  // last one 8 wide + padding), restarts on slice and chunk edges and one token before them.
  ['seqlen 1000, headdim 40, dstate 200, groups 2, restarts on slice/chunk edges, initial states', { batch: 2, seqlen: 1000, heads: 4, headdim: 40, dstate: 200, groups: 2, seqStarts: [63, 64, 128, 300, 511, 512, 700, 999], z: true, D: 'channel', dtBias: true, initialStates: true }],
  // odd headdim: element-by-element copies of x and z, single-element stores of y
  ['odd headdim 33, dstate 24, seqlen 257 (one token into the second chunk), a head per group', { batch: 1, seqlen: 257, heads: 3, headdim: 33, dstate: 24, groups: 3, z: true, D: 'head' }],
  ['odd headdim 33, dstate 24, seqlen 321, two heads per group', { batch: 2, seqlen: 321, heads: 4, headdim: 33, dstate: 24, groups: 2, z: true, D: 'channel', seqStarts: [200] }],
  // two headdim tiles; dstate 16 (one dstate tile, mostly padding)
  ['headdim 128, dstate 16, seqlen 700', { batch: 2, seqlen: 700, heads: 2, headdim: 128, dstate: 16, groups: 1, initialStates: true, D: 'channel' }],
  ['headdim 8, dstate 256, seqlen 300, z', { batch: 1, seqlen: 300, heads: 4, headdim: 8, dstate: 256, groups: 2, z: true, dtBias: true }],
  // the benchmark's inner sizes, 8 chunks
  ['headdim 64, dstate 128, seqlen 2048, groups 2', { batch: 2, seqlen: 2048, heads: 4, headdim: 64, dstate: 128, groups: 2, z: true, D: 'head', dtBias: true, initialStates: true }],
  // enough (batch, head) pairs for the 128-wide dstate tiles of the state kernel (≥ 2 blocks per SM)
  ['160 heads, headdim 8, dstate 128, seqlen 300, seqIdx', { batch: 2, seqlen: 300, heads: 160, headdim: 8, dstate: 128, groups: 2, seqStarts: [70, 256], z: true, D: 'head', initialStates: true }],
  ['dtLimit, no softplus, seqlen 65', { batch: 3, seqlen: 65, heads: 2, headdim: 48, dstate: 64, groups: 1, dtSoftplus: false, dtLimit: [0.05, 0.2], initialStates: true }],
  // restarts on and beside 64-token edges, a partial second headdim tile of 8 columns (16-byte
  // stores of half a 16-column piece), dstate 120 (the last 8 columns of the padded 128 zero)
  ['restarts at 1, 63, 64, 65, 127, 128, headdim 72, dstate 120', { batch: 2, seqlen: 190, heads: 2, headdim: 72, dstate: 120, groups: 1, seqStarts: [1, 63, 64, 65, 127, 128], z: true, D: 'channel', dtBias: true, initialStates: true }],
  ['seqlen 37 (one partial slice), dstate 48, groups 2', { batch: 3, seqlen: 37, heads: 4, headdim: 16, dstate: 48, groups: 2, z: true, D: 'head', initialStates: true }],
  // two headdim tiles at dstate 128, 4 heads per group, restarts inside and on slice edges
  ['headdim 128, dstate 128, seqlen 640, 4 heads per group, restarts, initial states', { batch: 2, seqlen: 640, heads: 8, headdim: 128, dstate: 128, groups: 2, seqStarts: [5, 192, 383], z: true, D: 'channel', dtBias: true, initialStates: true }],
  // Two heads per state-kernel block (B slices shared; taken on sm_90a with tensor copies when a
  // group's heads pair up and the paired grid gives every SM of the GPU a block) beside the
  // two-head state walk (≥ 4 pairs per SM of an H100): 8 × 72 = 576 pairs here; odd seqlen (a
  // partial chunk and slice), restarts on and off slice / chunk edges, initial states, 4 groups.
  ['two heads per state block: batch 8, 144 heads, seqlen 401, headdim 8, dstate 64, groups 4, seqIdx, initial states', { batch: 8, seqlen: 401, heads: 144, headdim: 8, dstate: 64, groups: 4, seqStarts: [1, 64, 100, 256, 380], z: true, D: 'channel', dtBias: true, initialStates: true }],
  // ... with two headdim tiles (2 × 8 × 36 pairs), a single group, no z / D
  ['two heads per state block: headdim 128, dstate 64, batch 8, 72 heads, seqlen 70, initial states', { batch: 8, seqlen: 70, heads: 72, headdim: 128, dstate: 64, groups: 1, initialStates: true }],
  // The output stage's state walk (ssd_fwd_fold_wg.cu) with two heads per block: it takes them
  // when the paired grid has ≥ 4 blocks per SM of an H100 (528): 3 chunks × 2 × 96 pairs = 576,
  // dstate 128 (two 64-column regions, as in the benchmark), odd seqlen, restarts on and beside
  // 64-token edges, initial states.
  ['state walk, two heads per block: 192 heads, seqlen 601, headdim 16, dstate 128, groups 2, seqIdx', { batch: 2, seqlen: 601, heads: 192, headdim: 16, dstate: 128, groups: 2, seqStarts: [63, 64, 130, 256, 450], z: true, D: 'head', dtBias: true, initialStates: true }],
  // many heads, headdim 64 (whole 16-byte pieces), dstate 32
  ['heads 96, headdim 64, dstate 32, groups 4, restarts', { batch: 3, seqlen: 150, heads: 96, headdim: 64, dstate: 32, groups: 4, seqStarts: [64, 100], z: true, D: 'channel', dtBias: true, initialStates: true }],
];

describeGpu('ssdChunkScan 16-bit forward on tensor cores', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));

  for (const [name, c] of CASES) {
    for (const dtype of ['bfloat16', 'float16'] as DType[]) {
      it(`${dtype}: ${name}`, async () => {
        const pr = makeSsdProblem(c);
        const ref = ssdReference(roundedTo(pr, dtype));
        const r = ssdChunkScan({ ...ssdTensors(pr, dtype, 'cuda'), returnFinalStates: true });
        const y = await values(r.y), fin = await values(r.finalStates!);
        expectNoNaN(y, 'y (poisoned before the call)');
        expectNoNaN(fin, 'finalStates');
        expectClose(y, ref.y, TOL[dtype], 'y');
        expectClose(fin, ref.finalStates, TOL[dtype], 'finalStates');
      });
    }
  }

  it('results do not depend on chunkSize', async () => {
    const pr = makeSsdProblem({ batch: 2, seqlen: 530, heads: 4, headdim: 64, dstate: 64, groups: 2, seqStarts: [100, 256], z: true, D: 'head' });
    const ref = ssdReference(roundedTo(pr, 'bfloat16'));
    const outs: Float64Array[] = [];
    for (const chunkSize of [1, 37, 64, 256, 1000]) {
      const y = await values(ssdChunkScan(ssdTensors(pr, 'bfloat16', 'cuda', chunkSize)).y);
      expectClose(y, ref.y, TOL.bfloat16, `y, chunkSize ${chunkSize}`);
      outs.push(y);
    }
    for (const y of outs.slice(1)) expectClose(y, outs[0], 1e-3, 'y against chunkSize 1');
  });

  it('state walk with two heads per block: results do not depend on chunkSize (seqlen 1000, 160 heads)', async () => {
    const pr = makeSsdProblem({ batch: 2, seqlen: 1000, heads: 160, headdim: 8, dstate: 32, groups: 2, seqStarts: [300, 768], z: true, D: 'head', initialStates: true });
    const ref = ssdReference(roundedTo(pr, 'float16'));
    for (const chunkSize of [64, 256]) {
      const y = await values(ssdChunkScan(ssdTensors(pr, 'float16', 'cuda', chunkSize)).y);
      expectClose(y, ref.y, TOL.float16, `y, chunkSize ${chunkSize}`);
    }
  });

  it('the same call twice gives the same bits', async () => {
    const pr = makeSsdProblem({ batch: 1, seqlen: 600, heads: 4, headdim: 64, dstate: 128, groups: 1, z: true, D: 'head', initialStates: true });
    const o = ssdTensors(pr, 'bfloat16', 'cuda');
    const a = await values(ssdChunkScan(o).y), b = await values(ssdChunkScan(o).y);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });
});
