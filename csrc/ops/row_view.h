// Strided rows without a copy: decode steps slice their inputs out of wider projections, so a
// (batch, width) operand is often a view whose rows lie `stride` elements apart. Kernels that
// take a row stride read such views in place instead of after a contiguous copy.
#pragma once
#include <cstdint>
#include "core/tensor.h"

namespace ss {

// The row stride (elements) of t seen as rows of its last dimension, when that dimension is
// contiguous and the leading dimensions collapse into one with a uniform stride >= the row
// length; -1 otherwise. A single row reports its own length.
inline int64_t row_stride(const Tensor& t) {
  if (t.ndim() == 0) return -1;
  const int64_t D = t.shape.back();
  if (D != 1 && t.strides.back() != 1) return -1;
  int64_t stride = -1, expect = -1;
  for (int i = t.ndim() - 2; i >= 0; --i) {
    if (t.shape[i] == 1) continue;
    if (stride < 0) {
      stride = t.strides[i];
      expect = stride * t.shape[i];
    } else {
      if (t.strides[i] != expect) return -1;
      expect *= t.shape[i];
    }
  }
  if (stride < 0) return D;
  return stride >= D ? stride : -1;
}

// The stride (elements) between the batch entries t[b] when each t[b] is a contiguous block and
// the blocks do not overlap; -1 otherwise. A batch of one reports its block's size.
inline int64_t batch_stride(const Tensor& t) {
  if (t.ndim() == 0) return -1;
  int64_t expect = 1;
  for (int i = t.ndim() - 1; i >= 1; --i) {
    if (t.shape[i] != 1 && t.strides[i] != expect) return -1;
    expect *= t.shape[i];
  }
  if (t.shape[0] == 1) return expect;
  return t.strides[0] >= expect ? t.strides[0] : -1;
}

}  // namespace ss
