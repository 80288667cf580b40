// Matrix-vector products of decode: out (M, N) = x (M, K) · w (N, K)ᵀ + bias for M <= 8 rows.
//
// Bound by reading w once, so the kernel is laid out for the memory system:
//  - a warp owns C consecutive output columns and a slice of K; each lane reads 16-byte vectors,
//    U per column per batch, so C·U = 8 independent loads per lane are in flight before any math
//    (C = 4 for wide outputs, 1 for narrow ones: the same bytes in flight, more warps);
//  - narrow outputs with a long K (x_proj: 192 columns) also split K across the S warps of a
//    block, the slices' sums added in a fixed order through shared memory (reproducible);
//  - blocks are small (4 warps) and there are >= 4 per SM, so the grid is spread evenly over the
//    SMs without a partly empty last wave;
//  - launched with programmatic dependent launch: the first batch of weights is loaded before
//    waiting for the kernel that produces x, so the weight stream starts during its tail;
//  - optionally (GemvConv) the decode step's causal conv is applied to its columns on the way out
//    (in_proj and the conv update in one kernel);
//  - optionally (GemvNorm, one row) the RMSNorm before a projection is folded in: the kernel sums
//    r² of the row it reads anyway and scales each output at the end (a decode step needs no
//    separate norm kernel); optionally (GemvResidual) the residual add after out_proj is applied
//    in the epilogue;
//  - optionally (GemvPrefetch) each warp requests more of its weight rows into L2 before the wait
//    (cuda/l2_prefetch.cuh), so that they stream from L2 once x is ready, and the blocks request
//    the next projection's first weights after it.
// x is re-read per batch from L1 (every warp of the SM reads the same x).
#include <algorithm>
#include <cstdlib>
#include <type_traits>
#include "cuda/check.cuh"
#include "cuda/l2_prefetch.cuh"
#include "cuda/load_any.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "ops/dense.h"
#include "ops/sampling.h"

namespace ss {
namespace {

using cuda::to_float;

struct GemvTraits {
  static constexpr int kWarps = 4, kThreads = kWarps * 32;
  // Weight vectors per lane per batch (C·U): 8 for one row; 4 with several rows, whose x vectors
  // (MM·U per batch) need registers too.
  static constexpr int in_flight(int rows) { return rows == 1 ? 8 : 4; }
  // Weight vectors per column per batch (U) for C columns per warp. With the on-the-fly norm of a
  // float32 row each is matched by an f32 slice of the row in registers: 2 per column with 2 or 4
  // columns, 4 with one (more spill at 80 registers).
  static constexpr int batch(int C, int rows, bool f32_norm) { return !f32_norm ? in_flight(rows) / C : (4 / C > 2 ? 4 / C : 2); }
  // Blocks per SM the register budget must allow: the grid is sized for >= 4 per SM, and 6 (80
  // registers) keep a whole in_proj grid resident at once (mamba2-2.7b: 661 blocks on 132 SMs).
  static constexpr int min_blocks(size_t elem, int rows) { return rows == 1 && elem < 4 ? 6 : 4; }
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

// acc + Σ_j a[j]·b[j] with a already in f32 (a normalised input row).
template <typename T, int V> __device__ __forceinline__ float dot_acc(const float (&a)[V], const Vec<T, V>& b, float acc) {
  if constexpr (std::is_same_v<T, __nv_bfloat16> && V % 2 == 0) {
    uint32_t wb[V / 2];
    memcpy(wb, &b, sizeof(wb));
#pragma unroll
    for (int j = 0; j < V / 2; ++j) {
      acc = fmaf(a[2 * j], __uint_as_float(wb[j] << 16), acc);
      acc = fmaf(a[2 * j + 1], __uint_as_float(wb[j] & 0xffff0000u), acc);
    }
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) acc = fmaf(a[j], to_float(b.v[j]), acc);
  }
  return acc;
}

// How the kernel reads its input row: as is, or normalised on the fly (GemvNorm) from a float32
// row or from a row in W's dtype.
enum GemvInput : int { kPlainX = 0, kNormF32X = 1, kNormX = 2 };


// V elements of the normalised row's numerator at kk: xe = r · weight, with ss += r² (GemvNorm).
template <typename T, int V, int XM>
__device__ __forceinline__ void norm_input(const void* x, const GemvNorm& nm, int64_t kk, float (&xe)[V], float& ss) {
  float r[V];
  if constexpr (XM == kNormF32X) {
    const float* xf = static_cast<const float*>(x) + kk;
    if constexpr (V % 4 == 0) {
#pragma unroll
      for (int j = 0; j < V; j += 4) {
        const float4 q = *reinterpret_cast<const float4*>(xf + j);
        r[j] = q.x, r[j + 1] = q.y, r[j + 2] = q.z, r[j + 3] = q.w;
      }
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) r[j] = xf[j];
    }
  } else {
    const Vec<T, V> xv = load_x<T, V>(static_cast<const T*>(x) + kk);
#pragma unroll
    for (int j = 0; j < V; ++j) r[j] = to_float(xv.v[j]);
  }
  const Vec<T, V> wn = load_x<T, V>(static_cast<const T*>(nm.weight) + kk);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    ss = fmaf(r[j], r[j], ss);
    xe[j] = r[j] * to_float(wn.v[j]);
  }
}

