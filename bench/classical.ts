/**
 * Classical toolkit on the CPU (it has no CUDA path; CUDA devices are skipped):
 * - long convolutions: FFT convolution vs the recurrence for the same LTI system, L = 16384
 *   with 256 channels (depthwise K (256, L) on u (1, 256, L) vs simulate over a batch of 256
 *   SISO sequences), plus the cost of making the kernels (kernel, s4dKernel, s4Kernel);
 * - the Kalman filter: steps per second for state sizes 2, 8, 32, one sequence and a batch.
 * GB/s counts the input and output bytes once (u read, y written).
 */
import { classical, Device, DType, randn, Tensor, tensor } from '../lib/index';
import { copyBandwidth } from './copy';
import { Report } from './report';
import { timeIt } from './timing';

function stableSystem(n: number, dtype: DType) {
  // SISO, A a scaled Gaussian matrix (spectral radius about 0.9)
  const A = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) A[i] = (Math.random() * 2 - 1) * (0.9 / Math.sqrt(n));
  const opts = { dtype };
  return {
    A: tensor(dtype === 'float64' ? A : Float32Array.from(A), [n, n], opts),
    B: randn([n, 1], opts),
    C: randn([1, n], opts),
  };
}

/** Runs one op and releases its outputs (queued work still completes). */
const run1 = (fn: () => Tensor | object) => () => {
  const out = fn();
  for (const t of out instanceof Tensor ? [out] : Object.values(out)) if (t instanceof Tensor) t.dispose();
};

export function run(devices: Device[], report: Report, opts: { quick: boolean }): void {
  if (!devices.includes('cpu')) return;
  const bw = copyBandwidth('cpu');
  const L = opts.quick ? 4096 : 16384;
  const H = opts.quick ? 64 : 256;
  const iters = opts.quick ? 3 : 7;
  for (const dtype of ['float32', 'float64'] as DType[]) {
    const bytes = dtype === 'float32' ? 4 : 8;
    for (const n of [16, 64]) {
      const sys = stableSystem(n, dtype);
      // every channel gets the system's kernel, so both paths compute the same outputs
      const K1 = classical.kernel({ ...sys, L });
      const k1 = K1.dataSync();
      const tiled = new Float64Array(H * L);
      for (let h = 0; h < H; h++) tiled.set(k1, h * L);
      const Kh = tensor(tiled, [H, L], { dtype });
      const uConv = randn([1, H, L], { dtype });
      const uRec = uConv.reshape([H, 1, L]);
      const io = 2 * H * L * bytes;
      const conv = timeIt('cpu', run1(() => classical.convolve(uConv, Kh)), { iters });
      const rec = timeIt('cpu', run1(() => classical.simulate({ ...sys, u: uRec })), { iters });
      const kern = timeIt('cpu', run1(() => classical.kernel({ ...sys, L })), { iters });
      report.add({ case: 'fft convolve', dtype, n, H, L, ms: conv.ms, 'GB/s': io / (conv.ms / 1e3) / 1e9, 'of copy bw': io / (conv.ms / 1e3) / bw });
      report.add({ case: 'recurrent simulate', dtype, n, H, L, ms: rec.ms, 'GB/s': io / (rec.ms / 1e3) / 1e9, 'fft speedup': rec.ms / conv.ms });
      report.add({ case: 'kernel C·A^l·B (once)', dtype, n, H: 1, L, ms: kern.ms });
      [sys.A, sys.B, sys.C, K1, Kh, uConv, uRec].forEach((t) => t.dispose());
    }
    // structured kernels for all H channels
    const n = 32;
    const lam = tensor(Float64Array.from({ length: 2 * n }, (_, i) => (i % 2 ? Math.PI * ((i - 1) / 2) : -0.5)), [n, 2], { dtype });
    const Cc = randn([H, n, 2], { dtype });
    const P = randn([n, 2], { dtype, std: 0.1 });
    const Bc = randn([n, 2], { dtype });
    const dt = tensor(Float64Array.from({ length: H }, (_, h) => 0.001 * Math.exp((h / H) * Math.log(100))), [H], { dtype });
    const s4d = timeIt('cpu', run1(() => classical.s4dKernel({ Lambda: lam, C: Cc, dt, L, conjugate: true })), { iters });
    report.add({ case: 's4dKernel (Vandermonde, ZOH)', dtype, n, H, L, ms: s4d.ms });
    const Hs = Math.min(H, 32);
    const s4 = timeIt('cpu', run1(() => classical.s4Kernel({ Lambda: lam, P, B: Bc, C: Cc.slice(0, 0, Hs), dt: dt.slice(0, 0, Hs), L, conjugate: true })), {
      iters: Math.max(2, iters - 4),
    });
    report.add({ case: 's4Kernel (Cauchy + Woodbury + iDFT)', dtype, n, H: Hs, L, ms: s4.ms });
    [lam, Cc, P, Bc, dt].forEach((t) => t.dispose());
  }
  // Kalman filter throughput
  const T = opts.quick ? 500 : 4000;
  for (const n of [2, 8, 32]) {
    const p = Math.max(1, n / 2);
    for (const batch of [1, 16]) {
      const A = tensor(Float64Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? 0.95 : 0.01)), [n, n]);
      const eye = (d: number, s: number) => tensor(Float64Array.from({ length: d * d }, (_, k) => (k % (d + 1) === 0 ? s : 0)), [d, d]);
      const model = {
        A, C: randn([p, n], { dtype: 'float64' }), Q: eye(n, 0.1), R: eye(p, 0.5), x0: tensor(new Float64Array(n), [n]),
        P0: eye(n, 1), z: randn([batch, T, p], { dtype: 'float64' }),
      };
      const f = timeIt('cpu', run1(() => classical.kalman.filter(model)), { iters: opts.quick ? 3 : 5 });
      const sm = timeIt('cpu', run1(() => classical.kalman.smooth(model)), { iters: opts.quick ? 3 : 5 });
      report.add({ case: 'kalman.filter', dtype: 'float64', n, p, batch, T, ms: f.ms, 'steps/s': (batch * T) / (f.ms / 1e3) });
      report.add({ case: 'kalman.smooth', dtype: 'float64', n, p, batch, T, ms: sm.ms, 'steps/s': (batch * T) / (sm.ms / 1e3) });
      Object.values(model).forEach((t) => t.dispose());
    }
  }
}
