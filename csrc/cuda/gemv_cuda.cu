// Matrix-vector products of decode: out (M, N) = x (M, K) · w (N, K)ᵀ + bias for M <= 8 rows.
//
// Bound by reading w once, so the kernel is laid out for the memory system:
//  - a warp owns C consecutive output columns and a slice of K; each lane reads 16-byte vectors,
//    U per column per batch, so C·U = 8 independent loads per lane are in flight before any math
//    (C = 4 for wide outputs, 1 for narrow ones: the same bytes in flight, more warps); with one
//    row, two batches are in flight (the next loads while the current is consumed);
//  - narrow outputs with a long K (x_proj: 192 columns) also split K across the S warps of a
//    block, the slices' sums added in a fixed order through shared memory (reproducible);
//  - blocks are small (4 warps) and there are >= 4 per SM, so the grid is spread evenly over the
//    SMs without a partly empty last wave;
//  - launched with programmatic dependent launch: the first batch of weights is loaded before
//    waiting for the kernel that produces x, so the weight stream starts during its tail;
//  - optionally (GemvConv) the decode step's causal conv is applied to its columns on the way out
//    (in_proj and the conv update in one kernel).
// x is re-read per batch from L1 (every warp of the SM reads the same x).
#include <type_traits>
#include "cuda/async_copy.cuh"
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "cuda/vec_io.cuh"
#include "ops/decode_proj.h"
#include "ops/dense.h"

