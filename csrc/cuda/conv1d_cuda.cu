// CUDA kernels of the depthwise causal conv1d (see ops/conv1d.h for the definition).
// Forward: a tiled kernel (below) for widths up to 1024; beyond, one thread per output
// (b, d, t), consecutive threads walking time so x loads are coalesced.
// Backward: a tiled kernel (below) for widths up to 1024, with a vector form for width 4 — dx in one
// pass, dweight/dbias as one partial per (row, tile) that a second kernel sums in a fixed order; beyond, (1) d(pre-activation)
// into f32 scratch, (2) one thread per padded input position gathers its gradient, (3) one block per
// channel reduces dweight/dbias in a fixed order. Both are reproducible: no atomics.
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "cuda/smem_optin.h"
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

// Offset of x[b, d, tau] (row = b·dim + d): contiguous, or channels-last with strides.
__device__ __forceinline__ int64_t x_offset(const CausalConv1dParams& p, int64_t row, int64_t tau) {
  return p.channels_last ? (row / p.dim) * p.x_stride_b + row % p.dim + tau * p.x_stride_t : row * p.seqlen + tau;
}

// Padded input: x at tau >= 0, the initial state (or 0) before.
template <typename T>
__device__ __forceinline__ float input_at(const CausalConv1dParams& p, int64_t row, int64_t q) {
  int64_t tau = q - (p.width - 1);
  if (tau >= 0) return to_float(static_cast<const T*>(p.x)[x_offset(p, row, tau)]);
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
    const int64_t out = p.channels_last ? ((row / p.dim) * p.seqlen + t) * p.dim + row % p.dim : i;
    static_cast<T*>(p.y)[out] = cuda::from_float<T>(p.silu ? cuda::silu_f(v) : v);
  }
}

// Tiled forward, the fast path for widths up to kMaxTiledWidth: a block owns one (b, d) row
// and kTile time steps. The inputs it needs (kTile plus the width-1 before, from x or the
// initial state) and their sequence ids are staged once in shared memory as f32, then each
// thread computes kPerThread outputs strided by the block size (conflict-free shared reads,
// coalesced stores), with the weights in shared memory too. One global read per input and
// one write per output; the per-element work is width multiply-adds.
struct TiledTraits {
  static constexpr int kThreads = 128, kPerThread = 8, kTile = kThreads * kPerThread;
  static constexpr int kMaxTiledWidth = 1024;
};

// kW: the width when known at compile time (4, Mamba's), so the tap loops unroll; 0: p.width.
template <typename T, int kW>
__global__ void __launch_bounds__(TiledTraits::kThreads) fwd_tiled_kernel(CausalConv1dParams p) {
  using Tr = TiledTraits;
  extern __shared__ float smem[];
  const int W = kW ? kW : static_cast<int>(p.width), span = Tr::kTile + W - 1;
  float* xs = smem;            // span inputs: xs[i] is time t0 - (W-1) + i
  float* ws = xs + span;       // W weights
  int* sid = reinterpret_cast<int*>(ws + W);  // span sequence ids (with seqIdx)
  const int64_t row = blockIdx.x, d = row % p.dim, b = row / p.dim;
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * Tr::kTile, L = p.seqlen;
  const T* x = static_cast<const T*>(p.x) + row * L;
  const T* init = p.initial_states ? static_cast<const T*>(p.initial_states) + row * (W - 1) : nullptr;
  const int32_t* sq = p.seq_idx ? p.seq_idx + b * L : nullptr;
  for (int i = threadIdx.x; i < span; i += blockDim.x) {
    const int64_t t = t0 - (W - 1) + i;
    float v = 0.f;
    if (t >= 0 && t < L) v = to_float(x[t]);
    else if (t < 0 && init) v = to_float(init[W - 1 + t]);
    xs[i] = v;
    if (sq) sid[i] = sq[t < 0 ? 0 : (t < L ? t : L - 1)];
  }
  for (int k = threadIdx.x; k < W; k += blockDim.x) ws[k] = load_any(p.weight, p.weight_dtype, d * W + k);
  __syncthreads();
  const float bias = p.bias ? load_any(p.bias, p.bias_dtype, d) : 0.f;
  T* y = static_cast<T*>(p.y) + row * L;
#pragma unroll
  for (int j = 0; j < Tr::kPerThread; ++j) {
    const int i = threadIdx.x + j * Tr::kThreads;  // output t0 + i reads xs[i .. i + W-1]
    float acc = bias;
    if (sq) {
      const int me = sid[i + W - 1];
#pragma unroll
      for (int k = 0; k < W; ++k)
        if (sid[i + k] == me) acc += ws[k] * xs[i + k];
    } else {
#pragma unroll
      for (int k = 0; k < W; ++k) acc += ws[k] * xs[i + k];
    }
    if (t0 + i < L) y[t0 + i] = cuda::from_float<T>(p.silu ? cuda::silu_f(acc) : acc);
  }
}

