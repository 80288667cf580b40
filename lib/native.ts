/**
 * Loads the native addon. Candidates, in order: $STATESPACE_ADDON, build/Release (a local
 * build), then prebuilds/ through node-gyp-build. When none loads, the error lists each
 * candidate, why it failed, and how to fix it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeError } from './errors';

/** Native tensor descriptor; lib/tensor.ts wraps it in a Tensor. */
export interface NativeTensor {
  _h: object | null;
  shape: number[];
  /** Absent when contiguous from offset 0. */
  strides?: number[];
  offset?: number;
  dtype: string;
  device: string;
}

export interface NativeCore {
  fromData(data: Float32Array | Float64Array | Int32Array | Uint16Array, shape: number[], dtype: string, device: string): NativeTensor;
  fill(shape: number[], dtype: string, device: string, kind: number, seed: number, a: number, b: number): NativeTensor;
  copyTo(t: unknown, dtype: string, device: string): NativeTensor;
  /** The handle of a view (the caller knows its metadata). */
  view(t: unknown, shape: number[], strides: number[], offset: number): object;
  release(h: object): void;
  copyInto(dst: unknown, src: unknown): void;
  read(t: unknown, bits: boolean): Promise<ArrayBuffer>;
  readSync(t: unknown, bits: boolean): ArrayBuffer;
  buildInfo(): {
    cpuThreads: number;
    cpuIsa: string;
    cuda: boolean;
    cudaArchs: string;
    cudaRuntime: number;
    cudaDriver: number;
    cudaDevices: number;
    cudaUnavailable: string;
  };
  devices(): Array<Record<string, string | number>>;
  memory(): Record<string, { inUse: number; cached: number }>;
  emptyCache(device: string): void;
  synchronize(device: string): Promise<void>;
  synchronizeSync(device: string): void;
  setPoison(on: boolean): void;
  benchCopy(device: string, bytes: number, iters: number): number;
  eventRecord?(device: string): object;
  eventElapsed?(a: object, b: object): number;
}

/** The package root: the nearest folder above this file whose package.json is statespace's. */
export const packageRoot = (() => {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'statespace') return dir;
    if (path.dirname(dir) === dir) return path.resolve(__dirname, '..', '..');
  }
})();

function load(): NativeCore {
  const tried: string[] = [];
  const candidates: Array<[string, () => string]> = [];
  if (process.env.STATESPACE_ADDON) candidates.push(['$STATESPACE_ADDON', () => process.env.STATESPACE_ADDON as string]);
  candidates.push(['local build', () => path.join(packageRoot, 'build', 'Release', 'statespace.node')]);
  candidates.push(['prebuilt binary', () => require('node-gyp-build').path(packageRoot) as string]);
  for (const [label, locate] of candidates) {
    let file = '';
    try {
      file = locate();
      if (!fs.existsSync(file)) {
        tried.push(`${label}: ${file} does not exist`);
        continue;
      }
      return require(file) as NativeCore;
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0];
      tried.push(`${label}${file ? ` (${file})` : ''}: ${msg}`);
    }
  }
  throw makeError(
    'plain',
    'ERR_ADDON',
    [
      `statespace: no native addon could be loaded for ${process.platform}-${process.arch}, Node ${process.version}. Tried:`,
      ...tried.map((t) => `  - ${t}`),
      'Fix: run `npm rebuild statespace` (needs CMake >= 3.18 and a C++17 compiler; nvcc adds CUDA),',
      'or set STATESPACE_ADDON to the path of a statespace.node built for this platform.',
    ].join('\n'),
  );
}

export const native: NativeCore = load();