namespace ss {
namespace {

using cuda::to_float;

struct GemvTraits {
  static constexpr int kWarps = 4, kThreads = kWarps * 32;
  // Weight vectors per lane per batch (C·U): 8 for one row; 4 with several rows, whose x vectors
  // (MM·U per batch) need registers too.
  static constexpr int in_flight(int rows) { return rows == 1 ? 4 : 4; }
  static constexpr int kMaxM = 8;
};
static_assert(GemvTraits::kMaxM == kGemvMaxM, "ops/dense.h and the kernel agree on the largest M");

template <typename T, int V> struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <typename T, int V> __device__ __forceinline__ Vec<T, V> load_stream(const T* p) {
  if constexpr (sizeof(Vec<T, V>) == 16) {
    const uint4 u = __ldcs(reinterpret_cast<const uint4*>(p));  // read once: evict first
    Vec<T, V> r;
    memcpy(&r, &u, 16);
    return r;
  } else {
    return *reinterpret_cast<const Vec<T, V>*>(p);
  }
}

template <typename T, int V> __device__ __forceinline__ Vec<T, V> load_x(const T* p) {
  return *reinterpret_cast<const Vec<T, V>*>(p);
}

// acc + Σ_j a[j]·b[j] in f32, converting each element just before its multiply-add (bf16 by bit
// placement), so no converted vector has to live in registers.
template <typename T, int V> __device__ __forceinline__ float dot_acc(const Vec<T, V>& a, const Vec<T, V>& b, float acc) {
  if constexpr (std::is_same_v<T, __nv_bfloat16> && V % 2 == 0) {
    uint32_t wa[V / 2], wb[V / 2];
    memcpy(wa, &a, sizeof(wa));
    memcpy(wb, &b, sizeof(wb));
#pragma unroll
    for (int j = 0; j < V / 2; ++j) {
      acc = fmaf(__uint_as_float(wa[j] << 16), __uint_as_float(wb[j] << 16), acc);
      acc = fmaf(__uint_as_float(wa[j] & 0xffff0000u), __uint_as_float(wb[j] & 0xffff0000u), acc);
    }
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) acc = fmaf(to_float(a.v[j]), to_float(b.v[j]), acc);
  }
  return acc;
}

// The conv step of a conv column (GemvConv), on this kernel's rounded output v: the same
// arithmetic, in the same order, as causalConv1dUpdate's kernel applied to the stored output.
template <typename T> __device__ float conv_step(const GemvConv& cv, int m, int64_t ch, float v) {
  using cuda::load_any;
  const float x = to_float(cuda::from_float<T>(v));
  const int64_t W = cv.width, base = (m * cv.channels + ch) * (W - 1);
  float acc = cv.bias ? load_any(cv.bias, cv.bias_dtype, ch) : 0.f;
  for (int64_t k = 0; k < W - 1; ++k) acc += load_any(cv.weight, cv.weight_dtype, ch * W + k) * load_any(cv.state, cv.state_dtype, base + k);
  acc += load_any(cv.weight, cv.weight_dtype, ch * W + W - 1) * x;
  for (int64_t k = 0; k + 1 < W - 1; ++k) cuda::store_any(cv.state, cv.state_dtype, base + k, load_any(cv.state, cv.state_dtype, base + k + 1));
  if (W > 1) cuda::store_any(cv.state, cv.state_dtype, base + W - 2, x);
  return cv.silu ? cuda::silu_f(acc) : acc;
}

// A row of `bytes` (a multiple of 16) copied by the block, every copy in flight at once.
__device__ __forceinline__ void copy_row_async(void* dst, const void* src, int64_t bytes) {
  for (int64_t o = threadIdx.x * int64_t{16}; o < bytes; o += GemvTraits::kThreads * int64_t{16})
    cuda::copy_async16(static_cast<unsigned char*>(dst) + o, static_cast<const unsigned char*>(src) + o);
}

// Shared memory of the norm prologue: the normalised rows hx (M x K in T), then the staging of
// one row of x, of the residual and of the gate.
inline size_t norm_smem_bytes(const GemmParams& p, const GemvNorm& nm) {
  const size_t t = dtype_size(p.dtype);
  return static_cast<size_t>(p.M * p.K) * t + static_cast<size_t>(p.K) * (t + (nm.residual ? dtype_size(nm.residual_dtype) : 0) + (nm.z ? t : 0));
}

// The norm prologue (GemvNorm): the block normalises the M rows of x into hx (shared memory):
// r = x (+ residual) (· silu(z)), h = r · rsqrt(mean(r²) + eps) · weight. Each row's inputs are
// first brought into shared memory with asynchronous copies (one round trip to L2, no registers
// held: the first weight batch occupies registers across the prologue), then read twice there
// (the sum of squares, then the scaled values). Every block computes the same values in the
// same order; block 0 also writes residual_out.
template <typename T, int V>
__device__ void normalize_rows(const GemmParams& p, const GemvNorm& nm, int M, const T* x, int64_t ldx, T* hx) {
  constexpr int W = GemvTraits::kWarps;
  __shared__ float red[2][W];
  const int64_t K = p.K;
  const int nv = static_cast<int>(K / V);
  const int64_t rsize = !nm.residual ? 0 : nm.residual_dtype == DType::Float32 ? 4 : 2;
  T* sx = hx + M * K;
  unsigned char* sr = reinterpret_cast<unsigned char*>(sx + K);
  T* sz = reinterpret_cast<T*>(sr + K * rsize);
  auto load_r = [&](int i, float (&r)[V]) {
    const int64_t at = static_cast<int64_t>(i) * V;
    const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(sx + at);
#pragma unroll
    for (int e = 0; e < V; ++e) r[e] = to_float(xv.v[e]);
    if (nm.residual) {
      float res[V];
      cuda::load_vals<V>(sr, nm.residual_dtype, at, res);
#pragma unroll
      for (int e = 0; e < V; ++e) r[e] += res[e];
    }
    if (nm.z) {
      const Vec<T, V> zv = *reinterpret_cast<const Vec<T, V>*>(sz + at);
#pragma unroll
      for (int e = 0; e < V; ++e) r[e] *= cuda::silu_f(to_float(zv.v[e]));
    }
  };
  for (int m = 0; m < M; ++m) {
    copy_row_async(sx, x + m * ldx, K * static_cast<int64_t>(sizeof(T)));
    if (nm.residual) copy_row_async(sr, static_cast<const unsigned char*>(nm.residual) + m * K * rsize, K * rsize);
    if (nm.z) copy_row_async(sz, static_cast<const T*>(nm.z) + m * nm.z_stride, K * static_cast<int64_t>(sizeof(T)));
    cuda::copy_async_wait();
    __syncthreads();
    float ss = 0.f;
    for (int i = threadIdx.x; i < nv; i += GemvTraits::kThreads) {
      float r[V];
      load_r(i, r);
#pragma unroll
      for (int e = 0; e < V; ++e) ss += r[e] * r[e];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x % 32 == 0) red[m & 1][threadIdx.x / 32] = ss;
    __syncthreads();  // (red[m & 1] is rewritten two rows later, after the next row's barriers)
    float tot = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) tot += red[m & 1][w];
    const float scale = rsqrtf(tot / static_cast<float>(K) + nm.eps);
    for (int i = threadIdx.x; i < nv; i += GemvTraits::kThreads) {
      const int64_t at = static_cast<int64_t>(i) * V;
      float r[V], wv[V];
      load_r(i, r);
      if (nm.residual && blockIdx.x == 0) cuda::store_vals<V>(nm.residual_out, nm.residual_dtype, m * K + at, r);
      cuda::load_vals<V>(nm.weight, nm.weight_dtype, at, wv);
      Vec<T, V> h;
#pragma unroll
      for (int e = 0; e < V; ++e) h.v[e] = cuda::from_float<T>(r[e] * scale * wv[e]);
      *reinterpret_cast<Vec<T, V>*>(hx + m * K + at) = h;
    }
    __syncthreads();  // the staging is overwritten by the next row; hx is complete after the last
  }
}