// The common case at full speed: width 4 (Mamba's), no seqIdx, seqlen a multiple of 8 and 16-byte
// aligned rows. A block owns kThreads * kVecs vectors of 8 consecutive outputs of one row; each
// thread loads its kVecs vectors (strided by the block, so a warp's loads are 512 contiguous bytes)
// before computing: that many 16-byte loads in flight, the kernel being bound by memory latency
// otherwise. The 3 inputs before a vector are the end of the lane below's (a shuffle); lane 0
// loads them (a 4-element aligned load), the row's first vector takes the initial states. No
// shared memory, no barrier. The thread of the row's last vector also writes the final states.
// 2 vectors per thread, 1024-step blocks: at 1 x 5120 x 2048 that is 10240 blocks, 3.1 waves at 40
// registers (4 vectors and 2048-step blocks were 2.15 waves, the last a sixth full: 5% slower).
struct W4Traits {
  static constexpr int kThreads = 64, kVecs = 2, kSpan = kThreads * kVecs * 8;  // steps per block
};
template <typename T> struct alignas(sizeof(T) * 8) Vec8 {
  T v[8];
};
template <typename T> struct alignas(sizeof(T) * 4) Vec4 {
  T v[4];
};

template <typename T> __global__ void __launch_bounds__(W4Traits::kThreads) fwd_w4_kernel(CausalConv1dParams p) {
  using Tr = W4Traits;
  constexpr int W = 4, V = Tr::kVecs, kT = Tr::kThreads;
  const int64_t row = blockIdx.x, L = p.seqlen, d = row % p.dim;
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * Tr::kSpan + threadIdx.x * 8;  // vector k at t0 + 8 kT k
  const int lane = threadIdx.x % 32;
  const T* x = static_cast<const T*>(p.x) + row * L;
  Vec8<T> in[V];
  Vec4<T> before[V];  // lane 0: the 4 inputs before its vector (the last 3 are needed)
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int64_t t = t0 + 8 * kT * k;
    if (t < L) in[k] = *reinterpret_cast<const Vec8<T>*>(x + t);
    if (lane == 0 && t < L && t > 0) before[k] = *reinterpret_cast<const Vec4<T>*>(x + t - 4);
  }
  float w[W];
#pragma unroll
  for (int q = 0; q < W; ++q) w[q] = load_any(p.weight, p.weight_dtype, d * W + q);
  const float bias = p.bias ? load_any(p.bias, p.bias_dtype, d) : 0.f;
  T* y = static_cast<T*>(p.y) + row * L;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int64_t t = t0 + 8 * kT * k;
    float win[8 + W - 1];  // inputs at t - 3 ... t + 7
#pragma unroll
    for (int e = 0; e < 8; ++e) win[W - 1 + e] = to_float(in[k].v[e]);
#pragma unroll
    for (int j = 0; j < W - 1; ++j) {
      const float below = __shfl_up_sync(0xffffffffu, win[8 + j], 1);  // the lane below's last 3
      if (t == 0)
        win[j] = p.initial_states ? to_float(static_cast<const T*>(p.initial_states)[row * (W - 1) + j]) : 0.f;
      else
        win[j] = lane == 0 ? to_float(before[k].v[1 + j]) : below;
    }
    if (t >= L) continue;
    Vec8<T> out;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      float acc = bias;
#pragma unroll
      for (int q = 0; q < W; ++q) acc += w[q] * win[e + q];
      out.v[e] = cuda::from_float<T>(p.silu ? cuda::silu_f(acc) : acc);
    }
    *reinterpret_cast<Vec8<T>*>(y + t) = out;
    if (p.final_states && t + 8 == L)
#pragma unroll
      for (int j = 0; j < W - 1; ++j) static_cast<T*>(p.final_states)[row * (W - 1) + j] = in[k].v[8 - (W - 1) + j];
  }
}

// Channels-last, width 4, no seqIdx: a thread owns 8 consecutive channels (one 16-byte vector
// per time step, a warp 512 contiguous bytes) over steps<T>() consecutive steps. All its inputs are
// loaded up front (that many 16-byte loads in flight per thread: the kernel is bound by memory latency
// otherwise), then each output takes 4 multiply-adds with the 3 inputs before it in registers;
// the weights of its channels stay in registers too.
struct ChannelsLastTraits {
  static constexpr int kThreads = 64, kW = 4;
  template <typename T> static constexpr int steps() { return 16 / static_cast<int>(sizeof(T)); }  // 8 (16-bit), 4 (f32)
};

template <typename T> __global__ void __launch_bounds__(ChannelsLastTraits::kThreads) fwd_cl_w4_kernel(CausalConv1dParams p) {
  using Tr = ChannelsLastTraits;
  constexpr int W = Tr::kW, S = Tr::steps<T>();
  const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * Tr::kThreads + threadIdx.x) * 8;
  if (c0 >= p.dim) return;
  const int64_t b = blockIdx.z, t0 = static_cast<int64_t>(blockIdx.y) * S, L = p.seqlen;
  const T* x = static_cast<const T*>(p.x) + b * p.x_stride_b + c0;
  Vec8<T> raw[S];
#pragma unroll
  for (int s = 0; s < S; ++s)
    if (t0 + s < L) raw[s] = *reinterpret_cast<const Vec8<T>*>(x + (t0 + s) * p.x_stride_t);
  float win[W - 1][8];  // inputs at t - 3, t - 2, t - 1
