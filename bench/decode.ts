/**
 * Decode step of the selective SSM (selectiveStateUpdate): Mamba-1 (dim 5120, dstate 16) and
 * Mamba-2 (2.7B class: heads 80, headdim 64, dstate 128, groups 1) at batch 64 and 256, f32 and
 * bf16 state, bf16 activations, with z, D, dtBias and softplus. The state is read and written
 * once per step, so bytes = 2·|state| + inputs + y; TB/s and the fraction of the measured copy
 * bandwidth say how close the kernel is to the memory roofline. On CUDA the benchmark rotates
 * over several state buffers so that the state never sits in L2 between steps; `ms` (and TB/s)
 * is the kernel's time with steps issued from C++, `ms (JS calls)` the time of steps issued
 * one by one from JS, and `host us/call` what issuing one call costs the JS thread.
 * The Mamba-1 'dtProj' rows compute dt = dt_proj · dt_low_rank inside the step, as the models
 * decode (its weights counted once among the bytes).
 */
import { DType, Device, Tensor, randn, selectiveStateUpdate, synchronizeSync, tidy, zeros } from '../lib/index';
import { native } from '../lib/native';
import { copyBandwidth } from './copy';
import { Report } from './report';
import { timeIt } from './timing';

interface Case {
  form: 'mamba1' | 'mamba2';
  batch: number;
  heads: number;
  headdim: number;
  dstate: number;
  state: DType;
  /** Mamba-1 with dt_proj inside the step (as the models decode): dt is (batch, rank). */
  dtRank?: number;
}

function args(c: Case, device: Device) {
  const dtype: DType = device === 'cpu' ? 'float32' : 'bfloat16';
  const m1 = c.form === 'mamba1';
  const row = m1 ? [c.batch, c.heads] : [c.batch, c.heads, c.headdim];
  return {
    state: randn([...row, c.dstate], { dtype: c.state, device }),
    x: randn(row, { dtype, device }),
    z: randn(row, { dtype, device }),
    dt: randn([c.batch, c.dtRank ?? c.heads], { dtype, device }),
    ...(c.dtRank ? { dtProj: randn([c.heads, c.dtRank], { dtype, device, std: 1 / Math.sqrt(c.dtRank) }) } : {}),
    A: randn(m1 ? [c.heads, c.dstate] : [c.heads], { device, mean: -2, std: 0.5 }),
    B: randn([c.batch, 1, c.dstate], { dtype, device }),
    C: randn([c.batch, 1, c.dstate], { dtype, device }),
    D: randn([c.heads], { device }),
    dtBias: zeros([c.heads], { device }),
    dtSoftplus: true,
  };
}

const nat = native as unknown as { benchSelectiveStateUpdate(o: object, states: Tensor[], iters: number): number };

const bytesOf = (t: Tensor) => t.size * (t.dtype === 'float32' ? 4 : t.dtype === 'float64' ? 8 : 2);

export async function run(devices: Device[], report: Report, opts: { quick: boolean }): Promise<void> {
  for (const device of devices) {
    const cpu = device === 'cpu';
    const batches = cpu ? [1, 8] : opts.quick ? [64] : [64, 256];
    const cases: Case[] = [];
    for (const batch of batches) {
      cases.push({ form: 'mamba1', batch, heads: 5120, headdim: 1, dstate: 16, state: 'float32' });
      if (!cpu)
        for (const state of ['float32', 'bfloat16'] as DType[]) cases.push({ form: 'mamba1', batch, heads: 5120, headdim: 1, dstate: 16, state, dtRank: 160 });
      for (const state of (cpu ? ['float32'] : ['float32', 'bfloat16']) as DType[])
        cases.push({ form: 'mamba2', batch, heads: 80, headdim: 64, dstate: 128, state });
    }
    const bw = copyBandwidth(device);
    for (const c of cases) {
      tidy(() => {
        const a = args(c, device);
        // Rotate over enough state copies that together they exceed the L2 cache (50 MB on an
        // H100): each step then streams its state from DRAM, as in a real decode loop.
        const copies = cpu ? 1 : Math.min(8, Math.ceil((200 << 20) / bytesOf(a.state)));
        const states = [a.state, ...Array.from({ length: copies - 1 }, () => a.state.clone())];
        let k = 0;
        const step = () => selectiveStateUpdate({ ...a, state: states[k++ % copies] }).dispose();
        const t = timeIt(device, step, { batch: cpu ? 1 : 24, iters: cpu ? 5 : 20 });
        // CUDA: the kernel's own time, steps issued from a C++ loop (the JS loop above can be
        // paced by the host when a step takes about as long as issuing it).
        const kernelMs = cpu ? t.ms : nat.benchSelectiveStateUpdate(a, states, 100);
        // Host time to issue one call (argument conversion, launch): when it is not well below
        // `ms`, the device time measured is the host's pace, not the kernel's.
        const n = cpu ? 1 : 200;
        const h0 = process.hrtime.bigint();
        for (let i = 0; i < n; i++) step();
        const hostUs = Number(process.hrtime.bigint() - h0) / 1e3 / n;
        synchronizeSync(device);
        const io = bytesOf(a.x) * 2 /* x, y */ + bytesOf(a.z) + bytesOf(a.dt) + bytesOf(a.B) + bytesOf(a.C) + (a.dtProj ? bytesOf(a.dtProj) : 0);
        const bytes = 2 * bytesOf(a.state) + io;
        const tbs = bytes / (kernelMs / 1e3) / 1e12;
        report.add({
          device,
          form: c.form,
          batch: c.batch,
          shape: c.form === 'mamba1' ? `dim ${c.heads} n ${c.dstate}${c.dtRank ? ` dtProj r${c.dtRank}` : ''}` : `h ${c.heads} p ${c.headdim} n ${c.dstate}`,
          state: c.state,
          ms: kernelMs,
          'ms (JS calls)': t.ms,
          'first ms': t.firstMs,
          'host us/call': hostUs,
          'TB/s': tbs,
          'of copy bw': bytes / (kernelMs / 1e3) / bw,
        });
      });
    }
  }
}