// Grid: one block per (C·kWarps/S) columns. Warp w of a block: column group w / S, K slice w % S
// of length kslice (a multiple of 32·V). MM: rows handled (1, or up to 8 with M at run time).
template <typename T, int V, int C, int MM>
__global__ void __launch_bounds__(GemvTraits::kThreads, MM == 1 ? (sizeof(T) < 4 ? 6 : 3) : 4) gemv_kernel(GemmParams p, GemvConv cv, GemvNorm nm, int S, int64_t kslice) {
  constexpr int U = GemvTraits::in_flight(MM) / C;
  constexpr int64_t LS = 32 * V;  // a warp's stride along K
  __shared__ float red[GemvTraits::kWarps][C * MM];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slice = warp % S;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) * (GemvTraits::kWarps / S) + warp / S) * C;
  const int M = MM == 1 ? 1 : static_cast<int>(p.M);
  const int64_t K = p.K;
  int64_t ldx = p.ldx ? p.ldx : p.K;
  const T* w = static_cast<const T*>(p.weight);
  const T* x = static_cast<const T*>(p.x);
  extern __shared__ __align__(16) unsigned char norm_smem[];
  const T* wr[C];
#pragma unroll
  for (int c = 0; c < C; ++c) wr[c] = w + (n0 + c < p.N ? n0 + c : p.N - 1) * K;  // clamped: loads stay in bounds
  const int64_t k_end = min(K, (slice + 1) * kslice);
  int64_t k = slice * kslice + lane * V;

  float acc[C][MM];
#pragma unroll
  for (int c = 0; c < C; ++c)
#pragma unroll
    for (int m = 0; m < MM; ++m) acc[c][m] = 0.f;

  // NB weight batches in flight: two for one row (while one is consumed the next is loading),
  // one for several rows (their x vectors need the registers).
  constexpr int NB = MM == 1 ? 2 : 1;
  const int64_t step = U * LS;
  const int nfull = k + (U - 1) * LS < k_end ? static_cast<int>((k_end - k - (U - 1) * LS + step - 1) / step) : 0;
  Vec<T, V> wv[NB][C][U];
