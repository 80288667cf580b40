// CUDA kernels of the depthwise causal conv1d (see ops/conv1d.h for the definition).
// Forward: one thread per output (b, d, t); consecutive threads walk time, so x loads are
// coalesced and the width-1 overlapping taps of neighbours come from L1.
// Backward: (1) d(pre-activation) into f32 scratch, (2) one thread per padded input position
// gathers its gradient, (3) one block per channel reduces dweight/dbias in a fixed order
// (reproducible: no atomics).
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/runtime.h"
#include "ops/conv1d.h"

namespace ss {
namespace {

using cuda::load_any;
using cuda::to_float;

constexpr int kThreads = 256;

// Sequence id of padded position q (q = tau + W-1; tau < 0 are the initial-state positions).
__device__ __forceinline__ int seq_of(const int32_t* s, int64_t row_b, int64_t q, int64_t W) {
  int64_t tau = q - (W - 1);
  return s ? s[row_b + (tau > 0 ? tau : 0)] : 0;
}

// Padded input: x at tau >= 0, the initial state (or 0) before.
template <typename T>
__device__ __forceinline__ float input_at(const CausalConv1dParams& p, int64_t row, int64_t q) {
  int64_t tau = q - (p.width - 1);
  if (tau >= 0) return to_float(static_cast<const T*>(p.x)[row * p.seqlen + tau]);
  return p.initial_states ? to_float(static_cast<const T*>(p.initial_states)[row * (p.width - 1) + q]) : 0.f;
}

template <typename T>
__device__ __forceinline__ float pre_at(const CausalConv1dParams& p, int64_t row, int64_t t) {
  const int64_t W = p.width, d = row % p.dim, sb = (row / p.dim) * p.seqlen;
  float s = p.bias ? load_any(p.bias, p.bias_dtype, d) : 0.f;
  const int me = seq_of(p.seq_idx, sb, t + W - 1, W);
  for (int64_t k = 0; k < W; ++k)
    if (seq_of(p.seq_idx, sb, t + k, W) == me) s += load_any(p.weight, p.weight_dtype, d * W + k) * input_at<T>(p, row, t + k);
  return s;
}

template <typename T> __global__ void fwd_kernel(CausalConv1dParams p) {
  const int64_t n = p.batch * p.dim * p.seqlen;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / p.seqlen, t = i % p.seqlen;
    float v = pre_at<T>(p, row, t);
    static_cast<T*>(p.y)[i] = cuda::from_float<T>(p.silu ? cuda::silu_f(v) : v);
  }
}

// finalStates[row, j] = padded input at q = seqlen + j, zeroed when from another sequence.
template <typename T> __global__ void final_states_kernel(CausalConv1dParams p) {
  const int64_t W1 = p.width - 1, n = p.batch * p.dim * W1;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / W1, j = i % W1, q = p.seqlen + j, sb = (row / p.dim) * p.seqlen;
    bool keep = p.seqlen == 0 || seq_of(p.seq_idx, sb, q, p.width) == seq_of(p.seq_idx, sb, W1 + p.seqlen - 1, p.width);
    static_cast<T*>(p.final_states)[i] = cuda::from_float<T>(keep ? input_at<T>(p, row, q) : 0.f);
  }
}

template <typename T> __global__ void dpre_kernel(CausalConv1dParams p) {
  const int64_t n = p.batch * p.dim * p.seqlen;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float g = to_float(static_cast<const T*>(p.dy)[i]);
    if (p.silu) {
      float v = pre_at<T>(p, i / p.seqlen, i % p.seqlen);
      float s = 1.f / (1.f + __expf(-v));
      g *= s * (1.f + v * (1.f - s));
    }
    p.scratch[i] = g;
  }
}

// Gradient of padded input q: Σ_k dpre[t = q-k]·w[k] over same-sequence taps, plus the
// final-state gradient where q is one of the last width-1 positions.
template <typename T> __global__ void dinput_kernel(CausalConv1dParams p) {
  const int64_t W = p.width, QL = p.seqlen + W - 1, n = p.batch * p.dim * QL;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / QL, q = i % QL, d = row % p.dim, sb = (row / p.dim) * p.seqlen;
    if (q < W - 1 && !p.dinitial_states) continue;
    const int mine = seq_of(p.seq_idx, sb, q, W);
    float g = 0.f;
    for (int64_t k = 0; k < W; ++k) {
      const int64_t t = q - k;
      if (t < 0 || t >= p.seqlen) continue;
      if (seq_of(p.seq_idx, sb, t + W - 1, W) != mine) continue;
      g += p.scratch[row * p.seqlen + t] * load_any(p.weight, p.weight_dtype, d * W + k);
    }
    if (p.dfinal_states && q >= p.seqlen) {
      const int64_t j = q - p.seqlen;
      bool keep = p.seqlen == 0 || mine == seq_of(p.seq_idx, sb, W - 2 + p.seqlen, W);
      if (keep) g += to_float(static_cast<const T*>(p.dfinal_states)[row * (W - 1) + j]);
    }
    if (q >= W - 1)
      static_cast<T*>(p.dx)[row * p.seqlen + q - (W - 1)] = cuda::from_float<T>(g);
    else
      static_cast<T*>(p.dinitial_states)[row * (W - 1) + q] = cuda::from_float<T>(g);
  }
}