// The running argmax of a one-row product (GemvArgmax) across the blocks of a launch, and how
// many blocks have added theirs; the last block reads it out and resets both for the next launch
// (one stream per device: launches never overlap here).
__device__ unsigned long long g_argmax_key;
__device__ unsigned int g_argmax_blocks;

// (value, column) as one integer whose maximum is the argmax: NaN above every number, then the
// value's order (-0 as +0), then the lower column.
__device__ __forceinline__ unsigned long long argmax_key(float v, int64_t n) {
  uint32_t b = __float_as_uint(v);
  uint32_t u;
  if ((b & 0x7fffffffu) > 0x7f800000u) {
    u = 0xffffffffu;
  } else {
    if ((b & 0x7fffffffu) == 0) b = 0;
    u = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  }
  return (static_cast<unsigned long long>(u) << 32) | (0xffffffffu - static_cast<uint32_t>(n));
}

// The block's best key to the device-wide maximum; the last block to arrive writes the index.
__device__ void block_argmax(unsigned long long key, int32_t* out) {
  __shared__ unsigned long long wk[GemvTraits::kWarps];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) key = max(key, __shfl_xor_sync(0xffffffffu, key, o));
  if (threadIdx.x % 32 == 0) wk[threadIdx.x / 32] = key;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int w = 1; w < GemvTraits::kWarps; ++w) key = max(key, wk[w]);
  atomicMax(&g_argmax_key, key);
  __threadfence();
  if (atomicAdd(&g_argmax_blocks, 1u) != gridDim.x - 1) return;
  __threadfence();
  const unsigned long long best = atomicExch(&g_argmax_key, 0ull);
  g_argmax_blocks = 0;
  *out = static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(best));
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

// GemvPrefetch as the kernel takes it: elems a multiple of V; block b requests bytes
// [b·next_share, min((b + 1)·next_share, next_bytes)) of next (16-byte multiples).
struct GemvL2 {
  int64_t elems = 0;
  const char* next = nullptr;
  int64_t next_bytes = 0, next_share = 0;
  int priority = 0;
};

