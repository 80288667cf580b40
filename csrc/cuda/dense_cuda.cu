// CUDA kernels of the dense ops other than the GEMM: embedding gather, (gated, grouped)
// RMSNorm with the optional fused residual add, and elementwise SiLU / softplus / add / mul.
#include <cmath>
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/runtime.h"
#include "ops/dense.h"

namespace ss {
namespace {

using cuda::load_any;
using cuda::to_float;

constexpr int kThreads = 256;

// out[i, :] = weight[ids[i], :]; an id outside the vocabulary gives a NaN row (the kernel
// cannot raise an error without a host round trip; NaN makes the fault visible downstream).
template <typename T> __global__ void embedding_kernel(EmbeddingParams p) {
  const int64_t n = p.n * p.d;
  const T* w = static_cast<const T*>(p.weight);
  T* out = static_cast<T*>(p.out);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t tok = i / p.d, c = i % p.d;
    const int32_t id = p.ids[tok];
    out[i] = id >= 0 && id < p.vocab ? w[id * p.d + c] : cuda::from_float<T>(NAN);
  }
}

__device__ float block_sum_all(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = 0.f;
  for (int w = 0; w < nw; ++w) s += red[w];  // every thread sums in the same order
  return s;
}

// Any sizes and alignments: one block per (row, group). Pass 1 forms r = x (+ residual)
// (· silu(z)), writes the residual stream and sums r²; pass 2 recomputes r (its inputs are
// still in L1) and scales it.
template <typename T> __global__ void rms_norm_kernel(RmsNormParams p) {
  __shared__ float red[32];
  const int64_t groups_per_row = p.dim / p.group;
  const int64_t row = blockIdx.x / groups_per_row, g0 = (blockIdx.x % groups_per_row) * p.group;
  const int64_t off = row * p.dim + g0;
  const T* x = static_cast<const T*>(p.x) + row * p.x_stride + g0;
  const T* z = p.z ? static_cast<const T*>(p.z) + row * p.z_stride + g0 : nullptr;
  auto value = [&](int64_t i, bool write_residual) {
    float v = to_float(x[i]);
    if (p.residual) {
      v += load_any(p.residual, p.residual_dtype, off + i);
      if (write_residual) cuda::store_any(p.residual_out, p.residual_dtype, off + i, v);
    }
    if (z) v *= cuda::silu_f(to_float(z[i]));
    return v;
  };
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < p.group; i += blockDim.x) {
    float v = value(i, true);
    ss += v * v;
  }
  const float scale = rsqrtf(block_sum_all(ss, red) / static_cast<float>(p.group) + p.eps);
  T* y = static_cast<T*>(p.y) + off;
  for (int64_t i = threadIdx.x; i < p.group; i += blockDim.x)
    y[i] = cuda::from_float<T>(value(i, false) * scale * load_any(p.weight, p.weight_dtype, g0 + i));
}

// Eight consecutive elements through one 16-byte access (two for float).
template <typename T> struct alignas(16) Vec8 {
  T v[8];
};

template <typename T> __device__ __forceinline__ void load8(const T* src, float (&out)[8]) {
  const Vec8<T> in = *reinterpret_cast<const Vec8<T>*>(src);
#pragma unroll
  for (int k = 0; k < 8; ++k) out[k] = to_float(in.v[k]);
}

template <typename T> __device__ __forceinline__ void store8(T* dst, const float (&v)[8]) {
  Vec8<T> o;
#pragma unroll
  for (int k = 0; k < 8; ++k) o.v[k] = cuda::from_float<T>(v[k]);
  *reinterpret_cast<Vec8<T>*>(dst) = o;
}

struct RmsVecTraits {
  static constexpr int kVecs = 4;  // 8-element vectors per thread, held in registers
  static constexpr int kMaxThreads = 1024;
  static constexpr int64_t kMaxGroup = int64_t{8} * kVecs * kMaxThreads;
};

