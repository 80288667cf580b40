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

template <typename S, typename D> __device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<S, D>) {
    return v;
  } else if constexpr (std::is_same_v<D, int>) {
    return static_cast<int>(cuda::to_float(v));
  } else {
    return cuda::from_float<D>(cuda::to_float(v));
  }
}

// Generic gather: element i of the contiguous destination from its strided source offset.
// Index is uint32_t whenever every offset fits (64-bit division is emulated and slow).
template <typename S, typename D, typename Index>
__global__ void strided_copy_kernel(const S* __restrict__ src, D* __restrict__ dst, Index n, int ndim, Dims dims) {
  for (Index i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    Index off = 0, rem = i;
    for (int d = ndim - 1; d >= 0; --d) {
      const Index size = static_cast<Index>(dims.shape[d]);
      off += (rem % size) * static_cast<Index>(dims.strides[d]);
      rem /= size;
    }
    dst[i] = convert<S, D>(src[off]);
  }
}

// Contiguous source, other element type (e.g. a float32 SSM state into a bfloat16 cache): a
// plain elementwise conversion, without the generic gather's per-dimension index arithmetic
// (whose dynamically indexed shape/stride arrays the compiler keeps in local memory).
template <typename S, typename D> __global__ void convert_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = convert<S, D>(src[i]);
}

// Batched transpose: dst[b][r][c] = src[b*sb + r + c*sc] (the source is contiguous along r,
// the destination along c). 32x32 tiles through shared memory keep both sides coalesced.
template <typename S, typename D>
__global__ void transpose_copy_kernel(const S* __restrict__ src, D* __restrict__ dst, uint32_t rows, uint32_t cols,
                                      int64_t sb, int64_t sc) {
  __shared__ S tile[32][33];
  const int64_t b = blockIdx.z;
  const uint32_t r0 = blockIdx.y * 32, c0 = blockIdx.x * 32;
  const S* s = src + b * sb;
  for (uint32_t k = threadIdx.y; k < 32; k += blockDim.y) {
    const uint32_t c = c0 + k, r = r0 + threadIdx.x;
    if (c < cols && r < rows) tile[k][threadIdx.x] = s[r + static_cast<int64_t>(c) * sc];
  }
  __syncthreads();
  D* d = dst + b * static_cast<int64_t>(rows) * cols;
  for (uint32_t k = threadIdx.y; k < 32; k += blockDim.y) {
    const uint32_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) d[static_cast<int64_t>(r) * cols + c] = convert<S, D>(tile[threadIdx.x][k]);
  }
}

// Drops size-1 dimensions and merges neighbours that are contiguous with each other, so most
// copies become 1-3 dimensional.
int collapse_dims(const StridedCopyParams& p, Dims* out) {
  int n = 0;
  for (int d = 0; d < p.ndim; ++d) {
    if (p.shape[d] == 1) continue;
    if (n > 0 && out->strides[n - 1] == p.src_strides[d] * p.shape[d]) {
      out->shape[n - 1] *= p.shape[d];
      out->strides[n - 1] = p.src_strides[d];
      continue;
    }
    out->shape[n] = p.shape[d];
    out->strides[n] = p.src_strides[d];
    ++n;
  }
  return n;
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
  Dims dims{};
  const int nd = collapse_dims(p, &dims);
  if (nd <= 1 && (nd == 0 || dims.strides[0] == 1) && p.src_dtype == p.dst_dtype) {
    cuda::check(cudaMemcpyAsync(p.dst, p.src, p.n * dtype_size(p.src_dtype), cudaMemcpyDeviceToDevice, st), "copy");
    return;
  }
  // Rows with a stride (a column slice, e.g. one part of a fused projection's output): a 2-D
  // memcpy moves whole rows at copy bandwidth, where the generic gather divides per element.
  if (nd == 2 && dims.strides[1] == 1 && dims.strides[0] >= dims.shape[1] && p.src_dtype == p.dst_dtype) {
    const size_t es = dtype_size(p.src_dtype), row = static_cast<size_t>(dims.shape[1]) * es;
    cuda::check(cudaMemcpy2DAsync(p.dst, row, p.src, static_cast<size_t>(dims.strides[0]) * es, row, static_cast<size_t>(dims.shape[0]),
                                  cudaMemcpyDeviceToDevice, st),
                "copy (2-D)");
    return;
  }
  if (nd <= 1 && (nd == 0 || dims.strides[0] == 1)) {
    SS_ANY_SWITCH(p.src_dtype, S, [&] {
      SS_ANY_SWITCH(p.dst_dtype, D, [&] {
        convert_kernel<S, D><<<grid_for(p.n, 256), 256, 0, st>>>(static_cast<const S*>(p.src), static_cast<D*>(p.dst), p.n);
      });
    });
    cuda::check_launch("copy (convert)");
    return;
  }
  int64_t span = 1;  // largest source offset + 1
  for (int d = 0; d < nd; ++d) span += (dims.shape[d] - 1) * dims.strides[d];
  const bool small = p.n < (int64_t{1} << 31) && span < (int64_t{1} << 31);
  // A batched 2-D transpose (source contiguous along the second-to-last dimension)?
  const bool transpose = nd >= 2 && nd <= 3 && dims.strides[nd - 2] == 1 && dims.shape[nd - 1] > 1 &&
                         dims.shape[nd - 2] < 65535 * 32 && dims.shape[nd - 1] < (int64_t{1} << 31) &&
                         (nd == 2 || dims.shape[0] < 65536);
  SS_ANY_SWITCH(p.src_dtype, S, [&] {
    SS_ANY_SWITCH(p.dst_dtype, D, [&] {
      const S* src = static_cast<const S*>(p.src);
      D* dst = static_cast<D*>(p.dst);
      if (transpose) {
        const uint32_t rows = static_cast<uint32_t>(dims.shape[nd - 2]), cols = static_cast<uint32_t>(dims.shape[nd - 1]);
        dim3 grid((cols + 31) / 32, (rows + 31) / 32, nd == 3 ? static_cast<unsigned>(dims.shape[0]) : 1);
        transpose_copy_kernel<S, D><<<grid, dim3(32, 8), 0, st>>>(src, dst, rows, cols, nd == 3 ? dims.strides[0] : 0,
                                                                  dims.strides[nd - 1]);
      } else if (small) {
        strided_copy_kernel<S, D, uint32_t><<<grid_for(p.n, 256), 256, 0, st>>>(src, dst, static_cast<uint32_t>(p.n), nd, dims);
      } else {
        strided_copy_kernel<S, D, int64_t><<<grid_for(p.n, 256), 256, 0, st>>>(src, dst, p.n, nd, dims);
      }
    });
  });
  cuda::check_launch("copy");
}

}  // namespace ss