#pragma unroll
  for (int j = 0; j < W - 1; ++j) {
    const int64_t t = t0 - (W - 1) + j;
    if (t >= 0) {
      const Vec8<T> v = *reinterpret_cast<const Vec8<T>*>(x + t * p.x_stride_t);
#pragma unroll
      for (int c = 0; c < 8; ++c) win[j][c] = to_float(v.v[c]);
    } else {
      const T* init = p.initial_states ? static_cast<const T*>(p.initial_states) + (b * p.dim + c0) * (W - 1) + (W - 1) + t : nullptr;
#pragma unroll
      for (int c = 0; c < 8; ++c) win[j][c] = init ? to_float(init[c * (W - 1)]) : 0.f;
    }
  }
  // The 8 channels' 32 weights (and 8 biases) are contiguous: 16-byte loads when stored in x's
  // type and aligned (the models' case), else element by element.
  float w[8][W], bias[8];
  if (p.weight_dtype == p.dtype && reinterpret_cast<uintptr_t>(p.weight) % (8 * sizeof(T)) == 0) {
    const Vec8<T>* wv = reinterpret_cast<const Vec8<T>*>(static_cast<const T*>(p.weight) + c0 * W);
#pragma unroll
    for (int q = 0; q < W; ++q) {
      const Vec8<T> v = wv[q];
#pragma unroll
      for (int e = 0; e < 8; ++e) w[(8 * q + e) / W][(8 * q + e) % W] = to_float(v.v[e]);
    }
  } else {
#pragma unroll
    for (int c = 0; c < 8; ++c)
#pragma unroll
      for (int k = 0; k < W; ++k) w[c][k] = load_any(p.weight, p.weight_dtype, (c0 + c) * W + k);
  }
  if (p.bias && p.bias_dtype == p.dtype && reinterpret_cast<uintptr_t>(p.bias) % (8 * sizeof(T)) == 0) {
    const Vec8<T> v = *reinterpret_cast<const Vec8<T>*>(static_cast<const T*>(p.bias) + c0);
#pragma unroll
    for (int c = 0; c < 8; ++c) bias[c] = to_float(v.v[c]);
  } else {
#pragma unroll
    for (int c = 0; c < 8; ++c) bias[c] = p.bias ? load_any(p.bias, p.bias_dtype, c0 + c) : 0.f;
  }
  T* y = static_cast<T*>(p.y) + b * L * p.dim + c0;
#pragma unroll
  for (int s = 0; s < S; ++s) {
    if (t0 + s >= L) break;
    Vec8<T> out;
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const float cur = to_float(raw[s].v[c]);
      const float acc = bias[c] + w[c][0] * win[0][c] + w[c][1] * win[1][c] + w[c][2] * win[2][c] + w[c][3] * cur;
      out.v[c] = cuda::from_float<T>(p.silu ? cuda::silu_f(acc) : acc);
      win[0][c] = win[1][c];
      win[1][c] = win[2][c];
      win[2][c] = cur;
    }
    *reinterpret_cast<Vec8<T>*>(y + (t0 + s) * p.dim) = out;
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

// Sums each of a thread's kSums values over the block into out[0..kSums) (thread c writes out[c]).
template <int kSums>
__device__ __forceinline__ void block_sums_to(float (&acc)[kSums], float (*red)[kSums], float* out) {
  constexpr int kWarps = TiledTraits::kThreads / 32;
#pragma unroll
  for (int c = 0; c < kSums; ++c) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[c] += __shfl_xor_sync(0xffffffffu, acc[c], o);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32][c] = acc[c];
  }
  __syncthreads();
  if (static_cast<int>(threadIdx.x) < kSums) {
    float s = 0.f;
    for (int w = 0; w < kWarps; ++w) s += red[w][threadIdx.x];
    out[threadIdx.x] = s;
  }
  __syncthreads();
}