// Grid: one block per (C·kWarps/S) columns. Warp w of a block: column group w / S, K slice w % S
// of length kslice (a multiple of 32·V). MM: rows handled (1, or up to 8 with M at run time).
// XM (GemvInput): the input row as is, or normalised on the fly (MM = 1).
template <typename T, int V, int C, int MM, int XM>
__global__ void __launch_bounds__(GemvTraits::kThreads, GemvTraits::min_blocks(sizeof(T), MM))
    gemv_kernel(GemmParams p, GemvConv cv, GemvNorm nm, GemvResidual rs, GemvArgmax am, int S, int64_t kslice, GemvL2 l2) {
  static_assert(XM == kPlainX || MM == 1, "the on-the-fly norm handles one row");
  constexpr int U = GemvTraits::batch(C, MM, XM == kNormF32X);
  constexpr int64_t LS = 32 * V;  // a warp's stride along K
  __shared__ float red[GemvTraits::kWarps][C * MM];
  __shared__ float red_ss[GemvTraits::kWarps];
  float ss = 0.f;  // Σ r² over this lane's part of the row (GemvNorm)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slice = warp % S;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) * (GemvTraits::kWarps / S) + warp / S) * C;
  const int M = MM == 1 ? 1 : static_cast<int>(p.M);
  const int64_t K = p.K, ldx = p.ldx ? p.ldx : p.K;
  const T* w = static_cast<const T*>(p.weight);
  const T* x = static_cast<const T*>(p.x);
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

  Vec<T, V> wv[C][U];
  auto load_batch = [&](int64_t k0) {
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int c = 0; c < C; ++c) wv[c][u] = load_stream<T, V>(wr[c] + k0 + u * LS);
  };
  bool full = k + (U - 1) * LS < k_end;
  if (full) load_batch(k);  // parameters only: may run before the producer of x has finished
  if (l2.elems > 0 && lane < C) {
    // Lane c: row n0 + c's next l2.elems elements of this slice past the first batch, into L2
    // (16-byte multiples: K, the slice and the batch are multiples of V).
    const int64_t k0 = slice * kslice + U * LS, k1 = min(k_end, k0 + l2.elems);
    if (k0 < k1 && n0 + lane < p.N) cuda::l2_prefetch_bulk(w + (n0 + lane) * K + k0, static_cast<uint32_t>((k1 - k0) * sizeof(T)), l2.priority);
  }
  cuda::pdl_wait();
  cuda::pdl_trigger();
  if (l2.next_share > 0 && threadIdx.x == 0) {
    const int64_t lo = blockIdx.x * l2.next_share, n = min(l2.next_share, l2.next_bytes - lo);
    if (n > 0) cuda::l2_prefetch_bulk(l2.next + lo, static_cast<uint32_t>(n), l2.priority);
  }
  while (full) {
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      if (m >= M) break;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if constexpr (XM == kPlainX) {
          const Vec<T, V> xv = load_x<T, V>(x + m * ldx + k + u * LS);
#pragma unroll
          for (int c = 0; c < C; ++c) acc[c][m] = dot_acc(xv, wv[c][u], acc[c][m]);
        } else {
          float xe[V];
          norm_input<T, V, XM>(p.x, nm, k + u * LS, xe, ss);
#pragma unroll
          for (int c = 0; c < C; ++c) acc[c][m] = dot_acc(xe, wv[c][u], acc[c][m]);
        }
      }
    }
    k += U * LS;
    full = k + (U - 1) * LS < k_end;
    if (full) load_batch(k);
  }
  // Fewer than U vectors left in this lane's part of the slice: one vector per column per round
  // trip. (Loading them all at once, before or after the wait, measured slower twice: mamba-130m
  // 0.396 -> 0.447 ms/token, whose gemvs are all tail; see bench/NOTES.md.)
  for (; k < k_end; k += LS) {
    Vec<T, V> t[C];
#pragma unroll
    for (int c = 0; c < C; ++c) t[c] = load_stream<T, V>(wr[c] + k);
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      if (m >= M) break;
      if constexpr (XM == kPlainX) {
        const Vec<T, V> xv = load_x<T, V>(x + m * ldx + k);
#pragma unroll
        for (int c = 0; c < C; ++c) acc[c][m] = dot_acc(xv, t[c], acc[c][m]);
      } else {
        float xe[V];
        norm_input<T, V, XM>(p.x, nm, k, xe, ss);
#pragma unroll
        for (int c = 0; c < C; ++c) acc[c][m] = dot_acc(xe, t[c], acc[c][m]);
      }
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
  if constexpr (XM != kPlainX) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  }
  const int c = lane / MM, m = lane % MM;
  const bool owner = lane < C * MM && m < M && n0 + c < p.N;
  if (S > 1) {
    if (lane < C * MM) red[warp][lane] = mine;
    if (XM != kPlainX && lane == 0) red_ss[warp] = ss;
    __syncthreads();
    if (slice != 0) return;
    for (int s = 1; s < S; ++s) {
      mine += red[warp + s][lane < C * MM ? lane : 0];
      if constexpr (XM != kPlainX) ss += red_ss[warp + s];
    }
  }
  unsigned long long key = 0;
  if (owner) {
    const int64_t n = n0 + c;
    if constexpr (XM != kPlainX) mine *= rsqrtf(ss / static_cast<float>(p.K) + nm.eps);
    if (p.bias) mine += cuda::load_any(p.bias, p.bias_dtype, n);
    if (cv.state && n >= cv.lo && n < cv.lo + cv.channels) mine = conv_step<T>(cv, m, n - cv.lo, mine);
    const T y = cuda::from_float<T>(mine);
    if (rs.out)
      cuda::store_any(rs.out, rs.dtype, m * p.N + n, cuda::load_any(rs.residual, rs.dtype, m * p.N + n) + to_float(y));
    else
      static_cast<T*>(p.out)[m * p.N + n] = y;
    key = argmax_key(to_float(y), n);
  }
  if constexpr (MM == 1)
    if (am.out) block_argmax(key, am.out);  // one row, no K split (launch_gemv): every thread gets here
}

