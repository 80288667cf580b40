// Tensor: a strided view (shape, strides in elements, offset) of a Storage.
// The ops layer validates Tensors and fills plain parameter structs from them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "core/dtype.h"
#include "core/storage.h"

namespace ss {

struct Tensor {
  StoragePtr storage;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements

  bool defined() const { return storage != nullptr; }
  int ndim() const { return static_cast<int>(shape.size()); }
  int64_t size(int i) const { return shape[i < 0 ? i + ndim() : i]; }
  int64_t stride(int i) const { return strides[i < 0 ? i + ndim() : i]; }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  Device device() const { return storage->device(); }
  bool is_contiguous() const;
  void* data() const { return static_cast<char*>(storage->data()) + offset * static_cast<int64_t>(dtype_size(dtype)); }
  template <typename T> T* ptr() const { return static_cast<T*>(data()); }
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);
// A fresh contiguous tensor (contents undefined).
Tensor empty(const std::vector<int64_t>& shape, DType dtype, Device device);

}  // namespace ss
