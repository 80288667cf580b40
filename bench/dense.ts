/**
 * GEMMs of the model layers (linear): the in/out projections and LM head of mamba-2.8b and
 * mamba2-2.7b at the token counts of decode (1, 64) and prefill (2048), bf16 on CUDA through
 * cuBLAS and through the builtin tensor-core kernel (STATESPACE_CUBLAS=0), f32 on the CPU.
 * M <= 8 on CUDA always runs statespace's matrix-vector kernel ('gemv'): judge it by GB/s.
 * TFLOP/s = 2·M·N·K / time; GB/s counts the weight, input and output bytes once.
 * 8 < M <= 64 in 16-bit runs cuBLAS where the host has it, else the skinny tensor-core GEMM
 * ('skinny', csrc/cuda/skinny_gemm_cuda.cu); the same rows with STATESPACE_SKINNY=1 give it beside
 * cuBLAS. cuBLAS at 8 < M <= 64 is cuBLASLt with a timed algorithm choice (csrc/cuda/cublaslt_gemm.cu):
 * the M = 64 rows again as 'cublas GemmEx' (cublasGemmEx, the heuristic's first pick,
 * STATESPACE_CUBLASLT=0).
 * The decode rows (M <= 64) are timed twice: called from JS ('gemv', 'skinny': a call's host
 * dispatch, ~15 us on a busy host, can exceed a small kernel's time, so the GPU waits between
 * kernels) and replayed from a CUDA graph of GRAPH_CALLS calls ('... graph': the kernels back to
 * back, as in a decode step's graph) — the second is the kernel's own time; '... cold graph' replays
 * the same calls cycling over copies of the weight that add up to 200 MB, so that every call reads
 * its weight from DRAM, as a decode step does (the plain graph row re-reads one weight, partly from L2).
 * STATESPACE_BENCH_LAYERS=x_proj,out_proj keeps the layers whose name contains one of the words
 * (shorter runs, e.g. one kernel under two settings).
 */
import { DType, Device, captureGraph, linear, linearBackend, randn, tidy } from '../lib/index';
import { copyBandwidth } from './copy';
import { Report } from './report';
import { timeIt } from './timing';

const GRAPH_CALLS = 10;
// Weight bytes a 'cold graph' row cycles through: four times the H100's 50 MB L2.
const COLD_BYTES = 200e6;

const LAYERS: Array<[string, number, number]> = [
  // name, out (N), in (K)
  ['mamba-2.8b in_proj', 10240, 2560],
  ['mamba-2.8b out_proj', 2560, 5120],
  ['mamba-2.8b x_proj', 192, 5120],
  ['mamba2-2.7b in_proj', 10576, 2560],
  ['lm_head (vocab 50280)', 50280, 2560],
];

