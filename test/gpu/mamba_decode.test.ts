/**
 * The Mamba-1 batch-1 decode megakernel (ops/mamba_decode, lib/models/mamba.ts decodeStack)
 * against the op-by-op folded step of the same model: logits, greedy choices and the conv/SSM
 * states after several steps (eager first step, then the captured graph); bf16 and f16 weights,
 * f32 and bf16 states, with and without a conv bias. Shapes it does not take fall back (same
 * result as the op-by-op step), and STATESPACE_DECODE_MEGAKERNEL=0 turns it off.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { debugPoison, randn, zeros } from '../../lib/index';
import { normalizeConfig } from '../../lib/models/config';
import { randomModel } from '../../lib/models/load';
import { CausalLM } from '../../lib/models/lm';
import { profileOps } from '../../lib/models/profile';
import { mambaDecodeStack } from '../../lib/ops/mamba_decode';
import { Tensor } from '../../lib/tensor';
import { describeGpu, expectNoNaN, hasCuda, relErr } from '../helpers';

beforeAll(() => {
  if (hasCuda) debugPoison(true);
});
afterAll(() => {
  if (hasCuda) debugPoison(false);
});

type Dt = 'bfloat16' | 'float16';
interface Case {
  name: string;
  cfg: Record<string, unknown>;
  dtype: Dt;
  stateDtype: 'float32' | 'bfloat16';
  /** Whether the megakernel takes the shape (else both runs take the op-by-op step). */
  fused: boolean;
}

const mamba = (o: Record<string, unknown>) => ({ architectures: ['MambaForCausalLM'], ...o });
const cases: Case[] = [
  { name: 'small, bf16, f32 state', cfg: mamba({ vocab_size: 97, hidden_size: 200, num_hidden_layers: 3, state_size: 16, time_step_rank: 16 }), dtype: 'bfloat16', stateDtype: 'float32', fused: true },
  { name: 'small, bf16, bf16 state, conv 3 without bias', cfg: mamba({ vocab_size: 97, hidden_size: 200, num_hidden_layers: 3, state_size: 16, time_step_rank: 16, conv_kernel: 3, use_conv_bias: false }), dtype: 'bfloat16', stateDtype: 'bfloat16', fused: true },
  { name: 'small, f16, dstate 8, rank 24', cfg: mamba({ vocab_size: 97, hidden_size: 136, num_hidden_layers: 2, state_size: 8, time_step_rank: 24 }), dtype: 'float16', stateDtype: 'float32', fused: true },
  { name: '130m-like (4 layers), bf16, f32 state', cfg: mamba({ vocab_size: 1000, hidden_size: 768, num_hidden_layers: 4, state_size: 16 }), dtype: 'bfloat16', stateDtype: 'float32', fused: true },
  { name: '130m-like (4 layers), f16, bf16 state', cfg: mamba({ vocab_size: 1000, hidden_size: 768, num_hidden_layers: 4, state_size: 16 }), dtype: 'float16', stateDtype: 'bfloat16', fused: true },
  { name: '2.8b-like rows (2 layers), bf16, f32 state', cfg: mamba({ vocab_size: 512, hidden_size: 2560, num_hidden_layers: 2, state_size: 16 }), dtype: 'bfloat16', stateDtype: 'float32', fused: true },
  // dt rank 13: not a whole number of 16-byte vectors, so the megakernel declines
  { name: 'rank 13 (declined)', cfg: mamba({ vocab_size: 97, hidden_size: 200, num_hidden_layers: 3, state_size: 16, time_step_rank: 13 }), dtype: 'bfloat16', stateDtype: 'float32', fused: false },
];

interface Run {
  rows: Float32Array[];
  /** The last step's choice: the greedy step's id (greedyLast) or its logits' argmax, with those logits. */
  greedy: number;
  lastRow: Float32Array | null;
  conv: Float32Array[];
  ssm: Float32Array[];
  ops: string[];
}

const STEPS = 6;

const argmaxOf = (r: Float32Array) => r.indexOf(Math.max(...r));

async function runModel(c: Case, env: Record<string, string>, prompt: Int32Array, fed: number[], greedyLast: boolean): Promise<Run> {
  const m: CausalLM = await randomModel(normalizeConfig(c.cfg, c.name), { device: 'cuda', dtype: c.dtype, maxBatch: 2, seed: 11, stateDtype: c.stateDtype });
  Object.assign(process.env, env);
  try {
    await m.prefill(prompt, 0);
    const rows: Float32Array[] = [];
    // the first step eagerly without graphs (profiled: which ops ran), the second eagerly while
    // capturing the graph, the rest replay it
    m.useCudaGraphs = false;
    const p = await profileOps('cuda', () => m.step(Int32Array.of(fed[0])));
    m.useCudaGraphs = true;
    rows.push(Float32Array.from(p.result[0]));
    for (let s = 1; s < STEPS; s++) rows.push(Float32Array.from((await m.step(Int32Array.of(fed[s])))[0]));
    let greedy: number;
    let lastRow: Float32Array | null = null;
    if (greedyLast) {
      greedy = (await m.stepGreedy(Int32Array.of(fed[STEPS])))[0]; // the greedy graph (argmax in the LM head)
    } else {
      lastRow = Float32Array.from((await m.step(Int32Array.of(fed[STEPS])))[0]);
      greedy = argmaxOf(lastRow);
    }
    // the states of slot 0 after all steps
    const cache = (m as unknown as { cache: { conv: Tensor[]; ssm: Tensor[] } }).cache;
    const conv: Float32Array[] = [];
    const ssm: Float32Array[] = [];
    for (let l = 0; l < cache.conv.length; l++) {
      const cv = cache.conv[l].slice(0, 0, 1);
      const sv = cache.ssm[l].slice(0, 0, 1);
      conv.push(Float32Array.from((await cv.data()) as Float32Array));
      ssm.push(Float32Array.from((await sv.data()) as Float32Array));
      cv.dispose();
      sv.dispose();
    }
    expect(m.useCudaGraphs, m.cudaGraphError ?? '').toBe(true);
    return { rows, greedy, lastRow, conv, ssm, ops: Object.keys(p.ops) };
  } finally {
    for (const k of Object.keys(env)) delete process.env[k];
    m.dispose();
  }
}

