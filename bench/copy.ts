/**
 * Device copy bandwidth: the ceiling every other benchmark reports against.
 * CUDA: device-to-device cudaMemcpyAsync of 256 MiB; CPU: threaded memcpy of 64 MiB.
 * Bytes counted = bytes read + bytes written.
 */
import { Device } from '../lib/index';
import { native } from '../lib/native';
import { Report } from './report';

const cache = new Map<string, number>();

/** Measured copy bandwidth of a device in bytes/s (measured once per process). */
export function copyBandwidth(device: Device): number {
  const key = device === 'cuda' ? 'cuda:0' : device;
  let bw = cache.get(key);
  if (bw === undefined) {
    const bytes = key === 'cpu' ? 64 << 20 : 256 << 20;
    const ms = native.benchCopy(key, bytes, key === 'cpu' ? 10 : 50);
    bw = (2 * bytes) / (ms / 1e3);
    cache.set(key, bw);
  }
  return bw;
}

export function run(devices: Device[], report: Report): void {
  for (const device of devices) {
    for (const mib of device === 'cpu' ? [16, 64] : [64, 256, 1024]) {
      const bytes = mib << 20;
      const ms = native.benchCopy(device, bytes, device === 'cpu' ? 10 : 50);
      const gbs = (2 * bytes) / (ms / 1e3) / 1e9;
      if (mib === (device === 'cpu' ? 64 : 256)) cache.set(device === 'cuda' ? 'cuda:0' : device, gbs * 1e9);
      report.add({ device, 'size MiB': mib, ms, 'GB/s (read+write)': gbs });
    }
  }
}
