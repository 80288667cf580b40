/**
 * `statespace bench ssd`: the Mamba-2 SSD chunked scan.
 * CUDA, bf16: batch 4 × seqlen 4096, batch 16 × seqlen 512 and batch 1 × seqlen 2048 (a prefill),
 * heads 80, headdim 64, dstate 128, groups 1, chunkSize 256 (a 2.7B-class layer), forward and
 * forward+backward.
 * CPU, float32: batch 1, seqlen 2048, heads 24, headdim 64, dstate 128 (a 130M-class layer).
 *
 * FLOPs: the chunked algorithm at the chunk length the backend runs, causal halves counted once:
 *   2·b·L·h·(Q·P/2 + 2·P·N) + 2·b·L·g·Q·N/2, backward counted as 2× the forward at its chunk length.
 * CUDA 16-bit: forward 256-token chunks (chunk-parallel kernels), backward 64; CUDA float32: 32 and
 * 32; CPU: min(chunkSize, 128) both ways.
 * Bytes: what must move at least (inputs read once, outputs written once).
 */
import { DType, Device, Tensor, rand, randn, ssdChunkScan, ssdChunkScanBackward, synchronizeSync, tidy } from '../lib/index';
import { ssdLastWorkspaceBytes, SsdChunkScanOptions } from '../lib/ops/ssd';
import { copyBandwidth } from './copy';
import { Report } from './report';
import { timeIt } from './timing';

interface Shape {
  batch: number;
  seqlen: number;
  heads: number;
  headdim: number;
  dstate: number;
  groups: number;
  chunk: number;
}

function inputs(s: Shape, dtype: DType, device: Device): SsdChunkScanOptions {
  const { batch: b, seqlen: l, heads: h, headdim: p, dstate: n, groups: g } = s;
  return {
    x: randn([b, l, h, p], { dtype, device, seed: 1 }),
    z: randn([b, l, h, p], { dtype, device, seed: 2 }),
    dt: rand([b, l, h], { dtype: 'float32', device, seed: 3, low: -4, high: -1 }),
    A: rand([h], { device, seed: 4, low: -8, high: -1 }),
    B: randn([b, l, g, n], { dtype, device, seed: 5, std: 0.5 }),
    C: randn([b, l, g, n], { dtype, device, seed: 6, std: 0.5 }),
    D: randn([h], { device, seed: 7 }),
    dtBias: rand([h], { device, seed: 8, low: -0.5, high: 0.5 }),
    dtSoftplus: true,
    chunkSize: s.chunk,
  };
}

function flops(s: Shape, q: number): number {
  const { batch: b, seqlen: l, heads: h, headdim: p, dstate: n, groups: g } = s;
  return 2 * b * l * h * ((q * p) / 2 + 2 * p * n) + 2 * b * l * g * (q * n) / 2;
}

function bytes(s: Shape, act: number, backward: boolean): number {
  const { batch: b, seqlen: l, heads: h, headdim: p, dstate: n, groups: g } = s;
  const xs = b * l * h * p * act, bc = 2 * b * l * g * n * act, dt = b * l * h * 4;
  const fwd = 3 * xs + bc + dt; // x, z read; y written
  return backward ? fwd + 4 * xs + 2 * bc + 2 * dt : fwd; // + dy read; dx, dz, dB, dC, ddt written
}

function dispose(o: object): void {
  for (const v of Object.values(o)) if (v instanceof Tensor) v.dispose();
}

function bench(report: Report, device: Device, s: Shape, dtype: DType, q: { fwd: number; bwd: number }, quick: boolean): void {
  const o = inputs(s, dtype, device);
  const dy = randn([s.batch, s.seqlen, s.heads, s.headdim], { dtype, device, seed: 9 });
  const iters = device === 'cpu' ? (quick ? 3 : 5) : quick ? 10 : 30;
  const bw = copyBandwidth(device);
  const act = dtype === 'float32' ? 4 : 2;
  const f = flops(s, q.fwd);
  const shape = `${s.batch}x${s.seqlen}x${s.heads}x${s.headdim}, N ${s.dstate}`;
  const fwd = timeIt(device, () => tidy(() => void ssdChunkScan(o)), { iters, warmup: device === 'cpu' ? 1 : 3 });
  const fwdWs = ssdLastWorkspaceBytes().forward;
  const both = timeIt(
    device,
    () =>
      tidy(() => {
        ssdChunkScan(o);
        ssdChunkScanBackward({ ...o, dy });
      }),
    { iters, warmup: device === 'cpu' ? 1 : 3 },
  );
  const bwdWs = ssdLastWorkspaceBytes().backward;
  const row = (what: string, t: { ms: number; firstMs: number }, fl: number, by: number, ws: number) => {
    const r: Record<string, string | number> = {
      device, dtype, shape, what, 'first ms': t.firstMs, ms: t.ms,
      [device === 'cpu' ? 'GFLOP/s' : 'TFLOP/s']: device === 'cpu' ? fl / t.ms / 1e6 : fl / t.ms / 1e9,
      'GB/s': by / t.ms / 1e6, 'of copy bw': by / (t.ms / 1e3) / bw,
    };
    if (device !== 'cpu') r['extra MiB'] = ws / 2 ** 20;
    report.add(r);
  };
  if (device !== 'cpu') {
    // One more call with the kernels' per-stage GPU times on stderr (STATESPACE_SSD_STAGES).
    process.env.STATESPACE_SSD_STAGES = '1';
    console.error(`ssd ${dtype} ${shape}:`);
    tidy(() => {
      ssdChunkScan(o);
      ssdChunkScanBackward({ ...o, dy });
    });
    synchronizeSync(device);
    delete process.env.STATESPACE_SSD_STAGES;
  }
  row('forward', fwd, f, bytes(s, act, false), fwdWs);
  row('fwd+bwd', both, f + 2 * flops(s, q.bwd), bytes(s, act, false) + bytes(s, act, true), Math.max(fwdWs, bwdWs));
  dispose(o);
  dy.dispose();
}

export function run(devices: Device[], report: Report, opts: { quick: boolean }): void {
  const layer = { heads: 80, headdim: 64, dstate: 128, groups: 1, chunk: 256 };
  for (const device of devices) {
    if (device === 'cpu') {
      const s = { batch: 1, seqlen: opts.quick ? 512 : 2048, heads: 24, headdim: 64, dstate: 128, groups: 1, chunk: 256 };
      bench(report, device, s, 'float32', { fwd: 128, bwd: 128 }, opts.quick); // the CPU runs chunks of at most 128 tokens
    } else {
      const half = { fwd: 256, bwd: 64 };
      bench(report, device, { batch: 4, seqlen: 4096, ...layer }, 'bfloat16', half, opts.quick);
      bench(report, device, { batch: 16, seqlen: 512, ...layer }, 'bfloat16', half, opts.quick);
      bench(report, device, { batch: 1, seqlen: 2048, ...layer }, 'bfloat16', half, opts.quick); // a mamba2-2.7b prefill layer
      if (!opts.quick) bench(report, device, { batch: 4, seqlen: 4096, ...layer }, 'float32', { fwd: 32, bwd: 32 }, true);
    }
  }
}
