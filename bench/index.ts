/** Benchmark suites behind `statespace bench <suite>`. Each suite adds rows to a Report. */
import { Device } from '../lib/index';
import { Report } from './report';
import * as copy from './copy';

export interface Suite {
  describe: string;
  run(devices: Device[], report: Report, opts: { quick: boolean }): void | Promise<void>;
}

export const suites: Record<string, Suite> = {
  copy: { describe: 'device copy bandwidth (the roofline for memory-bound ops)', run: copy.run },
  generate: {
    describe: 'Mamba / Mamba-2 generation with random weights: prefill 2048, decode at batch 1 and 64',
    run: async (devices, report, opts) => (await import('./generate')).run(devices, report, opts),
  },
};