// Tiled backward, the path for widths up to kMaxTiledWidth: a block owns one (b, d) row and the
// dx of kTile time steps. It stages what those outputs reach in shared memory once — the inputs of
// kTile + 2(W-1) steps (the forward's window plus W-1 ahead, because an input feeds the W outputs
// after it) and dy of kTile + W-1 steps — turns dy into d(pre-activation) in place (recomputing the
// pre-activation for the SiLU), then gathers dx with W multiply-adds per output. Its share of
// dweight/dbias (the steps it owns) leaves as one partial per (row, tile) in `part`, summed by
// dweight_reduce_kernel in a fixed order. One global read of x and dy per step, one write of dx.
template <typename T, int kW>
__global__ void __launch_bounds__(TiledTraits::kThreads) bwd_tiled_kernel(CausalConv1dParams p, float* part) {
  using Tr = TiledTraits;
  __shared__ float red[Tr::kThreads / 32][kW ? kW + 1 : 1];
  extern __shared__ float smem[];
  const int W = kW ? kW : static_cast<int>(p.width), W1 = W - 1;
  const int xspan = Tr::kTile + 2 * W1, dspan = Tr::kTile + W1;
  float* xs = smem;           // xs[q]: padded input at time t0 - (W-1) + q (x, the initial state, or 0)
  float* ds = xs + xspan;     // ds[j]: dy, then d(pre-activation), at output time t0 + j (0 past seqlen)
  float* ws = ds + dspan;     // W weights
  int* sid = reinterpret_cast<int*>(ws + W);  // with seqIdx: the sequence of xs[q] (time clamped to [0, L))
  const int64_t row = blockIdx.x, d = row % p.dim, b = row / p.dim;
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * Tr::kTile, L = p.seqlen;
  const T* x = static_cast<const T*>(p.x) + row * L;
  const T* dy = static_cast<const T*>(p.dy) + row * L;
  const T* init = p.initial_states ? static_cast<const T*>(p.initial_states) + row * W1 : nullptr;
  const int32_t* sq = p.seq_idx ? p.seq_idx + b * L : nullptr;
  auto x_at = [&](int64_t t) { return t >= 0 ? (t < L ? to_float(x[t]) : 0.f) : (init ? to_float(init[W1 + t]) : 0.f); };
  // The tile's own steps: every load of a thread issued before the first shared-memory store (the
  // compiler may not move a global load past a store through shared memory), 2 x kPerThread in flight.
  float xr[Tr::kPerThread], dr[Tr::kPerThread];
#pragma unroll
  for (int n = 0; n < Tr::kPerThread; ++n) {
    const int64_t t = t0 + threadIdx.x + n * Tr::kThreads;
    xr[n] = t < L ? to_float(x[t]) : 0.f;
    dr[n] = t < L ? to_float(dy[t]) : 0.f;
  }
#pragma unroll
  for (int n = 0; n < Tr::kPerThread; ++n) {
    xs[W1 + threadIdx.x + n * Tr::kThreads] = xr[n];
    ds[threadIdx.x + n * Tr::kThreads] = dr[n];
  }
  // The W-1 steps before the tile (x or the initial state) and after it (x and dy).
  for (int h = threadIdx.x; h < 2 * W1; h += blockDim.x) {
    const int q = h < W1 ? h : Tr::kTile + h;
    xs[q] = x_at(t0 - W1 + q);
    if (h >= W1) ds[Tr::kTile + h - W1] = t0 + Tr::kTile + h - W1 < L ? to_float(dy[t0 + Tr::kTile + h - W1]) : 0.f;
  }
  if (sq)
    for (int q = threadIdx.x; q < xspan; q += blockDim.x) {
      const int64_t t = t0 - W1 + q;
      sid[q] = sq[t < 0 ? 0 : (t < L ? t : L - 1)];
    }
  for (int k = threadIdx.x; k < W; k += blockDim.x) ws[k] = load_any(p.weight, p.weight_dtype, d * W + k);
  __syncthreads();
  // A tap k of output t0 + j reads xs[j + k]; it counts when that input is of the output's sequence.
  auto tap = [&](int j, int k) { return !sq || sid[j + k] == sid[j + W1]; };
  const float bias = p.bias ? load_any(p.bias, p.bias_dtype, d) : 0.f;
  if (p.silu) {
    for (int j = threadIdx.x; j < dspan; j += blockDim.x) {  // each thread rewrites only its own ds[j]
      float v = bias;
      for (int k = 0; k < W; ++k)
        if (tap(j, k)) v += ws[k] * xs[j + k];
      const float s = 1.f / (1.f + __expf(-v));
      ds[j] *= s * (1.f + v * (1.f - s));
    }
    __syncthreads();
  }
  // d(input at xs[q]) = sum over taps k of ds[q - k]·w[k] (output t0 + q - k), plus the final-state
  // gradient for the last W-1 inputs of the row when they belong to its last sequence.
  const int last_seq = sq && L > 0 ? sq[L - 1] : 0;
  auto dinput = [&](int q) {
    float g = 0.f;
    for (int k = 0; k < W && k <= q; ++k)
      if (tap(q - k, k)) g += ds[q - k] * ws[k];
    const int64_t tau = t0 - W1 + q;
    if (p.dfinal_states && tau >= L - W1 && (!sq || sid[q] == last_seq))
      g += to_float(static_cast<const T*>(p.dfinal_states)[row * W1 + tau - (L - W1)]);
    return g;
  };
  T* dx = static_cast<T*>(p.dx) + row * L;
#pragma unroll
  for (int n = 0; n < Tr::kPerThread; ++n) {
    const int i = threadIdx.x + n * Tr::kThreads;
    if (t0 + i < L) dx[t0 + i] = cuda::from_float<T>(dinput(i + W1));
  }
  if (blockIdx.y == 0 && p.dinitial_states)
    for (int q = threadIdx.x; q < W1; q += blockDim.x)
      static_cast<T*>(p.dinitial_states)[row * W1 + q] = cuda::from_float<T>(dinput(q));
  // This tile's dweight[k] = sum over its steps of ds[j]·xs[j + k] (k = W: dbias = sum of ds[j]),
  // kSums of them per block-wide reduction: all W + 1 at once when W is known (one barrier pair).
  constexpr int kSums = kW ? kW + 1 : 1;
  float* out = part + (row * gridDim.y + blockIdx.y) * (W + 1);
  for (int k0 = 0; k0 <= W; k0 += kSums) {  // k0 + c <= W for every c when kSums > 1 (k0 = 0 only)
    float acc[kSums];
#pragma unroll
    for (int c = 0; c < kSums; ++c) {
      const int k = k0 + c;
      acc[c] = 0.f;
#pragma unroll
      for (int n = 0; n < Tr::kPerThread; ++n) {
        const int j = threadIdx.x + n * Tr::kThreads;
        if (k == W) acc[c] += ds[j];  // ds is 0 past seqlen
        else if (tap(j, k)) acc[c] += ds[j] * xs[j + k];
      }
    }
    block_sums_to<kSums>(acc, red, out + k0);
  }
}

