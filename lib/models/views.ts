/**
 * View helpers the model code needs beyond Tensor's own (reshape, permute, slice): splitting one
 * dimension of a strided view into several, or dropping a size-1 one, without a copy (torch's
 * unflatten and squeeze). The ops copy a
 * strided input to contiguous memory natively where their kernels need it, so the model passes
 * views and never pays a JS-level copy.
 */
import { shapeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';

/** Dimension `dim` of t split into `sizes` (their product must equal it); a view. */
export function unflatten(t: Tensor, dim: number, sizes: readonly number[]): Tensor {
  const d = dim < 0 ? dim + t.ndim : dim;
  return sliceUnflatten(t, d, 0, sizes, d >= 0 && d < t.ndim && sizes.reduce((a, b) => a * b, 1) === t.shape[d]);
}

/**
 * Elements [start, start + Π sizes) of dimension `dim`, that range split into `sizes`: one view
 * (the same as slice then unflatten, with one view made instead of two).
 */
export function sliceUnflatten(t: Tensor, dim: number, start: number, sizes: readonly number[], ok = true): Tensor {
  const d = dim < 0 ? dim + t.ndim : dim;
  const n = sizes.reduce((a, b) => a * b, 1);
  if (!ok || d < 0 || d >= t.ndim || !Number.isInteger(start) || start < 0 || start + n > t.shape[d])
    throw shapeError(`unflatten: cannot take (${sizes.join(', ')}) from ${start} of dimension ${dim} of ${t}`);
  const inner = sizes.map((_, i) => t.strides[d] * sizes.slice(i + 1).reduce((a, b) => a * b, 1));
  return new Tensor({
    _h: native.share(t.live()._h as object),
    shape: [...t.shape.slice(0, d), ...sizes, ...t.shape.slice(d + 1)],
    strides: [...t.strides.slice(0, d), ...inner, ...t.strides.slice(d + 1)],
    offset: t.offset + start * t.strides[d],
    dtype: t.dtype,
    device: t.device,
  });
}

/** t without its size-1 dimension `dim`; a view. */
export function squeeze(t: Tensor, dim: number): Tensor {
  const d = dim < 0 ? dim + t.ndim : dim;
  if (d < 0 || d >= t.ndim || t.shape[d] !== 1) throw shapeError(`squeeze: dimension ${dim} of ${t} is not of size 1`);
  return new Tensor({
    _h: native.share(t.live()._h as object),
    shape: t.shape.filter((_, i) => i !== d),
    strides: t.strides.filter((_, i) => i !== d),
    offset: t.offset,
    dtype: t.dtype,
    device: t.device,
  });
}