describeGpu('Mamba-1 batch-1 decode megakernel', () => {
  for (const c of cases) {
    it(`${c.name}: logits, greedy choice and states equal the op-by-op step`, async () => {
      const V = c.cfg.vocab_size as number;
      const prompt = Int32Array.from({ length: 5 }, () => Math.floor(Math.random() * V));
      const fed = Array.from({ length: STEPS + 1 }, () => Math.floor(Math.random() * V)); // the same tokens for both runs
      const mega = await runModel(c, {}, prompt, fed, true);
      const ref = await runModel(c, { STATESPACE_DECODE_MEGAKERNEL: '0' }, prompt, fed, false);
      // which path ran: the megakernel replaces every per-layer op
      const ranMega = mega.ops.some((k) => k.startsWith('mambaDecodeStack')) && !mega.ops.some((k) => k.startsWith('linearConvUpdate'));
      expect(ranMega, `${c.name}: megakernel ran (ops: ${mega.ops.join('; ')})`).toBe(c.fused);
      expect(ref.ops.some((k) => k.startsWith('linearConvUpdate')), `${c.name}: switch off -> op by op`).toBe(true);
      const tol = c.fused ? 2e-2 : 1e-6;
      for (let s = 0; s < STEPS; s++) {
        expectNoNaN(mega.rows[s], `${c.name} step ${s}`);
        const e = relErr(mega.rows[s], ref.rows[s]);
        expect(e, `${c.name} step ${s}: logits rel err ${e}`).toBeLessThan(tol);
      }
      for (let l = 0; l < ref.conv.length; l++) {
        expectNoNaN(mega.conv[l], `${c.name} conv state ${l}`);
        expectNoNaN(mega.ssm[l], `${c.name} ssm state ${l}`);
        expect(relErr(mega.conv[l], ref.conv[l]), `${c.name} conv state ${l}`).toBeLessThan(tol);
        expect(relErr(mega.ssm[l], ref.ssm[l]), `${c.name} ssm state ${l}`).toBeLessThan(tol);
      }
      // every step's argmax, and the greedy step's choice, agree where the op-by-op logits are decided
      const decided = (r: Float32Array) => {
        const sorted = Array.from(r).sort((a, b) => b - a);
        return sorted[0] - sorted[1] > 0.05 * Math.max(...Array.from(r, Math.abs));
      };
      for (let s = 0; s < STEPS; s++) if (decided(ref.rows[s])) expect(argmaxOf(mega.rows[s]), `${c.name} step ${s}: argmax`).toBe(argmaxOf(ref.rows[s]));
      expect(Number.isInteger(mega.greedy) && mega.greedy >= 0 && mega.greedy < V, `${c.name}: greedy id ${mega.greedy}`).toBe(true);
      if (decided(ref.lastRow as Float32Array)) expect(mega.greedy, `${c.name}: greedy step`).toBe(ref.greedy);
    });
  }

  it('declines what it does not take (nothing written) and follows the switch', async () => {
    const H = 64, I = 128, N = 16, W = 4;
    const mk = (R: number) => {
      const t = (shape: number[], dtype: 'bfloat16' | 'float32' = 'bfloat16', std = 0.1) => randn(shape, { dtype, device: 'cuda', std });
      return {
        h: randn([1, H], { device: 'cuda' }),
        normWeight: [t([H])],
        inProj: [t([2 * I, H])],
        convWeight: [t([I, W])],
        convState: [zeros([1, I, W - 1], { dtype: 'bfloat16', device: 'cuda' })],
        xProj: [t([R + 2 * N, I])],
        dtProj: [t([I, R])],
        dtBias: [t([I], 'float32')],
        A: [t([I, N], 'float32')],
        ssmState: [zeros([1, I, N], { device: 'cuda' })],
        outProj: [t([H, I])],
        eps: 1e-5,
      };
    };
    const bad = mk(13);
    const before = Float32Array.from((await bad.h.data()) as Float32Array);
    expect(mambaDecodeStack(bad)).toBe(false);
    expect(Array.from((await bad.h.data()) as Float32Array)).toEqual(Array.from(before));
    const good = mk(16);
    process.env.STATESPACE_DECODE_MEGAKERNEL = '0';
    try {
      expect(mambaDecodeStack(good)).toBe(false);
    } finally {
      delete process.env.STATESPACE_DECODE_MEGAKERNEL;
    }
    expect(mambaDecodeStack(good)).toBe(true);
    const h = (await good.h.data()) as Float32Array;
    expectNoNaN(h, 'h');
    for (const o of [bad, good]) for (const v of Object.values(o)) for (const t of Array.isArray(v) ? v : [v]) if (t instanceof Tensor) t.dispose();
  });
});