// The backward's common case at full speed (Mamba's training shapes), under fwd_w4_kernel's
// conditions (width 4, no seqIdx, seqlen % 8 == 0, 16-byte aligned rows): each thread owns 8 consecutive steps, its x and dy arrive in one vector
// load each, the 3 inputs before them and the 3 inputs and dy after them come from its neighbours
// through shared memory, and the rest stays in registers: the pre-activations and d(pre-activation)
// of the 11 outputs its 8 inputs feed, its 8 dx (one vector store), its share of dweight/dbias.
template <typename T> __global__ void __launch_bounds__(TiledTraits::kThreads) bwd_w4_kernel(CausalConv1dParams p, float* part) {
  using Tr = TiledTraits;
  constexpr int W = 4, W1 = W - 1, P = Tr::kPerThread;
  // Time t sits at logical slot l = t - t0 + 8 (the 3 steps before the tile at 5..7) and is stored at
  // [l + l/8]: one skew float per 8 keeps each thread's 14-step window (stride 9) conflict-free.
  constexpr int kSlots = (Tr::kTile + 16) / 8 * 9;
  __shared__ float xs[kSlots], gs[kSlots];
  __shared__ float red[Tr::kThreads / 32][W + 1];
  auto at = [](int l) { return l + (l >> 3); };
  const int tid = threadIdx.x;
  const int64_t row = blockIdx.x, d = row % p.dim, L = p.seqlen;
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * Tr::kTile, tv = t0 + tid * P;
  const T* x = static_cast<const T*>(p.x) + row * L;
  const T* dy = static_cast<const T*>(p.dy) + row * L;
  const bool active = tv < L;  // L % 8 == 0: a thread's 8 steps are all in the row or all past it
  Vec8<T> xin{}, gin{};
  if (active) {
    xin = *reinterpret_cast<const Vec8<T>*>(x + tv);
    gin = *reinterpret_cast<const Vec8<T>*>(dy + tv);
  }
  // Threads 0-2: the input 3-tid steps before the tile (x, the initial state or 0); 3-5: the
  // input and dy tid-2 steps past its end (0 past the row).
  float hx = 0.f, hg = 0.f;
  if (tid < W1) {
    const int64_t t = t0 - W1 + tid;
    if (t >= 0) hx = to_float(x[t]);
    else if (p.initial_states) hx = to_float(static_cast<const T*>(p.initial_states)[row * W1 + W1 + t]);
  } else if (tid < 2 * W1) {
    const int64_t t = t0 + Tr::kTile + tid - W1;
    if (t < L) hx = to_float(x[t]), hg = to_float(dy[t]);
  }
#pragma unroll
  for (int j = 0; j < P; ++j) {
    xs[at(8 + P * tid + j)] = to_float(xin.v[j]);
    gs[at(8 + P * tid + j)] = to_float(gin.v[j]);
  }
  if (tid < W1) xs[at(8 - W1 + tid)] = hx;
  else if (tid < 2 * W1) xs[at(8 + Tr::kTile + tid - W1)] = hx, gs[at(8 + Tr::kTile + tid - W1)] = hg;
  float w[W];
#pragma unroll
  for (int k = 0; k < W; ++k) w[k] = load_any(p.weight, p.weight_dtype, d * W + k);
  const float bias = p.bias ? load_any(p.bias, p.bias_dtype, d) : 0.f;
  __syncthreads();
  // xv[i]: input at tv - 3 + i; dp[i]: d(pre-activation) of output tv + i (0 past the row).
  float xv[P + 2 * W1], dp[P + W1];
#pragma unroll
  for (int i = 0; i < P + 2 * W1; ++i) xv[i] = xs[at(8 * tid + 5 + i)];
#pragma unroll
  for (int i = 0; i < P + W1; ++i) {
    dp[i] = gs[at(8 * tid + 8 + i)];
    if (p.silu) {
      float v = bias;
#pragma unroll
      for (int k = 0; k < W; ++k) v += w[k] * xv[i + k];
      const float s = 1.f / (1.f + __expf(-v));
      dp[i] *= s * (1.f + v * (1.f - s));
    }
  }
  // dx at tv + j: the outputs tv + j + 3 - k it feeds through tap k; dweight[k] += dp·input(t - 3 + k).
  float acc[W + 1] = {};
  Vec8<T> out;
#pragma unroll
  for (int j = 0; j < P; ++j) {
    float g = 0.f;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      g += dp[j + W1 - k] * w[k];
      acc[k] += dp[j] * xv[j + k];
    }
    acc[W] += dp[j];
    const int64_t tau = tv + j;
    if (active && p.dfinal_states && tau >= L - W1) g += to_float(static_cast<const T*>(p.dfinal_states)[row * W1 + tau - (L - W1)]);
    out.v[j] = cuda::from_float<T>(g);
  }
  if (active) *reinterpret_cast<Vec8<T>*>(static_cast<T*>(p.dx) + row * L + tv) = out;
  if (blockIdx.y == 0 && tid == 0 && p.dinitial_states)  // initial-state position q feeds outputs 0..q
    for (int q = 0; q < W1; ++q) {
      float g = 0.f;
      for (int k = 0; k <= q; ++k) g += dp[q - k] * w[k];
      static_cast<T*>(p.dinitial_states)[row * W1 + q] = cuda::from_float<T>(g);
    }
  block_sums_to<W + 1>(acc, red, part + (row * gridDim.y + blockIdx.y) * (W + 1));
}