// Everything a launch passes besides the shape decisions.
struct GemvArgs {
  GemmParams p;
  GemvConv cv;
  GemvNorm nm;
  GemvResidual rs;
  GemvArgmax am;
  GemvL2 l2;  // elems: vectorised launches only (its pieces are runs of whole vectors)
};

template <typename T, int V, int C>
void launch_rows(const GemvArgs& a, cudaStream_t st, int S, int64_t kslice, unsigned blocks) {
  const dim3 g(blocks), b(GemvTraits::kThreads);
  if (a.nm.weight && a.nm.x_in_w_dtype)
    cuda::launch_pdl(gemv_kernel<T, V, C, 1, kNormX>, g, b, 0, st, a.p, a.cv, a.nm, a.rs, a.am, S, kslice, a.l2);
  else if (a.nm.weight)
    cuda::launch_pdl(gemv_kernel<T, V, C, 1, kNormF32X>, g, b, 0, st, a.p, a.cv, a.nm, a.rs, a.am, S, kslice, a.l2);
  else if (a.p.M == 1)
    cuda::launch_pdl(gemv_kernel<T, V, C, 1, kPlainX>, g, b, 0, st, a.p, a.cv, a.nm, a.rs, a.am, S, kslice, a.l2);
  else
    cuda::launch_pdl(gemv_kernel<T, V, C, GemvTraits::kMaxM, kPlainX>, g, b, 0, st, a.p, a.cv, a.nm, a.rs, a.am, S, kslice, a.l2);
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Matrices of at most kSmallBytes pick their columns per warp and K split for the fewest
// dependent round trips instead of for >= 4 blocks per SM (mamba-130m: 0.335 -> 0.316 ms per step,
// the 2.7B shapes unchanged). STATESPACE_GEMV_SMALL=0 (read per launch) keeps the general rule.
constexpr int64_t kSmallBytes = int64_t{8} << 20;
bool small_rule() {
  const char* v = std::getenv("STATESPACE_GEMV_SMALL");
  return !(v && v[0] == '0');
}

template <typename T> void launch_gemv(const GemvArgs& a, cudaStream_t st) {
  constexpr int V = 16 / sizeof(T);
  const GemmParams& p = a.p;
  const bool vec = p.K % V == 0 && p.ldx % V == 0 && aligned16(p.x) && aligned16(p.weight) && (!a.nm.weight || aligned16(a.nm.weight));
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
  auto slice_of = [&](int s) { return ((p.K + s - 1) / s + per - 1) / per * per; };
  if (vec && small_rule() && p.N * p.K * static_cast<int64_t>(sizeof(T)) <= kSmallBytes) {
    // A small matrix is latency-bound: pick the shape with the fewest round trips a lane makes
    // after the wait (its first batch is loaded before it; each further batch and each vector of
    // the tail is one), a K split costing half of one (the reduction through shared memory).
    const int rows = p.M == 1 ? 1 : GemvTraits::kMaxM;
    int best = 1 << 30;
    int64_t best_blocks = 0;
    for (int c : {4, 2, 1})
      for (int sp : {1, 2, 4}) {
        const int64_t U = GemvTraits::batch(c, rows, a.nm.weight && !a.nm.x_in_w_dtype);
        auto trips = [&](int64_t vpl) { return vpl >= U ? vpl / U - 1 + vpl % U : vpl; };
        const int64_t ks = slice_of(sp), last = (p.K - (sp - 1) * ks + per - 1) / per;  // vectors of the first and the last slice
        const int64_t t = std::max(trips(ks / per), last > 0 ? trips(last) : 0);
        const int cost = static_cast<int>(2 * t) + (sp > 1 ? 1 : 0);
        const int64_t blocks = (p.N * sp + W * c - 1) / (W * c);
        if (cost < best || (cost == best && blocks > best_blocks)) best = cost, best_blocks = blocks, C = c, S = sp;
      }
  }
  const int64_t kslice = slice_of(S);
  // The argmax in the kernel for one row without K split (a split block's other warps leave
  // early); otherwise the argmax kernel runs on the output afterwards.
  GemvArgs args = a;
  args.l2.elems = a.l2.elems / V * V;  // whole 16-byte vectors
  const bool argmax_after = a.am.out && !(p.M == 1 && S == 1);
  if (argmax_after) args.am = GemvArgmax{};
  const int64_t cols_per_block = W / S * C;
  const int64_t blocks = (p.N + cols_per_block - 1) / cols_per_block;
  if (blocks > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "linear: too many outputs");
  const unsigned g = static_cast<unsigned>(blocks);
  if (args.l2.next_bytes > 0) args.l2.next_share = (args.l2.next_bytes + 16 * blocks - 1) / (16 * blocks) * 16;
  if (!vec) {
    args.l2.elems = 0;
    launch_rows<T, 1, 1>(args, st, S, kslice, g);
  } else if (C == 4) {
    launch_rows<T, V, 4>(args, st, S, kslice, g);
  } else if (C == 2) {
    launch_rows<T, V, 2>(args, st, S, kslice, g);
  } else {
    launch_rows<T, V, 1>(args, st, S, kslice, g);
  }
  if (argmax_after) {
    ArgmaxParams q;
    q.rows = p.M;
    q.n = p.N;
    q.dtype = p.dtype;
    q.x = p.out;
    q.out = a.am.out;
    argmax_cuda(q, st);
  }
}

}  // namespace

