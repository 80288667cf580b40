/** SSD chunked scan on CUDA: against the float64 reference, CPU gradients, determinism, NaN safety. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DType, debugPoison, ssdChunkScan, tensor } from '../../lib/index';
import { describeGpu, expectClose, expectNoNaN, randnArray, rng, values } from '../helpers';
import { SsdRefInputs, ssdReference } from '../reference/ssd';
import { SsdCase, makeSsdProblem, roundedTo, ssdGrads, ssdTensors } from '../ssd_inputs';

const TOL: Record<string, number> = { float32: 1e-4, bfloat16: 1e-2, float16: 5e-3 };

const CASES: Array<[string, SsdCase]> = [
  ['groups 2, z, D, dtBias, seqlen 200', { batch: 2, seqlen: 200, heads: 4, headdim: 64, dstate: 128, groups: 2, z: true, D: 'head', dtBias: true }],
  ['headdim 1, groups 8, dstate 16, D per channel', { batch: 1, seqlen: 77, heads: 8, headdim: 1, dstate: 16, groups: 8, D: 'channel' }],
  ['headdim 128, dstate 256, initial states', { batch: 1, seqlen: 150, heads: 2, headdim: 128, dstate: 256, groups: 1, initialStates: true, z: true }],
  ['odd headdim 72, odd dstate 40, seqIdx', { batch: 2, seqlen: 131, heads: 3, headdim: 72, dstate: 40, groups: 1, seqStarts: [5, 64, 65, 100], D: 'head' }],
  // Several 256-token chunks of the 16-bit chunk-parallel forward (state passing, a restart on a
  // chunk edge, two headdim tiles of 64 + 8).
  ['seqlen 600, headdim 72, dstate 40, seqIdx on a chunk edge, initial states', { batch: 2, seqlen: 600, heads: 4, headdim: 72, dstate: 40, groups: 2, seqStarts: [256, 300, 513], initialStates: true, z: true, D: 'channel', dtBias: true }],
  ['dtLimit, no softplus, seqlen 1', { batch: 2, seqlen: 1, heads: 2, headdim: 16, dstate: 32, groups: 2, dtSoftplus: false, dtLimit: [0.05, 0.2], initialStates: true }],
];

async function runCuda(pr: SsdRefInputs, dtype: DType) {
  const r = ssdChunkScan({ ...ssdTensors(pr, dtype, 'cuda'), returnFinalStates: true });
  return { y: await values(r.y), fin: await values(r.finalStates!) };
}


describeGpu('ssdChunkScan on CUDA', () => {
  beforeAll(() => debugPoison(true));
  afterAll(() => debugPoison(false));

  for (const [name, c] of CASES) {
    for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
      it(`${dtype}: ${name}`, async () => {
        const pr = makeSsdProblem(c);
        const ref = ssdReference(roundedTo(pr, dtype));
        const out = await runCuda(pr, dtype);
        expectNoNaN(out.y, 'y (poisoned before the call)');
        expectNoNaN(out.fin, 'finalStates');
        expectClose(out.y, ref.y, TOL[dtype], 'y');
        expectClose(out.fin, ref.finalStates, TOL[dtype], 'finalStates');
      });
    }
  }

  it('CUDA gradients match CPU gradients (float32 and bfloat16)', async () => {
    const r = rng();
    for (const [, c] of CASES.slice(0, 4)) {
      const pr = makeSsdProblem({ ...c, initialStates: true, dtBias: true }, r);
      const { batch: b, seqlen: l, heads: h, headdim: p, dstate: n } = pr;
      const dy = randnArray(b * l * h * p, r), dfin = randnArray(b * h * p * n, r);
      const cpu32 = await ssdGrads(ssdTensors(pr, 'float32', 'cpu'), dy, dfin, 'float32', 'cpu');
      const cuda32 = await ssdGrads(ssdTensors(pr, 'float32', 'cuda'), dy, dfin, 'float32', 'cuda');
      const pb = roundedTo(pr, 'bfloat16');
      const dyb = Float64Array.from(tensor(dy, [dy.length], { dtype: 'bfloat16' }).dataSync());
      const cpub = await ssdGrads(ssdTensors(pb, 'float64', 'cpu'), dyb, dfin, 'float64', 'cpu');
      const cudab = await ssdGrads(ssdTensors(pr, 'bfloat16', 'cuda'), dy, dfin, 'bfloat16', 'cuda');
      expect(Object.keys(cuda32).sort()).toEqual(Object.keys(cpu32).sort());
      for (const k of Object.keys(cpu32)) {
        expectNoNaN(cuda32[k], `float32 ${k}`);
        // float32: exact FMA on both sides, only the summation order differs; bf16: the kernels
        // round their operands (dt'·x, dy, decay-masked matrices, chunk states) to bf16.
        expectClose(cuda32[k], cpu32[k], 5e-4, `float32 ${k}`);
        expectClose(cudab[k], cpub[k], 5e-2, `bfloat16 ${k}`);
      }
    }
  });

  it('backward is bitwise deterministic', async () => {
    const r = rng();
    const pr = makeSsdProblem({ batch: 2, seqlen: 300, heads: 8, headdim: 64, dstate: 64, groups: 2, z: true, D: 'head', dtBias: true, initialStates: true }, r);
    const dy = randnArray(2 * 300 * 8 * 64, r), dfin = randnArray(2 * 8 * 64 * 64, r);
    for (const dtype of ['bfloat16', 'float32'] as DType[]) {
      const o = ssdTensors(pr, dtype, 'cuda');
      const a = await ssdGrads(o, dy, dfin, dtype, 'cuda');
      const b = await ssdGrads(o, dy, dfin, dtype, 'cuda');
      for (const k of Object.keys(a)) expect(Buffer.from(a[k].buffer).equals(Buffer.from(b[k].buffer)), `${dtype} ${k}`).toBe(true);
    }
  });

  it('packed seqIdx on CUDA equals the reference', async () => {
    const pr = makeSsdProblem({ batch: 2, seqlen: 500, heads: 4, headdim: 32, dstate: 64, groups: 2, seqStarts: [1, 63, 64, 200, 333], z: true, D: 'head' });
    const out = await runCuda(pr, 'float32');
    expectClose(out.y, ssdReference(pr).y, 1e-4, 'y');
    const outb = await runCuda(pr, 'bfloat16');
    expectClose(outb.y, ssdReference(roundedTo(pr, 'bfloat16')).y, TOL.bfloat16, 'bf16 y');
  });

  it('large dt·|A| gives no NaN (forward and backward)', async () => {
    const r = rng();
    const pr = makeSsdProblem({ batch: 1, seqlen: 400, heads: 4, headdim: 32, dstate: 64, groups: 1, dtRange: [2, 8], aRange: [-80, -20], z: true, D: 'head', dtBias: true }, r);
    for (const dtype of ['bfloat16', 'float32'] as DType[]) {
      const o = ssdTensors(pr, dtype, 'cuda');
      const y = await values(ssdChunkScan(o).y);
      expectNoNaN(y, `${dtype} y`);
      expectClose(y, ssdReference(roundedTo(pr, dtype)).y, TOL[dtype], `${dtype} y`);
      const g = await ssdGrads(o, randnArray(y.length, r), new Float64Array(4 * 32 * 64), dtype, 'cuda');
      for (const [k, v] of Object.entries(g)) expectNoNaN(v, `${dtype} ${k}`);
    }
  });

  it('mixed devices are refused with ERR_DEVICE', () => {
    const pr = makeSsdProblem({ batch: 1, seqlen: 4, heads: 2, headdim: 4, dstate: 16, groups: 1 });
    const o = ssdTensors(pr, 'float32', 'cuda');
    let err: (Error & { code?: string }) | undefined;
    try {
      ssdChunkScan({ ...o, A: tensor(pr.A, [2], { dtype: 'float32' }) });
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).toBe('ERR_DEVICE');
    expect(err?.message).toContain('A');
  });

  it('refuses sizes the kernels do not take', async () => {
    const o = ssdTensors(makeSsdProblem({ batch: 1, seqlen: 4, heads: 1, headdim: 130, dstate: 16, groups: 1 }), 'float32', 'cuda');
    expect(() => ssdChunkScan(o)).toThrow(/headdim up to 128/);
  });
});
