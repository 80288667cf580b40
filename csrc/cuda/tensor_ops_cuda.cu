// CUDA kernels for fills and strided, converting copies.
#include "core/philox.h"
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/types.cuh"
#include "ops/tensor_ops.h"

namespace ss {
namespace {

template <typename T>
__global__ void fill_kernel(T* dst, int64_t n, int kind, uint64_t seed, double a, double b) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double v = kind == static_cast<int>(FillKind::Constant) ? a : a + b * philox_sample(seed, i, kind);
    if constexpr (std::is_same_v<T, int>) {
      dst[i] = static_cast<int>(v);
    } else {
      dst[i] = cuda::from_float<T>(static_cast<float>(v));
    }
  }
}

struct Dims {
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};

template <typename S, typename D>
__global__ void strided_copy_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n, int ndim, Dims dims) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off = 0, rem = i;
    for (int d = ndim - 1; d >= 0; --d) {
      off += (rem % dims.shape[d]) * dims.strides[d];
      rem /= dims.shape[d];
    }
    if constexpr (std::is_same_v<S, D>) {
      dst[i] = src[off];
    } else if constexpr (std::is_same_v<D, int>) {
      dst[i] = static_cast<int>(cuda::to_float(src[off]));
    } else {
      dst[i] = cuda::from_float<D>(cuda::to_float(src[off]));
    }
  }
}

int grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  return static_cast<int>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

}  // namespace

void fill_cuda(const FillParams& p, void* stream) {
  SS_ANY_SWITCH(p.dtype, T, [&] {
    fill_kernel<T><<<grid_for(p.n, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<T*>(p.dst), p.n, static_cast<int>(p.kind), p.seed, p.a, p.b);
  });
  cuda::check_launch("fill");
}

void strided_copy_cuda(const StridedCopyParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  bool contiguous = true;
  int64_t expect = 1;
  for (int d = p.ndim - 1; d >= 0; --d) {
    if (p.shape[d] != 1 && p.src_strides[d] != expect) contiguous = false;
    expect *= p.shape[d];
  }
  if (contiguous && p.src_dtype == p.dst_dtype) {
    cuda::check(cudaMemcpyAsync(p.dst, p.src, p.n * dtype_size(p.src_dtype), cudaMemcpyDeviceToDevice, st), "copy");
    return;
  }
  Dims dims{};
  for (int d = 0; d < p.ndim; ++d) {
    dims.shape[d] = p.shape[d];
    dims.strides[d] = p.src_strides[d];
  }
  SS_ANY_SWITCH(p.src_dtype, S, [&] {
    SS_ANY_SWITCH(p.dst_dtype, D, [&] {
      strided_copy_kernel<S, D><<<grid_for(p.n, 256), 256, 0, st>>>(static_cast<const S*>(p.src), static_cast<D*>(p.dst),
                                                                   p.n, p.ndim, dims);
    });
  });
  cuda::check_launch("copy");
}

}  // namespace ss
