/** Benchmark suites behind `statespace bench <suite>`. Each suite adds rows to a Report. */
import { Device } from '../lib/index';
import { Report } from './report';
import * as classical from './classical';
import * as copy from './copy';
import * as selectiveScan from './selective_scan';
import * as ssd from './ssd';
import * as conv1d from './conv1d';
import * as decode from './decode';
import * as gemm from './dense';
import * as prefillOps from './prefill_ops';
import * as sample from './sample';

export interface Suite {
  describe: string;
  run(devices: Device[], report: Report, opts: { quick: boolean }): void | Promise<void>;
}

export const suites: Record<string, Suite> = {
  copy: { describe: 'device copy bandwidth (the roofline for memory-bound ops)', run: copy.run },
  'selective-scan': { describe: 'Mamba-1 selective scan forward and backward', run: selectiveScan.run },
  ssd: { describe: 'Mamba-2 SSD chunked scan, forward and forward+backward', run: ssd.run },
  classical: { describe: 'classical toolkit (CPU): FFT convolution vs recurrence, S4/S4D kernels, Kalman steps/s', run: classical.run },
  conv1d: { describe: 'causal conv1d: prefill forward/backward, decode update', run: conv1d.run },
  gemm: { describe: 'linear-layer GEMMs of the 2.7B-class models (cuBLAS, builtin, CPU)', run: gemm.run },
  'prefill-ops': { describe: 'memory-bound ops of one prefill layer at model shapes (conv, norms, state copy)', run: prefillOps.run },
  sample: { describe: 'token choice of a decode step: argmax and sampleTokens (temperature, top-k, top-p) over a 50280-token vocabulary', run: sample.run },
  decode: { describe: 'selectiveStateUpdate decode step, Mamba-1 and Mamba-2 forms (TB/s)', run: decode.run },
  generate: {
    describe: 'Mamba / Mamba-2 generation with random weights: prefill 2048, decode at batch 1 and 64',
    run: async (devices, report, opts) => (await import('./generate')).run(devices, report, opts),
  },
};