#pragma unroll
  for (int sl = 0; sl < NB; ++sl)
    if (sl < nfull)  // parameters only: may run before the producer of x has finished
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int c = 0; c < C; ++c) wv[sl][c][u] = load_stream<T, V>(wr[c] + k + sl * step + u * LS);
  cuda::pdl_wait();
  cuda::pdl_trigger();
  if constexpr (V > 1 && sizeof(T) == 2) {  // (16-bit data only: f32 models take the ops in turn)
    if (nm.weight) {  // x becomes the normalised rows, in shared memory
      T* hx = reinterpret_cast<T*>(norm_smem);
      normalize_rows<T, V>(p, nm, M, x, ldx, hx);
      x = hx;
      ldx = K;
    }
  }
  for (int b0 = 0; b0 < nfull; b0 += NB) {
#pragma unroll
    for (int sl = 0; sl < NB; ++sl) {
      const int b = b0 + sl;
      if (b >= nfull) break;
      const int64_t kb = k + b * step;
#pragma unroll
      for (int m = 0; m < MM; ++m) {
        if (m >= M) break;
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const Vec<T, V> xv = load_x<T, V>(x + m * ldx + kb + u * LS);
#pragma unroll
          for (int c = 0; c < C; ++c) acc[c][m] = dot_acc(xv, wv[sl][c][u], acc[c][m]);
        }
      }
      if (b + NB < nfull)  // refill this slot NB batches further on
#pragma unroll
        for (int u = 0; u < U; ++u)
#pragma unroll
          for (int c = 0; c < C; ++c) wv[sl][c][u] = load_stream<T, V>(wr[c] + kb + NB * step + u * LS);
    }
  }
  k += nfull * step;
  for (; k < k_end; k += LS) {  // fewer than U vectors left in this lane's part of the slice
    Vec<T, V> t[C];
#pragma unroll
    for (int c = 0; c < C; ++c) t[c] = load_stream<T, V>(wr[c] + k);
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      if (m >= M) break;
      const Vec<T, V> xv = load_x<T, V>(x + m * ldx + k);
#pragma unroll
      for (int c = 0; c < C; ++c) acc[c][m] = dot_acc(xv, t[c], acc[c][m]);
    }
  }

  // Every lane ends with every (column, row) sum; lane c·MM + m owns output (m, n0 + c).
  float mine = 0.f;
#pragma unroll
  for (int c = 0; c < C; ++c)
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      float v = acc[c][m];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == c * MM + m) mine = v;
    }
  const int c = lane / MM, m = lane % MM;
  const bool owner = lane < C * MM && m < M && n0 + c < p.N;
  if (S > 1) {
    if (lane < C * MM) red[warp][lane] = mine;
    __syncthreads();
    if (slice != 0) return;
    for (int s = 1; s < S; ++s) mine += red[warp + s][lane < C * MM ? lane : 0];
  }
  if (owner) {
    const int64_t n = n0 + c;
    if (p.bias) mine += cuda::load_any(p.bias, p.bias_dtype, n);
    if (cv.state && n >= cv.lo && n < cv.lo + cv.channels) mine = conv_step<T>(cv, m, n - cv.lo, mine);
    static_cast<T*>(p.out)[m * p.N + n] = cuda::from_float<T>(mine);
  }
}

