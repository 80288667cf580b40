/** Element types. float16/bfloat16 are read and written from JS as Float32Array (round to nearest even). */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'int32' | 'float64';
export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'int32', 'float64'];

/** What `data()` returns for each dtype. */
export type TensorData = Float32Array | Int32Array | Float64Array;

export function dtypeSize(d: DType): number {
  return d === 'float16' || d === 'bfloat16' ? 2 : d === 'float64' ? 8 : 4;
}

export function isDType(d: unknown): d is DType {
  return typeof d === 'string' && (DTYPES as readonly string[]).includes(d);
}

/** True for the 16-bit float types. */
export function isHalf(d: DType): boolean {
  return d === 'float16' || d === 'bfloat16';
}