void gemv_cuda(const GemmParams& p, void* stream, const GemvConv* conv, const GemvNorm* norm,
               const GemvResidual* residual, const GemvArgmax* argmax, const GemvPrefetch* prefetch) {
  GemvArgs a{p, conv ? *conv : GemvConv{}, norm ? *norm : GemvNorm{},
             residual ? *residual : GemvResidual{}, argmax ? *argmax : GemvArgmax{}};
  if (prefetch && cuda::compute_capability() >= 90) {
    a.l2.elems = prefetch->elems;
    if (prefetch->next && reinterpret_cast<uintptr_t>(prefetch->next) % 16 == 0) {
      a.l2.next = static_cast<const char*>(prefetch->next);
      a.l2.next_bytes = prefetch->next_bytes / 16 * 16;
    }
    a.l2.priority = cuda::l2_prefetch_priority();
  }
  if (a.nm.weight && p.M != 1) fail("ERR_SHAPE", ErrorKind::Range, "linear: the on-the-fly norm takes one row");
  if (a.am.out && a.rs.out) fail("ERR_INVALID_ARG", ErrorKind::Type, "linear: argmaxOut is not taken with residual");
  SS_FLOAT_SWITCH(p.dtype, T, [&] { launch_gemv<T>(a, static_cast<cudaStream_t>(stream)); });
  cuda::check_launch("linear (gemv)");
}

}  // namespace ss
