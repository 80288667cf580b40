/** Devices, build information, memory accounting and synchronisation. */
import { Device, normalizeDevice } from './device';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native, packageRoot } from './native';

export interface BuildInfo {
  version: string;
  /** CUDA kernels compiled into this binary. */
  cuda: boolean;
  /** CUDA targets, e.g. "80;90a". */
  cudaArchs: string;
  cudaRuntime: number;
  cudaDriver: number;
  /** Usable CUDA devices. */
  cudaDevices: number;
  /** Why CUDA can't be used here ('' when it can). */
  cudaUnavailable: string;
  cpuThreads: number;
  cpuIsa: string;
}

export function buildInfo(): BuildInfo {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  const version = pkg.version;
  return { version, ...native.buildInfo() };
}

export interface DeviceInfo {
  device: Device;
  name: string;
  threads?: number;
  computeCapability?: string;
  totalMemory?: number;
  freeMemory?: number;
  multiprocessors?: number;
  l2Bytes?: number;
  sharedPerBlock?: number;
  /** Theoretical DRAM bandwidth in bytes/s. */
  peakBandwidth?: number;
}

/** The CPU, then every usable CUDA device. */
export function devices(): DeviceInfo[] {
  return native.devices() as unknown as DeviceInfo[];
}

/** True when at least one CUDA device can be used. */
export function cudaAvailable(): boolean {
  return native.buildInfo().cudaDevices > 0;
}

export interface MemoryInfo {
  /** Bytes held by live tensors. */
  inUse: number;
  /** Bytes kept by the allocator for reuse (CUDA pools). */
  cached: number;
}

/** Memory per device: { cpu: {...}, 'cuda:0': {...} }. */
export function memory(): Record<string, MemoryInfo> {
  return native.memory();
}

/** Returns a CUDA device's cached (free) pool memory to the driver. */
export function emptyCache(device: Device = 'cuda'): void {
  native.emptyCache(normalizeDevice(device));
}

/** Resolves once all work queued on the device so far has finished. */
export function synchronize(device: Device = 'cpu'): Promise<void> {
  return native.synchronize(normalizeDevice(device));
}

/** Blocks until all work queued on the device so far has finished. */
export function synchronizeSync(device: Device = 'cpu'): void {
  native.synchronizeSync(normalizeDevice(device));
}

/**
 * Testing aid: while on, every new tensor's memory starts as 0xFF bytes (NaN in every float
 * dtype), so a test can check that an op wrote every element of its output.
 */
export function debugPoison(on: boolean): void {
  native.setPoison(on);
}
