#include "core/tensor.h"

namespace ss {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expect) return false;
    expect *= shape[i];
  }
  return true;
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> st(shape.size());
  int64_t s = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

Tensor empty(const std::vector<int64_t>& shape, DType dtype, Device device) {
  if (device.is_cuda() && dtype == DType::Float64)
    fail("ERR_DTYPE", ErrorKind::Type, "dtype: float64 tensors exist on the CPU only (for references), not on " + device.str());
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  t.strides = contiguous_strides(shape);
  int64_t n = t.numel();
  t.storage = Storage::create(device, static_cast<size_t>(n) * dtype_size(dtype));
  return t;
}

}  // namespace ss