function bench(device: Device, report: Report, dtype: DType, tokens: number[], layers: typeof LAYERS, backend: string, bw: number) {
  for (const [name, N, K] of layers) {
    for (const M of tokens) {
      tidy(() => {
        const x = randn([M, K], { dtype, device });
        const w = randn([N, K], { dtype, device, std: 0.02 });
        const t = timeIt(device, () => linear({ x, weight: w }).dispose(), { batch: device === 'cpu' ? 1 : 5, iters: device === 'cpu' ? 3 : 15, warmup: device === 'cpu' ? 1 : 3 });
        const el = dtype === 'float32' ? 4 : 2;
        const bytes = (M * K + N * K + M * N) * el;
        const add = (kind: string, ms: number) =>
          report.add({
            device,
            backend: kind,
            layer: name,
            'M x N x K': `${M}x${N}x${K}`,
            dtype,
            ms,
            'TFLOP/s': (2 * M * N * K) / (ms / 1e3) / 1e12,
            'GB/s': bytes / (ms / 1e3) / 1e9,
            'of copy bw': bytes / (ms / 1e3) / bw,
          });
        const gemv = device !== 'cpu' && M <= 8;
        const want = process.env.STATESPACE_SKINNY;
        const skinny = device !== 'cpu' && M > 8 && M <= 64 && dtype !== 'float32' && K % 8 === 0 && want !== '0' && (want === '1' || backend === 'builtin');
        const kind = gemv ? 'gemv' : skinny ? 'skinny' : backend;
        add(kind, t.ms);
        if (device !== 'cpu' && M <= 64) {
          const g = captureGraph(device, () => {
            for (let i = 0; i < GRAPH_CALLS; i++) linear({ x, weight: w }).dispose();
          });
          try {
            add(`${kind} graph`, timeIt(device, () => g.replay(), { iters: 15, warmup: 3 }).ms / GRAPH_CALLS);
          } finally {
            g.dispose();
          }
          // The same calls over enough copies of the weight that none is still in L2 when it is
          // read again (a decode step reads every weight cold); a weight of 200 MB or more (the
          // LM head) is read cold by the plain row already.
          const copies = Math.ceil(COLD_BYTES / (N * K * el)), calls = Math.max(GRAPH_CALLS, copies);
          if (copies > 1) {
            const ws = [w, ...Array.from({ length: copies - 1 }, () => randn([N, K], { dtype, device, std: 0.02 }))];
            const gc = captureGraph(device, () => {
              for (let i = 0; i < calls; i++) linear({ x, weight: ws[i % copies] }).dispose();
            });
            try {
              add(`${kind} cold graph`, timeIt(device, () => gc.replay(), { iters: 15, warmup: 3 }).ms / calls);
            } finally {
              gc.dispose();
            }
          }
        }
      });
    }
  }
}

/** Runs fn with the environment variables set as given, then restores them. */
function withEnv(vars: Record<string, string>, fn: () => void): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** The layers of `list` that STATESPACE_BENCH_LAYERS keeps (all without it). */
function picked(list: typeof LAYERS): typeof LAYERS {
  const words = process.env.STATESPACE_BENCH_LAYERS?.split(',').filter((w) => w.length > 0);
  return words?.length ? list.filter(([name]) => words.some((w) => name.includes(w))) : list;
}

export async function run(devices: Device[], report: Report, opts: { quick: boolean }): Promise<void> {
  const all = picked(LAYERS), first2 = picked(LAYERS.slice(0, 2)), first = picked(LAYERS.slice(0, 1));
  for (const device of devices) {
    const bw = copyBandwidth(device);
    if (device === 'cpu') {
      bench(device, report, 'float32', opts.quick ? [1, 64] : [1, 64, 512], first2, 'cpu', bw);
      continue;
    }
    const tokens = opts.quick ? [1, 2048] : [1, 64, 2048];
    bench(device, report, 'bfloat16', tokens, all, linearBackend(device).split(' ')[0], bw);
    if (linearBackend(device).startsWith('cublas')) {
      withEnv({ STATESPACE_CUBLASLT: '0' }, () => bench(device, report, 'bfloat16', [64], all, 'cublas GemmEx', bw));
    }
    // Batched decode through the skinny GEMM although cuBLAS is there, for comparison.
    const savedSkinny = process.env.STATESPACE_SKINNY;
    process.env.STATESPACE_SKINNY = '1';
    try {
      bench(device, report, 'bfloat16', [64], all, linearBackend(device).split(' ')[0], bw);
    } finally {
      if (savedSkinny === undefined) delete process.env.STATESPACE_SKINNY;
      else process.env.STATESPACE_SKINNY = savedSkinny;
    }
    const saved = process.env.STATESPACE_CUBLAS;
    process.env.STATESPACE_CUBLAS = '0';
    try {
      bench(device, report, 'bfloat16', tokens, first2, 'builtin', bw);
      bench(device, report, 'float32', [64, 2048], first, 'builtin', bw);
    } finally {
      if (saved === undefined) delete process.env.STATESPACE_CUBLAS;
      else process.env.STATESPACE_CUBLAS = saved;
    }
    bench(device, report, 'float32', [64, 2048], first, linearBackend(device).split(' ')[0], bw);
  }
}
