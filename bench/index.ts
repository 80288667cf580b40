/** Benchmark suites behind `statespace bench <suite>`. Each suite adds rows to a Report. */
import { Device } from '../lib/index';
import { Report } from './report';
import * as classical from './classical';
import * as copy from './copy';

export interface Suite {
  describe: string;
  run(devices: Device[], report: Report, opts: { quick: boolean }): void | Promise<void>;
}

export const suites: Record<string, Suite> = {
  copy: { describe: 'device copy bandwidth (the roofline for memory-bound ops)', run: copy.run },
  classical: { describe: 'classical toolkit (CPU): FFT convolution vs recurrence, S4/S4D kernels, Kalman steps/s', run: classical.run },
};
