/**
 * Token choice at the end of a decode step: argmax and sampleTokens over rows of a 50280-token
 * vocabulary (the Mamba checkpoints' LM head), at batch 1 and 64, bf16 and f32 logits, under the
 * filters a chat server uses (temperature alone, top-k 50, top-p 0.95, both). On CUDA each row
 * is replayed from a CUDA graph of GRAPH_CALLS calls: the kernel's own time, as inside a captured
 * decode step. The logits are N(0, 3²) (a trained model's spread: top-p keeps thousands of tokens
 * and bf16 rows hold long runs of tied values) and, in bf16, N(0, 0.05²) (an untrained model's
 * nearly flat rows, the random-weight models of bench generate: most tokens share their leading
 * key bits, the worst case for the kernel's histograms).
 * STATESPACE_BENCH_SAMPLE_ROWS=1,64 picks the batch sizes.
 */
import { DType, Device, Tensor, argmax, captureGraph, randn, sampleTokens, tensor, tidy } from '../lib/index';
import { Report } from './report';
import { timeIt } from './timing';

const GRAPH_CALLS = 10;
const VOCAB = 50280;

const FILTERS: Array<{ name: string; topK: number; topP: number }> = [
  { name: 'argmax', topK: -1, topP: 1 },
  { name: 'T 0.8', topK: 0, topP: 1 },
  { name: 'T 0.8, top-k 50', topK: 50, topP: 1 },
  { name: 'T 0.8, top-p 0.95', topK: 0, topP: 0.95 },
  { name: 'T 0.8, top-k 50, top-p 0.9', topK: 50, topP: 0.9 },
];

function bench(device: Device, report: Report, dtype: DType, rows: number, std: number) {
  tidy(() => {
    const logits = randn([rows, VOCAB], { device, std }).astype(dtype);
    for (const f of FILTERS) {
      const full = (v: number) => tensor(Float32Array.from({ length: rows }, () => v), [rows], { device });
      const params = {
        temperature: full(0.8),
        topK: tensor(Int32Array.from({ length: rows }, () => Math.max(f.topK, 0)), [rows], { dtype: 'int32', device }),
        topP: full(f.topP),
        uniform: tensor(Float32Array.from({ length: rows }, () => Math.random()), [rows], { device }),
      };
      const call = (): Tensor => (f.topK < 0 ? argmax(logits) : sampleTokens({ logits, ...params }));
      let ms: number;
      if (device === 'cpu') {
        ms = timeIt(device, () => call().dispose(), { iters: 5, warmup: 1 }).ms;
      } else {
        const g = captureGraph(device, () => {
          for (let i = 0; i < GRAPH_CALLS; i++) call().dispose();
        });
        try {
          ms = timeIt(device, () => g.replay(), { iters: 15, warmup: 3 }).ms / GRAPH_CALLS;
        } finally {
          g.dispose();
        }
      }
      report.add({ device, rows, vocab: VOCAB, dtype, logits: `N(0, ${std}²)`, choice: f.name, 'us/call': ms * 1e3, 'us/row': (ms * 1e3) / rows });
    }
  });
}

export function run(devices: Device[], report: Report, opts: { quick: boolean }): void {
  const rows = process.env.STATESPACE_BENCH_SAMPLE_ROWS?.split(',').map(Number) ?? [1, 64];
  for (const device of devices) {
    for (const dtype of device === 'cpu' ? (['float32'] as const) : (['bfloat16', 'float32'] as const)) {
      for (const r of device === 'cpu' && opts.quick ? rows.slice(0, 1) : rows) {
        bench(device, report, dtype, r, 3);
        if (dtype === 'bfloat16') bench(device, report, dtype, r, 0.05);
      }
    }
  }
}