// dweight[d, k] (k = W: dbias[d]) = the bwd_tiled_kernel partials of channel d summed over batch and
// tiles, always in the same order.
__global__ void dweight_reduce_kernel(CausalConv1dParams p, const float* part, int tiles) {
  const int64_t W = p.width, n = p.dim * (W + 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i / (W + 1), k = i % (W + 1);
    if (k == W && !p.dbias) continue;
    float s = 0.f;
    for (int64_t b = 0; b < p.batch; ++b)
      for (int tile = 0; tile < tiles; ++tile) s += part[((b * p.dim + d) * tiles + tile) * (W + 1) + k];
    if (k == W)
      cuda::store_any(p.dbias, p.bias_dtype, d, s);
    else
      cuda::store_any(p.dweight, p.weight_dtype, d * W + k, s);
  }
}

// Decode step: launched with programmatic dependent launch (cuda/pdl.cuh), like the other
// kernels of a decode step, so it waits for its producer before touching any data.
template <typename T, typename S> __global__ void update_kernel(CausalConv1dUpdateParams p) {
  cuda::pdl_wait();
  cuda::pdl_trigger();
  const int64_t n = p.batch * p.dim, W = p.width;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < n; r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = r / p.dim, d = r % p.dim;
    const int64_t slot = p.state_idx ? p.state_idx[b] : b;
    if (slot < 0 || slot >= p.slots) {  // padding (y = 0) or a slot out of range (y = NaN)
      static_cast<T*>(p.y)[b * p.y_stride + d] = cuda::from_float<T>(slot < 0 ? 0.f : __int_as_float(0x7fc00000));
      continue;
    }
    S* s = static_cast<S*>(p.state) + (slot * p.dim + d) * (W - 1);
    const T xv = static_cast<const T*>(p.x)[b * p.x_stride + d];
    const float x = to_float(xv);
    float acc = p.bias ? load_any(p.bias, p.bias_dtype, d) : 0.f;
    for (int64_t k = 0; k < W - 1; ++k) acc += load_any(p.weight, p.weight_dtype, d * W + k) * to_float(s[k]);
    acc += load_any(p.weight, p.weight_dtype, d * W + W - 1) * x;
    for (int64_t k = 0; k + 1 < W - 1; ++k) s[k] = s[k + 1];
    if (W > 1) s[W - 2] = cuda::from_float<S>(x);
    static_cast<T*>(p.y)[b * p.y_stride + d] = cuda::from_float<T>(p.silu ? cuda::silu_f(acc) : acc);
  }
}

