// Tensor creation, copies between dtypes/devices/layouts, and reads back to the host.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>
#include "core/tensor.h"

namespace ss {

constexpr int kMaxDims = 8;

enum class FillKind : int { Uniform = 0, Normal = 1, Constant = 2 };

// dst[i] = a + b*u (Uniform, u in [0,1)), a + b*z (Normal), or a (Constant); i in [0, n).
struct FillParams {
  void* dst;
  DType dtype;
  int64_t n;
  FillKind kind;
  uint64_t seed;
  double a, b;
};

// Contiguous dst (dst_dtype) <- strided src (src_dtype), converting element types.
struct StridedCopyParams {
  const void* src;
  void* dst;
  DType src_dtype, dst_dtype;
  int ndim;
  int64_t n;
  int64_t shape[kMaxDims];
  int64_t src_strides[kMaxDims];
};

void fill_cpu(const FillParams& p);
void strided_copy_cpu(const StridedCopyParams& p);
void fill_cuda(const FillParams& p, void* stream);
void strided_copy_cuda(const StridedCopyParams& p, void* stream);

Tensor fill(const std::vector<int64_t>& shape, DType dtype, Device device, FillKind kind, uint64_t seed, double a,
            double b);
// A fresh contiguous copy of src in `dtype` on `device`.
Tensor copy_to(const Tensor& src, DType dtype, Device device);
// dst (contiguous, any offset: e.g. one slot of a batched state) <- src (any strides), same shape
// and device, converting the element type. The model scheduler loads and moves state slots with it.
void copy_into(const Tensor& dst, const Tensor& src);
// src itself when already contiguous, else a contiguous copy.
Tensor contiguous(const Tensor& src);

// Host data in: f32 / f64 / i32 values, or raw 16-bit patterns for float16/bfloat16.
enum class HostFormat { F32, F64, I32, Bits16 };
Tensor from_host(const void* data, HostFormat fmt, const std::vector<int64_t>& shape, DType dtype, Device device);

// Copies t to dst: f32 values for half types unless `bits` (raw 16-bit patterns); other dtypes
// as stored. `done` runs on a worker thread once dst is filled, with the error if any.
using ReadDone = std::function<void(std::shared_ptr<const Error>)>;
void read_async(const Tensor& t, void* dst, bool bits, ReadDone done);
size_t read_bytes(const Tensor& t, bool bits);

// Waits until all queued work on d has finished (rethrows a CUDA failure).
void synchronize_async(Device d, std::function<void(std::shared_ptr<const Error>)> done);

}  // namespace ss
