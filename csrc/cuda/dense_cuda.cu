// CUDA kernels of the dense ops other than the GEMM: embedding gather, (gated, grouped)
// RMSNorm with the optional fused residual add, and elementwise SiLU / softplus / add / mul.
// Embedding and RMSNorm are links of the decode step's kernel chain: launched with programmatic
// dependent launch (cuda/pdl.cuh), they wait for their producer before touching any data.
#include <cmath>
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/pdl.cuh"
#include "cuda/vec_io.cuh"
#include "cuda/runtime.h"
#include "ops/dense.h"

namespace ss {
namespace {

using cuda::load_any;
using cuda::load_vals;
using cuda::store_vals;
using cuda::to_float;

constexpr int kThreads = 256;

// out[i, :] = weight[ids[i], :]; an id outside the vocabulary gives a NaN row (the kernel
// cannot raise an error without a host round trip; NaN makes the fault visible downstream).
template <typename T> __global__ void embedding_kernel(EmbeddingParams p) {
  cuda::pdl_wait();
  cuda::pdl_trigger();
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

// The start of a norm kernel's block (one per (row, group)): waits for the producers, then
// returns the row, the group's first column and its element offset.
struct NormBlock {
  int64_t row, g0, off;
};
__device__ __forceinline__ NormBlock norm_block_start(const RmsNormParams& p) {
  cuda::pdl_wait();
  cuda::pdl_trigger();
  const int64_t groups_per_row = p.dim / p.group;
  const int64_t row = blockIdx.x / groups_per_row, g0 = (blockIdx.x % groups_per_row) * p.group;
  return {row, g0, row * p.dim + g0};
}

// One block per (row, group). Pass 1 forms r = x (+ residual) (· silu(z)), writes the residual
// stream and sums r²; pass 2 recomputes r (its inputs are still in L1) and scales it.
template <typename T> __global__ void rms_norm_kernel(RmsNormParams p) {
  __shared__ float red[32];
  const NormBlock nb = norm_block_start(p);
  const int64_t row = nb.row, g0 = nb.g0, off = nb.off;
  const T* x = static_cast<const T*>(p.x) + off;
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

struct NormTraits {
  static constexpr int kMaxThreads = 1024;
  static constexpr int kMaxVecs = 4;  // 16-byte vectors of x per thread, kept in registers
};

// The fast RMSNorm: one block per (row, group), every value loaded once (16-byte vectors, held in
// registers between the sum of squares and the scaling), up to 1024 threads so that one row of a
// decode step is spread over a whole block instead of looping. PER (1, 2 or 4) vectors a thread:
// registers sized to what the launch uses, so that more blocks fit on an SM. With up to 2 the
// weights are loaded with the inputs, before the block's sum (not one more round trip after it);
// with 4 they would not fit in the registers (64 a thread at 1024 threads) and come after it.
template <typename T, int PER>
__global__ void __launch_bounds__(NormTraits::kMaxThreads) rms_norm_vec_kernel(RmsNormParams p) {
  constexpr int V = 16 / sizeof(T);
  __shared__ float red[32];
  const NormBlock nb = norm_block_start(p);
  const int64_t row = nb.row, g0 = nb.g0, off = nb.off;
  const int nv = static_cast<int>(p.group / V);
  constexpr bool kEarlyW = PER <= 2;
  float r[PER][V], w[PER][V];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i >= nv) break;
    load_vals<V>(p.x, p.dtype, off + static_cast<int64_t>(i) * V, r[j]);
    if constexpr (kEarlyW) load_vals<V>(p.weight, p.weight_dtype, g0 + static_cast<int64_t>(i) * V, w[j]);
    if (p.residual) {
      float res[V];
      load_vals<V>(p.residual, p.residual_dtype, off + static_cast<int64_t>(i) * V, res);
#pragma unroll
      for (int e = 0; e < V; ++e) r[j][e] += res[e];
      store_vals<V>(p.residual_out, p.residual_dtype, off + static_cast<int64_t>(i) * V, r[j]);
    }
    if (p.z) {
      float zv[V];
      load_vals<V>(p.z, p.dtype, row * p.z_stride + g0 + static_cast<int64_t>(i) * V, zv);
#pragma unroll
      for (int e = 0; e < V; ++e) r[j][e] *= cuda::silu_f(zv[e]);
    }
#pragma unroll
    for (int e = 0; e < V; ++e) ss += r[j][e] * r[j][e];
  }
  const float scale = rsqrtf(block_sum_all(ss, red) / static_cast<float>(p.group) + p.eps);
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i >= nv) break;
    if constexpr (!kEarlyW) load_vals<V>(p.weight, p.weight_dtype, g0 + static_cast<int64_t>(i) * V, w[j]);
#pragma unroll
    for (int e = 0; e < V; ++e) r[j][e] *= scale * w[j][e];
    store_vals<V>(p.y, p.dtype, off + static_cast<int64_t>(i) * V, r[j]);
  }
}

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
    cuda::launch_pdl(embedding_kernel<T>, dim3(cuda::grid_1d(p.n * p.d, kThreads)), dim3(kThreads), 0, static_cast<cudaStream_t>(stream), p);
  });
  cuda::check_launch("embedding");
}