// Decode step of width 4 with x, y, state, weight (and bias) all in one 16-bit dtype: a thread
// takes 8 channels of one batch entry, every access 16 bytes (x, y: one each; the 8 channels' 3
// state values, 48 contiguous bytes: three; their 4 taps, 64 bytes: four, read before the PDL
// wait as parameters: only a kernel that triggers its dependents early can still be running then,
// and none of those writes conv weights). The generic kernel above spends a 64-bit division and a dtype switch per
// tap on each (entry, channel) and moves the state 2 bytes at a time.
template <typename T> __global__ void update_w4_vec_kernel(CausalConv1dUpdateParams p) {
  constexpr int V = 8, W = 4;
  const int64_t groups = p.dim / V, n = p.batch * groups;
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t b = r / groups, d0 = (r - b * groups) * V;
  uint4 wv[W];
  uint4 bv = make_uint4(0, 0, 0, 0);
  if (r < n) {
#pragma unroll
    for (int k = 0; k < W; ++k) wv[k] = __ldg(reinterpret_cast<const uint4*>(static_cast<const T*>(p.weight) + d0 * W) + k);
    if (p.bias) bv = __ldg(reinterpret_cast<const uint4*>(static_cast<const T*>(p.bias) + d0));
  }
  cuda::pdl_wait();
  cuda::pdl_trigger();
  if (r >= n) return;
  const int64_t slot = p.state_idx ? p.state_idx[b] : b;
  T* y = static_cast<T*>(p.y) + b * p.y_stride + d0;
  if (slot < 0 || slot >= p.slots) {  // padding (y = 0) or a slot out of range (y = NaN)
    const T v = cuda::from_float<T>(slot < 0 ? 0.f : __int_as_float(0x7fc00000));
    T o[V];
#pragma unroll
    for (int c = 0; c < V; ++c) o[c] = v;
    *reinterpret_cast<uint4*>(y) = *reinterpret_cast<const uint4*>(o);
    return;
  }
  const uint4 xu = *reinterpret_cast<const uint4*>(static_cast<const T*>(p.x) + b * p.x_stride + d0);
  uint4* sp = reinterpret_cast<uint4*>(static_cast<T*>(p.state) + (slot * p.dim + d0) * (W - 1));
  uint4 su[W - 1];
#pragma unroll
  for (int k = 0; k < W - 1; ++k) su[k] = sp[k];
  const T* xs = reinterpret_cast<const T*>(&xu);
  const T* ws = reinterpret_cast<const T*>(wv);
  const T* bs = reinterpret_cast<const T*>(&bv);
  T* ss = reinterpret_cast<T*>(su);
  T o[V];
#pragma unroll
  for (int c = 0; c < V; ++c) {
    float acc = p.bias ? to_float(bs[c]) : 0.f;
#pragma unroll
    for (int k = 0; k < W - 1; ++k) acc += to_float(ws[c * W + k]) * to_float(ss[c * (W - 1) + k]);
    acc += to_float(ws[c * W + W - 1]) * to_float(xs[c]);
    ss[c * (W - 1)] = ss[c * (W - 1) + 1];
    ss[c * (W - 1) + 1] = ss[c * (W - 1) + 2];
    ss[c * (W - 1) + 2] = xs[c];
    o[c] = cuda::from_float<T>(p.silu ? cuda::silu_f(acc) : acc);
  }
#pragma unroll
  for (int k = 0; k < W - 1; ++k) sp[k] = su[k];
  *reinterpret_cast<uint4*>(y) = *reinterpret_cast<const uint4*>(o);
}

}  // namespace

void causal_conv1d_fwd_cuda(const CausalConv1dParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    const int64_t n = p.batch * p.dim * p.seqlen, rows = p.batch * p.dim;
    const int64_t tiles = (p.seqlen + TiledTraits::kTile - 1) / TiledTraits::kTile;
    const int64_t w4_spans = (p.seqlen + W4Traits::kSpan - 1) / W4Traits::kSpan;
    const bool w4 = p.width == 4 && !p.seq_idx && p.seqlen % 8 == 0 && reinterpret_cast<uintptr_t>(p.x) % (8 * sizeof(T)) == 0 &&
                    reinterpret_cast<uintptr_t>(p.y) % (8 * sizeof(T)) == 0;
    const bool w4_ran = n > 0 && w4 && !p.channels_last && rows <= 0x7fffffff && w4_spans <= 65535;
    using Cl = ChannelsLastTraits;
    const int64_t cl_steps = (p.seqlen + Cl::steps<T>() - 1) / Cl::steps<T>();
    const bool cl_w4 = p.channels_last && p.width == Cl::kW && !p.seq_idx && p.dim % 8 == 0 && p.x_stride_t % 8 == 0 &&
                       (p.batch == 1 || p.x_stride_b % 8 == 0) && reinterpret_cast<uintptr_t>(p.x) % (8 * sizeof(T)) == 0 && cl_steps <= 65535 && p.batch <= 65535;
    if (p.channels_last) {
      // Channels-last input: the vector kernel, else the one-thread-per-output kernel (strided).
      if (n > 0 && cl_w4) {
        const dim3 grid(static_cast<unsigned>((p.dim / 8 + Cl::kThreads - 1) / Cl::kThreads), static_cast<unsigned>(cl_steps),
                        static_cast<unsigned>(p.batch));
        fwd_cl_w4_kernel<T><<<grid, Cl::kThreads, 0, st>>>(p);
      } else if (n > 0) {
        fwd_kernel<T><<<cuda::grid_1d(n, kThreads), kThreads, 0, st>>>(p);
      }
    } else if (n > 0 && w4 && rows <= 0x7fffffff && w4_spans <= 65535) {
      fwd_w4_kernel<T><<<dim3(static_cast<unsigned>(rows), static_cast<unsigned>(w4_spans)), W4Traits::kThreads, 0, st>>>(p);
    } else if (n > 0 && p.width <= TiledTraits::kMaxTiledWidth && rows <= 0x7fffffff && tiles <= 65535) {
      const size_t span = TiledTraits::kTile + p.width - 1;
      const size_t smem = (span + p.width + (p.seq_idx ? span : 0)) * 4;
      const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(tiles));
      if (p.width == 4)
        fwd_tiled_kernel<T, 4><<<grid, TiledTraits::kThreads, smem, st>>>(p);
      else
        fwd_tiled_kernel<T, 0><<<grid, TiledTraits::kThreads, smem, st>>>(p);
    } else if (n > 0) {
      fwd_kernel<T><<<cuda::grid_1d(n, kThreads), kThreads, 0, st>>>(p);
    }
    if (p.final_states && p.width > 1 && !w4_ran)  // the w4 kernel writes them
      final_states_kernel<T><<<cuda::grid_1d(p.batch * p.dim * (p.width - 1), kThreads), kThreads, 0, st>>>(p);
  });
  cuda::check_launch("causalConv1d");
}

