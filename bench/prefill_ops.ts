/**
 * `statespace bench prefill-ops`: the memory-bound ops of one prefill layer alone, at the shapes
 * of mamba-2.8b / mamba2-2.7b with 2048 tokens (bf16 on CUDA; 256 tokens in f32 on the CPU), with
 * the views the models hand them: Mamba-2's conv reads a channels-last slice of in_proj's output
 * and its gated norm a column slice (z); the decode cache may hold bfloat16 states, filled from
 * the scans' float32 ones. GB/s counts the bytes each op must move; compare with the copy
 * bandwidth. (The GEMMs are in `bench gemm`, the scans in `bench selective-scan` / `bench ssd`.)
 */
import { Device, causalConv1d, copyInto, gatedRmsNorm, randn, rmsNorm, tidy, zeros } from '../lib/index';
import { copyBandwidth } from './copy';
import { Report } from './report';
import { timeIt } from './timing';

export function run(devices: Device[], report: Report, opts: { quick: boolean }): void {
  for (const device of devices) {
    const cpu = device === 'cpu';
    const dtype = cpu ? 'float32' : 'bfloat16';
    const el = cpu ? 4 : 2;
    const L = cpu || opts.quick ? 256 : 2048;
    const bw = copyBandwidth(device);
    const it = { iters: cpu ? 3 : 20, batch: cpu ? 1 : 10 };
    tidy(() => {
      const o = { dtype, device } as const;
      const proj = randn([1, L, 10576], o); // Mamba-2 in_proj output: z | xBC | dt
      const C = 5376;
      const cases: Array<[string, string, number, () => void]> = [
        ['conv1d, contiguous rows (Mamba-1)', `1x5120x${L} w4`, 2 * 5120 * L * el, (() => {
          const x = randn([1, 5120, L], o), w = randn([5120, 4], o), b = randn([5120], o);
          return () => {
            const r = causalConv1d({ x, weight: w, bias: b, activation: 'silu', returnFinalStates: true });
            r.y.dispose();
            r.finalStates?.dispose();
          };
        })()],
        ['conv1d, channels-last slice (Mamba-2)', `1x${C}x${L} w4`, 2 * C * L * el, (() => {
          const x = proj.slice(2, 5120, 5120 + C).transpose(1, 2), w = randn([C, 4], o), b = randn([C], o);
          return () => {
            const r = causalConv1d({ x, weight: w, bias: b, activation: 'silu', returnFinalStates: true });
            r.y.dispose();
            r.finalStates?.dispose();
          };
        })()],
        ['gatedRmsNorm, z a column slice', `${L}x5120`, 3 * L * 5120 * el, (() => {
          const y = randn([1, L, 5120], o), w = randn([5120], o), z = proj.slice(2, 0, 5120);
          return () => gatedRmsNorm({ x: y, z, weight: w, eps: 1e-5, groupSize: 5120 }).dispose();
        })()],
        ['rmsNorm + float32 residual', `${L}x2560`, L * 2560 * (2 * el + 8), (() => {
          const h = randn([1, L, 2560], o), res = randn([1, L, 2560], { device }), w = randn([2560], o);
          return () => {
            const r = rmsNorm({ x: h, residual: res, weight: w, eps: 1e-5 });
            r.y.dispose();
            r.residualOut?.dispose();
          };
        })()],
        ['copyInto bfloat16 <- float32 (SSM state)', '1x80x64x128', 80 * 64 * 128 * 6, (() => {
          const s32 = randn([1, 80, 64, 128], { device }), s16 = zeros([1, 80, 64, 128], { dtype: 'bfloat16', device });
          return () => copyInto(s16, s32);
        })()],
      ];
      for (const [op, shape, bytes, fn] of cases) {
        const t = timeIt(device, fn, it);
        report.add({ device, op, shape, dtype, 'us': t.ms * 1e3, 'first us': t.firstMs * 1e3, 'GB/s': bytes / (t.ms / 1e3) / 1e9, 'of copy bw': bytes / (t.ms / 1e3) / bw });
      }
    });
  }
}