// The fast path (groups a multiple of 8 elements, 16-byte aligned rows): one block per
// (row, group), each thread owning up to kVecs 8-element vectors. Every input is read once with
// 16-byte loads and kept in registers across the block reduction, so the kernel moves each
// byte once (x, z or the residual in, y and the residual stream out). RT: the residual's type.
template <typename T, typename RT>
__global__ void __launch_bounds__(RmsVecTraits::kMaxThreads) rms_norm_vec_kernel(RmsNormParams p) {
  constexpr int V = RmsVecTraits::kVecs;
  __shared__ float red[32];
  const int64_t groups_per_row = p.dim / p.group;
  const int64_t row = blockIdx.x / groups_per_row, g0 = (blockIdx.x % groups_per_row) * p.group;
  const int64_t off = row * p.dim + g0;
  const T* x = static_cast<const T*>(p.x) + row * p.x_stride + g0;
  const T* z = p.z ? static_cast<const T*>(p.z) + row * p.z_stride + g0 : nullptr;
  float v[V][8];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int64_t i = (static_cast<int64_t>(j) * blockDim.x + threadIdx.x) * 8;
    if (i >= p.group) continue;
    load8(x + i, v[j]);
    if (p.residual) {
      float r[8];
      load8(static_cast<const RT*>(p.residual) + off + i, r);
#pragma unroll
      for (int k = 0; k < 8; ++k) v[j][k] += r[k];
      store8(static_cast<RT*>(p.residual_out) + off + i, v[j]);
    }
    if (z) {
      float g[8];
      load8(z + i, g);
#pragma unroll
      for (int k = 0; k < 8; ++k) v[j][k] *= cuda::silu_f(g[k]);
    }
#pragma unroll
    for (int k = 0; k < 8; ++k) ss += v[j][k] * v[j][k];
  }
  const float scale = rsqrtf(block_sum_all(ss, red) / static_cast<float>(p.group) + p.eps);
  T* y = static_cast<T*>(p.y) + off;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int64_t i = (static_cast<int64_t>(j) * blockDim.x + threadIdx.x) * 8;
    if (i >= p.group) continue;
    float o[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) o[k] = v[j][k] * scale * load_any(p.weight, p.weight_dtype, g0 + i + k);
    store8(y + i, o);
  }
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

template <typename T> __global__ void eltwise_kernel(EltwiseParams p) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  T* o = static_cast<T*>(p.out);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float u = to_float(a[i]);
    float v;
    switch (p.op) {
      case EltwiseOp::Silu: v = cuda::silu_f(u); break;
      case EltwiseOp::Softplus: v = cuda::softplus_f(u); break;
      case EltwiseOp::Add: v = u + to_float(b[i]); break;
      default: v = u * to_float(b[i]); break;
    }
    o[i] = cuda::from_float<T>(v);
  }
}

}  // namespace

void embedding_cuda(const EmbeddingParams& p, void* stream) {
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    embedding_kernel<T><<<cuda::grid_1d(p.n * p.d, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  });
  cuda::check_launch("embedding");
}

void rms_norm_cuda(const RmsNormParams& p_in, void* stream) {
  RmsNormParams p = p_in;
  if (!p.x_stride) p.x_stride = p.dim;
  if (!p.z_stride) p.z_stride = p.dim;
  const int64_t blocks = p.rows * (p.dim / p.group);
  if (blocks > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "rmsNorm: too many rows for one launch");
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  // The vectorised kernel wants every row and group start on a 16-byte boundary.
  const bool vec = p.group % 8 == 0 && p.group <= RmsVecTraits::kMaxGroup && p.x_stride % 8 == 0 && p.z_stride % 8 == 0 &&
                   aligned16(p.x) && aligned16(p.y) && (!p.z || aligned16(p.z)) &&
                   (!p.residual || (aligned16(p.residual) && aligned16(p.residual_out) && (p.residual_dtype == DType::Float32 || p.residual_dtype == p.dtype)));
  if (vec) {
    const int64_t per_thread = 8 * RmsVecTraits::kVecs;
    const int threads = static_cast<int>(std::max<int64_t>(32, ((p.group + per_thread - 1) / per_thread + 31) / 32 * 32));
    SS_FLOAT_SWITCH(p.dtype, T, [&] {
      if (p.residual && p.residual_dtype == DType::Float32)
        rms_norm_vec_kernel<T, float><<<static_cast<unsigned>(blocks), threads, 0, st>>>(p);
      else
        rms_norm_vec_kernel<T, T><<<static_cast<unsigned>(blocks), threads, 0, st>>>(p);
    });
    cuda::check_launch("rmsNorm");
    return;
  }
  // Threads: enough for the group, a multiple of 32, at most 512.
  int threads = static_cast<int>(std::min<int64_t>(512, ((p.group + 3) / 4 + 31) / 32 * 32));
  if (threads < 32) threads = 32;
  SS_FLOAT_SWITCH(p.dtype, T, [&] { rms_norm_kernel<T><<<static_cast<unsigned>(blocks), threads, 0, st>>>(p); });
  cuda::check_launch("rmsNorm");
}

void eltwise_cuda(const EltwiseParams& p, void* stream) {
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    eltwise_kernel<T><<<cuda::grid_1d(p.n, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  });
  cuda::check_launch("elementwise");
}

}  // namespace ss