namespace {
// The tiled backward's grid: (rows, tiles); 0 tiles when the shape needs the per-element kernels.
int64_t bwd_tiles(const CausalConv1dParams& p) {
  const int64_t rows = p.batch * p.dim, tiles = (p.seqlen + TiledTraits::kTile - 1) / TiledTraits::kTile;
  return p.width <= TiledTraits::kMaxTiledWidth && rows <= 0x7fffffff && tiles <= 65535 ? tiles : 0;
}
}  // namespace

int64_t causal_conv1d_bwd_scratch_floats(const CausalConv1dParams& p) {
  const int64_t tiles = bwd_tiles(p);
  return tiles > 0 ? p.batch * p.dim * tiles * (p.width + 1) : p.batch * p.dim * p.seqlen;
}

void causal_conv1d_bwd_cuda(const CausalConv1dParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int64_t tiles = bwd_tiles(p);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    const int64_t rows = p.batch * p.dim;
    if (tiles > 0 && rows > 0) {
      const int64_t W1 = p.width - 1, xspan = TiledTraits::kTile + 2 * W1;
      const size_t smem = (xspan + TiledTraits::kTile + W1 + p.width + (p.seq_idx ? xspan : 0)) * 4;
      const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(tiles));
      auto aligned = [](const void* q) { return reinterpret_cast<uintptr_t>(q) % (8 * sizeof(T)) == 0; };
      if (p.width == 4 && !p.seq_idx && p.seqlen % 8 == 0 && aligned(p.x) && aligned(p.dy) && aligned(p.dx))
        bwd_w4_kernel<T><<<grid, TiledTraits::kThreads, 0, st>>>(p, p.scratch);
      else if (p.width == 4)
        bwd_tiled_kernel<T, 4><<<grid, TiledTraits::kThreads, smem, st>>>(p, p.scratch);
      else
        bwd_tiled_kernel<T, 0><<<grid, TiledTraits::kThreads, smem, st>>>(p, p.scratch);
      dweight_reduce_kernel<<<cuda::grid_1d(p.dim * (p.width + 1), kThreads), kThreads, 0, st>>>(p, p.scratch, static_cast<int>(tiles));
      return;
    }
    const int64_t n = rows * p.seqlen;
    if (n > 0) dpre_kernel<T><<<cuda::grid_1d(n, kThreads), kThreads, 0, st>>>(p);
    const int64_t nq = rows * (p.seqlen + p.width - 1);
    if (nq > 0) dinput_kernel<T><<<cuda::grid_1d(nq, kThreads), kThreads, 0, st>>>(p);
    if (p.dim > 0) dweight_kernel<T><<<static_cast<unsigned>(p.dim), kThreads, 0, st>>>(p);
  });
  cuda::check_launch("causalConv1dBackward");
}

void causal_conv1d_update_cuda(const CausalConv1dUpdateParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  auto a16 = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  const bool w4_vec = p.width == 4 && p.dtype != DType::Float32 && p.state_dtype == p.dtype && p.weight_dtype == p.dtype &&
                      (!p.bias || p.bias_dtype == p.dtype) && p.dim % 8 == 0 && p.x_stride % 8 == 0 && p.y_stride % 8 == 0 &&
                      p.batch * p.dim / 8 <= int64_t{kThreads} << 20 &&  // one item per thread (grid_1d's cap)
                      a16(p.x) && a16(p.y) && a16(p.state) && a16(p.weight) && (!p.bias || a16(p.bias));
  if (w4_vec) {
    const dim3 grid(cuda::grid_1d(p.batch * p.dim / 8, kThreads));
    if (p.dtype == DType::BFloat16) {
      cuda::set_smem_once<update_w4_vec_kernel<__nv_bfloat16>>(0, "causalConv1dUpdate: carveout");  // the largest carveout (smem_optin.h)
      cuda::launch_pdl(update_w4_vec_kernel<__nv_bfloat16>, grid, dim3(kThreads), 0, st, p);
    } else {
      cuda::set_smem_once<update_w4_vec_kernel<__half>>(0, "causalConv1dUpdate: carveout");
      cuda::launch_pdl(update_w4_vec_kernel<__half>, grid, dim3(kThreads), 0, st, p);
    }
    cuda::check_launch("causalConv1dUpdate");
    return;
  }
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    SS_FLOAT_SWITCH(p.state_dtype, S, [&] {
      cuda::launch_pdl(update_kernel<T, S>, dim3(cuda::grid_1d(p.batch * p.dim, kThreads)), dim3(kThreads), 0, st, p);
    });
  });
  cuda::check_launch("causalConv1dUpdate");
}

}  // namespace ss