bool aligned_to(const void* ptr, size_t bytes) { return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

void rms_norm_cuda(const RmsNormParams& p, void* stream) {
  const int64_t blocks = p.rows * (p.dim / p.group);
  if (blocks > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "rmsNorm: too many rows for one launch");
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    constexpr int V = 16 / sizeof(T);
    const int64_t nv = p.group / V;
    // The vector kernel: whole vectors, every operand aligned to its vector, <= 4 per thread.
    const bool vec = p.group % V == 0 && p.z_stride % V == 0 && nv <= int64_t{NormTraits::kMaxThreads} * NormTraits::kMaxVecs &&
                     aligned_to(p.x, 16) && aligned_to(p.y, 16) && aligned_to(p.z, 16) &&
                     aligned_to(p.residual, dtype_size(p.residual_dtype) * V) && aligned_to(p.residual_out, dtype_size(p.residual_dtype) * V) &&
                     aligned_to(p.weight, dtype_size(p.weight_dtype) * V);
    if (vec) {
      // Vectors per thread: a row spread over up to 1024 threads when there are few (decode). With
      // many (prefill), smaller blocks so that several fit on an SM (a 640-thread block of ~64
      // registers fits once: 2048 x 5120 gated ran at 42% of copy bandwidth): H100, bench
      // prefill-ops, rmsNorm + float32 residual 2048 x 2560 in 320-thread blocks (one vector a
      // thread) 25.3-25.4 µs, 0.83 of copy; gated 2048 x 5120 in 160-thread blocks (four) 32.3-32.8
      // µs, against 34.6-35.0 in 320-thread ones (two) or 640 (one). Rows past 4 vectors a thread
      // of the cap take more threads (up to 1024).
      const int64_t cap = blocks < 1024 ? NormTraits::kMaxThreads : nv >= 640 ? 160 : 320;
      int64_t per = std::min<int64_t>(NormTraits::kMaxVecs, (nv + cap - 1) / cap);
      if (per == 3) per = 4;
      const int threads = static_cast<int>(std::max<int64_t>(32, ((nv + per - 1) / per + 31) / 32 * 32));
      auto kernel = per == 1 ? rms_norm_vec_kernel<T, 1> : per == 2 ? rms_norm_vec_kernel<T, 2> : rms_norm_vec_kernel<T, NormTraits::kMaxVecs>;
      cuda::launch_pdl(kernel, dim3(static_cast<unsigned>(blocks)), dim3(threads), 0, st, p);
    } else {
      // Threads: enough for the group, a multiple of 32, at most 512.
      int threads = static_cast<int>(std::min<int64_t>(512, ((p.group + 3) / 4 + 31) / 32 * 32));
      if (threads < 32) threads = 32;
      cuda::launch_pdl(rms_norm_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(threads), 0, st, p);
    }
  });
  cuda::check_launch("rmsNorm");
}

void eltwise_cuda(const EltwiseParams& p, void* stream) {
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    eltwise_kernel<T><<<cuda::grid_1d(p.n, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  });
  cuda::check_launch("elementwise");
}

}  // namespace ss
