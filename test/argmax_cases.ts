/**
 * argmax cases shared by the CPU and CUDA tests: rows of random values, rows with many exact ties
 * (small integers), a NaN, -Infinity everywhere, and the largest value at either end.
 */
import { expect } from 'vitest';
import { DType, Device, argmax, tensor } from '../lib/index';
import { rng } from './helpers';
import { argmaxRef } from './reference/sampling';

export const ARGMAX_SHAPES: Array<[number, number]> = [
  [1, 1],
  [3, 7],
  [5, 50280], // a vocabulary row (multiple of the vector width)
  [64, 1001], // odd length: scalar path
  [2, 8191],
];

/** Row values of a case (exactly representable in every dtype tested). */
function rows(kind: number, R: number, n: number, r: () => number): Float64Array {
  const v = new Float64Array(R * n);
  for (let i = 0; i < v.length; i++) v[i] = kind === 0 ? Math.round((r() * 2 - 1) * 256) / 64 : Math.floor(r() * 5);
  for (let row = 0; row < R; row++) {
    const at = (i: number) => row * n + i;
    if (row % 4 === 1) v[at(n - 1)] = 1000; // the maximum at the end
    if (row % 4 === 2) v[at(0)] = 1000; // at the start
    if (row % 5 === 3 && n > 2) v[at(Math.floor(n / 2))] = NaN;
    if (row % 7 === 4) for (let i = 0; i < n; i++) v[at(i)] = -Infinity;
  }
  return v;
}

export async function checkArgmax(device: Device, dtype: DType): Promise<void> {
  const r = rng();
  for (const [R, n] of ARGMAX_SHAPES) {
    for (const kind of [0, 1]) {
      const v = rows(kind, R, n, r);
      const x = tensor(Float32Array.from(v), [R, n], { device }).astype(dtype);
      const got = await argmax(x).data();
      expect(Array.from(got), `${device} ${dtype} ${R}x${n} kind ${kind}`).toEqual(Array.from(argmaxRef(v, R, n)));
    }
  }
  // A strided view (copied natively) and a 3-D input: shape x.shape[:-1].
  const v = rows(0, 6, 40, r);
  const x = tensor(Float32Array.from(v), [2, 3, 40], { device }).astype(dtype);
  const y = argmax(x);
  expect(y.shape).toEqual([2, 3]);
  expect(y.dtype).toBe('int32');
  expect(Array.from(await y.data())).toEqual(Array.from(argmaxRef(v, 6, 40)));
  const sl = x.slice(2, 3, 40); // rows of 37 starting at an odd offset
  const ref = argmaxRef(Float64Array.from({ length: 6 * 37 }, (_, i) => v[Math.floor(i / 37) * 40 + 3 + (i % 37)]), 6, 37);
  expect(Array.from(await argmax(sl).data())).toEqual(Array.from(ref));
}
