/**
 * Causal conv1d: prefill forward and backward (batch 4, dim 5120, seqlen 2048, width 4, SiLU,
 * bf16 on CUDA; a smaller f32 case on the CPU) and the decode update (batch 64, dim 5120).
 * GB/s counts the bytes that must move (x, y, weights; plus dy, dx for the backward).
 */
import { DType, Device, causalConv1d, causalConv1dBackward, causalConv1dUpdate, randn, tidy } from '../lib/index';
import { copyBandwidth } from './copy';
import { Report } from './report';
import { timeIt } from './timing';

export async function run(devices: Device[], report: Report, opts: { quick: boolean }): Promise<void> {
  for (const device of devices) {
    const cpu = device === 'cpu';
    const dtype: DType = cpu ? 'float32' : 'bfloat16';
    const el = cpu ? 4 : 2;
    const [batch, dim, seqlen, width] = cpu ? [1, 1536, opts.quick ? 512 : 2048, 4] : [4, 5120, 2048, 4];
    const bw = copyBandwidth(device);
    const row = (what: string, shape: string, ms: number, firstMs: number, bytes: number) =>
      report.add({ device, op: what, shape, dtype, ms, 'first ms': firstMs, 'GB/s': bytes / (ms / 1e3) / 1e9, 'of copy bw': bytes / (ms / 1e3) / bw });
    tidy(() => {
      const x = randn([batch, dim, seqlen], { dtype, device });
      const w = randn([dim, width], { device });
      const b = randn([dim], { device });
      const n = batch * dim * seqlen;
      const shape = `${batch}x${dim}x${seqlen} w${width}`;
      const it = { batch: cpu ? 1 : 5, iters: cpu ? 5 : 15 };
      const f = timeIt(device, () => causalConv1d({ x, weight: w, bias: b, activation: 'silu' }).y.dispose(), it);
      row('forward', shape, f.ms, f.firstMs, 2 * n * el);
      const dy = randn([batch, dim, seqlen], { dtype, device });
      const g = timeIt(device, () => {
        const r = causalConv1dBackward({ x, weight: w, bias: b, activation: 'silu', dy });
        r.dx.dispose();
        r.dweight.dispose();
        r.dbias?.dispose();
      }, it);
      row('backward', shape, g.ms, g.firstMs, 3 * n * el);
    });
    tidy(() => {
      const ub = cpu ? 1 : 64, d = 5120;
      const state = randn([ub, d, width - 1], { dtype, device });
      const xt = randn([ub, d], { dtype, device });
      const w = randn([d, width], { device });
      const b = randn([d], { device });
      const u = timeIt(device, () => causalConv1dUpdate({ x: xt, convState: state, weight: w, bias: b, activation: 'silu' }).dispose(), { batch: cpu ? 5 : 20, iters: 15 });
      row('update (decode)', `${ub}x${d} w${width}`, u.ms, u.firstMs, (2 * ub * d * (width - 1) + 2 * ub * d) * el + d * (width + 1) * 4);
    });
  }
}