__device__ float block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = 0.f;
  if (threadIdx.x == 0)
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) s += red[w];
  return s;  // valid in thread 0
}

// One block per channel d: dweight[d,k] = Σ_{b,t} dpre·input(t+k) over same-sequence taps.
template <typename T> __global__ void dweight_kernel(CausalConv1dParams p) {
  __shared__ float red[32];
  const int64_t d = blockIdx.x, W = p.width, L = p.seqlen, n = p.batch * L;
  for (int64_t k = 0; k <= W; ++k) {  // k == W: dbias
    if (k == W && !p.dbias) break;
    float acc = 0.f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const int64_t b = i / L, t = i % L, row = b * p.dim + d;
      const float g = p.scratch[row * L + t];
      if (k == W) {
        acc += g;
      } else if (seq_of(p.seq_idx, b * L, t + k, W) == seq_of(p.seq_idx, b * L, t + W - 1, W)) {
        acc += g * input_at<T>(p, row, t + k);
      }
    }
    float s = block_sum(acc, red);
    if (threadIdx.x == 0) {
      if (k == W)
        cuda::store_any(p.dbias, p.bias_dtype, d, s);
      else
        cuda::store_any(p.dweight, p.weight_dtype, d * W + k, s);
    }
  }
}

template <typename T, typename S> __global__ void update_kernel(CausalConv1dUpdateParams p) {
  const int64_t n = p.batch * p.dim, W = p.width;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < n; r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = r % p.dim;
    S* s = static_cast<S*>(p.state) + r * (W - 1);
    const T xv = static_cast<const T*>(p.x)[r];
    const float x = to_float(xv);
    float acc = p.bias ? load_any(p.bias, p.bias_dtype, d) : 0.f;
    for (int64_t k = 0; k < W - 1; ++k) acc += load_any(p.weight, p.weight_dtype, d * W + k) * to_float(s[k]);
    acc += load_any(p.weight, p.weight_dtype, d * W + W - 1) * x;
    for (int64_t k = 0; k + 1 < W - 1; ++k) s[k] = s[k + 1];
    if (W > 1) s[W - 2] = cuda::from_float<S>(x);
    static_cast<T*>(p.y)[r] = cuda::from_float<T>(p.silu ? cuda::silu_f(acc) : acc);
  }
}

}  // namespace

void causal_conv1d_fwd_cuda(const CausalConv1dParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    const int64_t n = p.batch * p.dim * p.seqlen;
    if (n > 0) fwd_kernel<T><<<cuda::grid_1d(n, kThreads), kThreads, 0, st>>>(p);
    if (p.final_states && p.width > 1)
      final_states_kernel<T><<<cuda::grid_1d(p.batch * p.dim * (p.width - 1), kThreads), kThreads, 0, st>>>(p);
  });
  cuda::check_launch("causalConv1d");
}

void causal_conv1d_bwd_cuda(const CausalConv1dParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    const int64_t n = p.batch * p.dim * p.seqlen;
    if (n > 0) dpre_kernel<T><<<cuda::grid_1d(n, kThreads), kThreads, 0, st>>>(p);
    const int64_t nq = p.batch * p.dim * (p.seqlen + p.width - 1);
    if (nq > 0) dinput_kernel<T><<<cuda::grid_1d(nq, kThreads), kThreads, 0, st>>>(p);
    if (p.dim > 0) dweight_kernel<T><<<static_cast<unsigned>(p.dim), kThreads, 0, st>>>(p);
  });
  cuda::check_launch("causalConv1dBackward");
}

void causal_conv1d_update_cuda(const CausalConv1dUpdateParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    SS_FLOAT_SWITCH(p.state_dtype, S, [&] {
      update_kernel<T, S><<<cuda::grid_1d(p.batch * p.dim, kThreads), kThreads, 0, st>>>(p);
    });
  });
  cuda::check_launch("causalConv1dUpdate");
}

}  // namespace ss