template <typename T, int V, int C>
void launch_rows(const GemmParams& p, const GemvConv& cv, const GemvNorm& nm, cudaStream_t st, int S, int64_t kslice, unsigned blocks) {
  const size_t smem = nm.weight ? norm_smem_bytes(p, nm) : 0;
  if (p.M == 1)
    cuda::launch_pdl(gemv_kernel<T, V, C, 1>, dim3(blocks), dim3(GemvTraits::kThreads), smem, st, p, cv, nm, S, kslice);
  else
    cuda::launch_pdl(gemv_kernel<T, V, C, GemvTraits::kMaxM>, dim3(blocks), dim3(GemvTraits::kThreads), smem, st, p, cv, nm, S, kslice);
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

template <typename T> void launch_gemv(const GemmParams& p, const GemvConv& cv, const GemvNorm& nm, cudaStream_t st) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = p.K % V == 0 && p.ldx % V == 0 && aligned16(p.x) && aligned16(p.weight);
  // Enough blocks for every SM to hold several (even spread, bytes in flight): fewer columns per
  // warp for narrow outputs, then K split across the warps of a block.
  const int64_t want = 4 * static_cast<int64_t>(cuda::sm_count());
  const int64_t W = GemvTraits::kWarps;
  int C = vec ? 4 : 1;
  while (C > 1 && (p.N + W * C - 1) / (W * C) < want) C /= 2;
  const int lanes_v = vec ? V : 1;
  int S = 1;
  while (S < W && (p.N * S + W * C - 1) / (W * C) < want && p.K >= 2 * S * 32 * lanes_v * (GemvTraits::in_flight(1) / C)) S *= 2;
  const int64_t per = 32 * lanes_v;
  const int64_t kslice = ((p.K + S - 1) / S + per - 1) / per * per;
  const int64_t cols_per_block = W / S * C;
  const int64_t blocks = (p.N + cols_per_block - 1) / cols_per_block;
  if (blocks > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "linear: too many outputs");
  const unsigned g = static_cast<unsigned>(blocks);
  if (!vec) {
    launch_rows<T, 1, 1>(p, cv, nm, st, S, kslice, g);
  } else if (C == 4) {
    launch_rows<T, V, 4>(p, cv, nm, st, S, kslice, g);
  } else if (C == 2) {
    launch_rows<T, V, 2>(p, cv, nm, st, S, kslice, g);
  } else {
    launch_rows<T, V, 1>(p, cv, nm, st, S, kslice, g);
  }
}

}  // namespace

void gemv_cuda(const GemmParams& p, void* stream, const GemvConv* conv) {
  const GemvConv cv = conv ? *conv : GemvConv{};
  SS_FLOAT_SWITCH(p.dtype, T, [&] { launch_gemv<T>(p, cv, GemvNorm{}, static_cast<cudaStream_t>(stream)); });
  cuda::check_launch("linear (gemv)");
}

bool gemv_norm_fits(const GemmParams& p, const GemvNorm& nm) {
  const int64_t V = 16 / static_cast<int64_t>(dtype_size(p.dtype));
  auto aligned_to = [](const void* ptr, int64_t bytes) { return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % bytes == 0; };
  return dtype_size(p.dtype) == 2 && p.M >= 1 && p.M <= kGemvMaxM && p.ldx == 0 && p.K % V == 0 && nm.z_stride % V == 0 && aligned_to(nm.z, 16) &&
         norm_smem_bytes(p, nm) <= 48 * 1024 && aligned16(p.x) && aligned16(p.weight) &&
         aligned_to(nm.residual, static_cast<int64_t>(dtype_size(nm.residual_dtype)) * V) &&
         aligned_to(nm.residual_out, static_cast<int64_t>(dtype_size(nm.residual_dtype)) * V) &&
         aligned_to(nm.weight, static_cast<int64_t>(dtype_size(nm.weight_dtype)) * V);
}

void gemv_norm_cuda(const GemmParams& p, const GemvNorm& nm, const GemvConv* conv, void* stream) {
  if (!gemv_norm_fits(p, nm)) fail("ERR_INVALID_ARG", ErrorKind::Type, "rmsNormLinear: operands the fused kernel cannot take");
  const GemvConv cv = conv ? *conv : GemvConv{};
  SS_FLOAT_SWITCH(p.dtype, T, [&] { launch_gemv<T>(p, cv, nm, static_cast<cudaStream_t>(stream)); });
  cuda::check_launch("rmsNormLinear (gemv)");
}

}  // namespace ss
