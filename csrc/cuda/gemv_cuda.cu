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
//    in the epilogue.
// x is re-read per batch from L1 (every warp of the SM reads the same x).
// One row of a large 16-bit matrix on sm_90+ takes gemv_stream_kernel instead (below) where the
// caller asks (stream_weights): each SM streams an equal share of the weights through shared
// memory with bulk copies.
#include <algorithm>
#include <cstdlib>
#include <type_traits>
#include "cuda/bulk_copy.cuh"
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "cuda/smem_optin.h"
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
// row or from a row in W's dtype; the streaming kernel also normalises a gated row in W's dtype,
// x · silu(gate).
enum GemvInput : int { kPlainX = 0, kNormF32X = 1, kNormX = 2, kGateNormX = 3 };
constexpr bool x_normed(int xm) { return xm != kPlainX; }
constexpr bool x_gated(int xm) { return xm == kGateNormX; }


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
// Every thread of the block (kWarps warps) calls it.
template <int kWarps> __device__ void block_argmax(unsigned long long key, int32_t* out) {
  __shared__ unsigned long long wk[kWarps];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) key = max(key, __shfl_xor_sync(0xffffffffu, key, o));
  if (threadIdx.x % 32 == 0) wk[threadIdx.x / 32] = key;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int w = 1; w < kWarps; ++w) key = max(key, wk[w]);
  atomicMax(&g_argmax_key, key);
  __threadfence();
  if (atomicAdd(&g_argmax_blocks, 1u) != gridDim.x - 1) return;
  __threadfence();
  const unsigned long long best = atomicExch(&g_argmax_key, 0ull);
  g_argmax_blocks = 0;
  *out = static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(best));
}

// Element i of a 16- or 32-bit side operand (load_any's dtypes), as an address.
__device__ __forceinline__ const void* any_addr(const void* p, DType t, int64_t i) {
  return static_cast<const char*>(p) + i * (t == DType::Float16 || t == DType::BFloat16 ? 2 : 4);
}
__device__ __forceinline__ void prefetch_l1(const void* p) { asm volatile("prefetch.global.L1 [%0];" ::"l"(p)); }
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// Before the programmatic-launch wait, toward the cache, what the epilogue of output column n
// reads besides its sum: the bias, the conv weights and bias (parameters: into L1) and the conv
// state (into L2 only: a kernel still running may write it, and L1 is not kept coherent).
__device__ __forceinline__ void prefetch_epilogue_params(const GemmParams& p, const GemvConv& cv, int64_t n) {
  if (p.bias) prefetch_l1(any_addr(p.bias, p.bias_dtype, n));
  if (cv.state && n >= cv.lo && n < cv.lo + cv.channels) {
    prefetch_l2(any_addr(cv.state, cv.state_dtype, (n - cv.lo) * (cv.width - 1)));
    prefetch_l1(any_addr(cv.weight, cv.weight_dtype, (n - cv.lo) * cv.width));
    if (cv.bias) prefetch_l1(any_addr(cv.bias, cv.bias_dtype, n - cv.lo));
  }
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

// Output (m, n) from its (normalised) sum: bias, the conv step of a conv column, rounding to T,
// the residual add or the plain store; returns the output's argmax key.
template <typename T>
__device__ __forceinline__ unsigned long long store_output(const GemmParams& p, const GemvConv& cv, const GemvResidual& rs, int m, int64_t n, float v) {
  if (p.bias) v += cuda::load_any(p.bias, p.bias_dtype, n);
  if (cv.state && n >= cv.lo && n < cv.lo + cv.channels) v = conv_step<T>(cv, m, n - cv.lo, v);
  const T y = cuda::from_float<T>(v);
  if (rs.out)
    cuda::store_any(rs.out, rs.dtype, m * p.N + n, cuda::load_any(rs.residual, rs.dtype, m * p.N + n) + to_float(y));
  else
    static_cast<T*>(p.out)[m * p.N + n] = y;
  return argmax_key(to_float(y), n);
}

// Grid: one block per (C·kWarps/S) columns. Warp w of a block: column group w / S, K slice w % S
// of length kslice (a multiple of 32·V). MM: rows handled (1, or up to 8 with M at run time).
// XM (GemvInput): the input row as is, or normalised on the fly (MM = 1).
template <typename T, int V, int C, int MM, int XM>
__global__ void __launch_bounds__(GemvTraits::kThreads, GemvTraits::min_blocks(sizeof(T), MM))
    gemv_kernel(GemmParams p, GemvConv cv, GemvNorm nm, GemvResidual rs, GemvArgmax am, int S, int64_t kslice) {
  static_assert(XM == kPlainX || MM == 1, "the on-the-fly norm handles one row");
  static_assert(!x_gated(XM), "a gate is the streaming kernel's (each element's silu once per block)");
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
  // The epilogue's parameters toward the caches before the wait too (mamba2-2.7b b1 -0.01 ms a
  // token, mamba-130m -0.002, the 2.8b shapes a tie: bench/NOTES.md)
  if (lane < C && slice == 0 && n0 + lane < p.N) prefetch_epilogue_params(p, cv, n0 + lane);
  cuda::pdl_wait();
  cuda::pdl_trigger();
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
    if constexpr (XM != kPlainX) mine *= rsqrtf(ss / static_cast<float>(p.K) + nm.eps);
    key = store_output<T>(p, cv, rs, m, n0 + c, mine);
  }
  if constexpr (MM == 1)
    if (am.out) block_argmax<GemvTraits::kWarps>(key, am.out);  // one row, no K split (launch_gemv): every thread gets here
}

// The weight-streaming kernel for one input row and large matrices (bf16/f16, sm_90+).
//
// The kernel above keeps ~80 KB per SM in flight in registers, in requests of 16 bytes per lane
// from 16 rows at a time, each batch waited for before the next is issued; alone it streams the
// 2.8B shapes at ~2.2-2.6 TB/s against the copy's 2.99. Here each SM runs one block that owns an
// equal, contiguous share of the rows (row-major W: one contiguous byte range) and streams it
// through a ring of shared-memory slots with bulk copies: one producer thread issues a copy per
// piece (a few KB: a part of a row, or a few whole rows) as soon as its slot is free, and the
// consumer warps (alone, or in groups that split a piece's vectors) take the pieces in turn.
// Nothing but the copy engine's queue bounds the bytes in flight, and since the weights do not
// depend on the previous kernel the producer fills the whole ring (160 KB per SM: most of a 2.8b
// out_proj share of 197 KB) before the programmatic-launch wait, i.e. while the kernel before it
// runs. Partial sums per piece go to shared memory and are added in a fixed order (reproducible).
// Taken only where the caller asks (stream_weights): it pays when the kernel before is
// latency-bound (out_proj after the state update: DRAM would idle) and loses when that kernel
// streams weights itself (in_proj after out_proj), P2 in bench/NOTES.md.
struct StreamTraits {
  // 16 warps multiply what has landed faster than 8 (-0.06 ms/token on the 2.7B shapes, G2).
  static constexpr int kConsumerWarps = 16;
  static constexpr int threads(int consumer_warps) { return (consumer_warps + 1) * 32; }
  // The largest piece, and the consumer warps that share one (each a strided part of it), by
  // input form. The gated form (Mamba-2's out_proj) streams whole rows of up to 12 KB, each piece
  // shared by a pair of consumer warps: alone a 26 MB burst of 10 KB bulk copies lands in 11.6 us
  // against 12.5 for 5 KB ones (bench/NOTES.md, fifteenth session), and mamba2-2.7b b1 went
  // 2.390 -> 2.324 ms (H100; 4 warps a piece 2.356, 8 2.473, one 2.345; pairs on 5 KB pieces
  // 2.391). The plain form keeps pieces of at most 6 KB (5 KB halves of 2.8b rows) and single
  // warps: with larger pieces Mamba-1 lost 0.09-0.30 ms (its out_proj fills its ring beside the
  // state update's loads; the LM head alone: a tie), with pairs it tied or lost 0.025.
  static constexpr int64_t piece_bytes(bool gated) { return (gated ? 12 : 6) * 1024; }
  static constexpr int group(bool gated) { return gated ? 2 : 1; }
  static constexpr int kMaxSlots = 64;
  // Dynamic shared memory per block: leaves room on the SM for the blocks of the small kernels
  // that run beside it (a Mamba-1 state update block takes ~32 KB). The ring is what lands before
  // the wait: a 2.8b out_proj share with 188 KB gets 32 slots of 5 KB; 150 or 120 KB (16 slots:
  // the slots are a multiple of the consumer warps) lost nearly all of the gain (P3).
  static constexpr size_t kSmemBytes = 188 * 1024;
};

struct StreamShape {
  int rows_per = 0, extra = 0;  // rows of a block: rows_per, one more for the first `extra` blocks
  int parts = 1, rows = 1;      // a piece is 1/parts of a row (parts > 1) or `rows` whole rows
  int slots = 0;                // ring depth
  uint32_t slot_bytes = 0;      // one full piece
  uint32_t x_off = 0, psum_off = 0, ring_off = 0;  // byte offsets into the dynamic shared memory
};

// a0 + Σ w[0..3]·lo, a1 + Σ w[4..7]·hi for 8 16-bit weights w, read from shared memory as one
// 16-byte word (a copy of the weights' struct there compiled to byte loads: 16 per vector).
template <typename T> __device__ __forceinline__ void dot8(const T* wp, float4 lo, float4 hi, float& a0, float& a1) {
  const uint4 q = *reinterpret_cast<const uint4*>(wp);
  const uint32_t u[4] = {q.x, q.y, q.z, q.w};
  float w[8];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      w[2 * j] = __uint_as_float(u[j] << 16);
      w[2 * j + 1] = __uint_as_float(u[j] & 0xffff0000u);
    } else {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&u[j]));
      w[2 * j] = f.x;
      w[2 * j + 1] = f.y;
    }
  }
  a0 = fmaf(lo.x, w[0], a0);
  a0 = fmaf(lo.y, w[1], a0);
  a0 = fmaf(lo.z, w[2], a0);
  a0 = fmaf(lo.w, w[3], a0);
  a1 = fmaf(hi.x, w[4], a1);
  a1 = fmaf(hi.y, w[5], a1);
  a1 = fmaf(hi.z, w[6], a1);
  a1 = fmaf(hi.w, w[7], a1);
}

template <typename T, int XM, int NW>
__global__ void __launch_bounds__(StreamTraits::threads(NW), 1)
    gemv_stream_kernel(GemmParams p, GemvConv cv, GemvNorm nm, GemvResidual rs, GemvArgmax am, StreamShape sh) {
  constexpr int V = 8;
  constexpr int G = StreamTraits::group(x_gated(XM));  // consumer warps a piece
  static_assert(sizeof(T) == 2, "16-bit weights: 8 per 16-byte vector");
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ float ss_w[NW];
  uint64_t* full = reinterpret_cast<uint64_t*>(smem);  // [slots]: the piece has landed
  uint64_t* empty = full + sh.slots;                   // [slots]: its warp has read it
  const int64_t K = p.K, KV = K / V;
  // The input row (normalised numerator for GemvNorm) in f32, 8 elements as two float4 in two
  // arrays, so that a warp's 16-byte reads are consecutive (no bank conflicts).
  float4* xlo = reinterpret_cast<float4*>(smem + sh.x_off);
  float4* xhi = xlo + KV;
  float* psum = reinterpret_cast<float*>(smem + sh.psum_off);  // [piece · rows + row of piece]
  unsigned char* ring = smem + sh.ring_off;

  const int b = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row0 = static_cast<int64_t>(b) * sh.rows_per + min(b, sh.extra);
  const int rows = sh.rows_per + (b < sh.extra ? 1 : 0);
  const int R = sh.rows, P = sh.parts;
  const int pieces = R > 1 ? (rows + R - 1) / R : rows * P;
  const int64_t piece_elems = R > 1 ? R * K : K / P;
  if (threadIdx.x < sh.slots) {
    cuda::mbar_init(cuda::shared_addr(full + threadIdx.x), 1);
    cuda::mbar_init(cuda::shared_addr(empty + threadIdx.x), G);
    cuda::mbar_init_fence();
  }
  __syncthreads();

  if (warp == NW) {
    // Producer: weights are parameters, so no wait before streaming them.
    if (lane == 0) {
      const T* wsrc = static_cast<const T*>(p.weight) + row0 * K;
      const uint64_t pol = cuda::l2_evict_first();
      for (int j = 0; j < pieces; ++j) {
        const int s = j % sh.slots;
        if (j >= sh.slots) cuda::mbar_wait<true>(cuda::shared_addr(empty + s), ((j / sh.slots) - 1) & 1);
        const int64_t elems = R > 1 ? min(R, rows - j * R) * K : piece_elems;
        const uint32_t bytes = static_cast<uint32_t>(elems * sizeof(T));
        cuda::mbar_arrive_expect_tx(cuda::shared_addr(full + s), bytes);
        cuda::bulk_copy_to_shared(ring + static_cast<size_t>(s) * sh.slot_bytes, wsrc + j * piece_elems, bytes, cuda::shared_addr(full + s), pol);
      }
    }
    cuda::pdl_wait();  // the epilogue below reads and writes what earlier kernels own
  } else {
    cuda::pdl_wait();
    cuda::pdl_trigger();
    // What the epilogue reads besides the sums (the residual, the conv state and weights, the
    // bias) toward L1 now, so that its loads after the last piece hit there instead of making
    // one more trip to L2 or DRAM at the end of the kernel (-0.03 ms/token on the 2.7B shapes, G3).
    for (int i = threadIdx.x; i < rows; i += NW * 32) {
      const int64_t n = row0 + i;
      if (rs.out) prefetch_l1(any_addr(rs.residual, rs.dtype, n));
      if (p.bias) prefetch_l1(any_addr(p.bias, p.bias_dtype, n));
      if (cv.state && n >= cv.lo && n < cv.lo + cv.channels) {
        prefetch_l1(any_addr(cv.state, cv.state_dtype, (n - cv.lo) * (cv.width - 1)));
        prefetch_l1(any_addr(cv.weight, cv.weight_dtype, (n - cv.lo) * cv.width));
        if (cv.bias) prefetch_l1(any_addr(cv.bias, cv.bias_dtype, n - cv.lo));
      }
    }
    // kXBatch vectors of x (and of the norm weight) per thread per round trip: all loads first
    // (indices clamped, so unconditional), then the math (a 5120-long row: one round trip).
    constexpr int kXBatch = 4;
    float ss = 0.f;
    for (int64_t v0 = threadIdx.x; v0 < KV; v0 += kXBatch * NW * 32) {
      float r[kXBatch][V];
      Vec<T, V> wn[kXBatch], zg[kXBatch];
#pragma unroll
      for (int u = 0; u < kXBatch; ++u) {
        const int64_t kk = min(v0 + u * NW * 32, KV - 1) * V;
        if constexpr (XM == kNormF32X) {
          const float4 q0 = *reinterpret_cast<const float4*>(static_cast<const float*>(p.x) + kk);
          const float4 q1 = *reinterpret_cast<const float4*>(static_cast<const float*>(p.x) + kk + 4);
          r[u][0] = q0.x, r[u][1] = q0.y, r[u][2] = q0.z, r[u][3] = q0.w;
          r[u][4] = q1.x, r[u][5] = q1.y, r[u][6] = q1.z, r[u][7] = q1.w;
        } else {
          const Vec<T, V> xv = load_x<T, V>(static_cast<const T*>(p.x) + kk);
#pragma unroll
          for (int j = 0; j < V; ++j) r[u][j] = to_float(xv.v[j]);
        }
        if constexpr (x_normed(XM)) wn[u] = load_x<T, V>(static_cast<const T*>(nm.weight) + kk);
        if constexpr (x_gated(XM)) zg[u] = load_x<T, V>(static_cast<const T*>(nm.gate) + kk);
      }
#pragma unroll
      for (int u = 0; u < kXBatch; ++u) {
        const int64_t v = v0 + u * NW * 32;
        if (v < KV) {
          if constexpr (x_gated(XM)) {
#pragma unroll
            for (int j = 0; j < V; ++j) r[u][j] *= cuda::silu_f(to_float(zg[u].v[j]));
          }
          if constexpr (x_normed(XM)) {
#pragma unroll
            for (int j = 0; j < V; ++j) {
              ss = fmaf(r[u][j], r[u][j], ss);
              r[u][j] *= to_float(wn[u].v[j]);
            }
          }
          xlo[v] = make_float4(r[u][0], r[u][1], r[u][2], r[u][3]);
          xhi[v] = make_float4(r[u][4], r[u][5], r[u][6], r[u][7]);
        }
      }
    }
    if constexpr (x_normed(XM)) {
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
      if (lane == 0) ss_w[warp] = ss;
    }
    asm volatile("bar.sync 1, %0;" ::"n"(NW * 32) : "memory");  // the consumers: x staged

    // Σ over this warp's share of the `nv` vectors of a piece at wp (shared memory; warp gw of a
    // group of G takes every G-th run of 32) against x from vector x0, in four accumulators
    // (shorter dependent chains) added in a fixed order. Partial sums: psum[(row piece) · G + gw].
    constexpr int NG = NW / G;
    const int grp = warp / G, gw = warp % G;
    auto dot = [&](const T* wp, int64_t x0, int64_t nv) {
      float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
      const int64_t step = 32 * G;
      for (int64_t i = lane + gw * 32; i < nv; i += 2 * step) {
        dot8(wp + i * V, xlo[x0 + i], xhi[x0 + i], a0, a1);
        if (i + step < nv) dot8(wp + (i + step) * V, xlo[x0 + i + step], xhi[x0 + i + step], a2, a3);
      }
      float r = (a0 + a1) + (a2 + a3);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) r += __shfl_xor_sync(0xffffffffu, r, o);
      return r;
    };
    for (int j = grp; j < pieces; j += NG) {
      const int s = j % sh.slots;
      cuda::mbar_wait<true>(cuda::shared_addr(full + s), (j / sh.slots) & 1);
      const T* wp = reinterpret_cast<const T*>(ring + static_cast<size_t>(s) * sh.slot_bytes);
      if (R > 1) {
        const int nr = min(R, rows - j * R);
        for (int r = 0; r < nr; ++r) {
          const float v = dot(wp + r * K, 0, KV);
          if (lane == 0) psum[(j * R + r) * G + gw] = v;
        }
      } else {
        const float v = dot(wp, (j % P) * (KV / P), KV / P);
        if (lane == 0) psum[j * G + gw] = v;
      }
      __syncwarp();
      if (lane == 0) cuda::mbar_arrive(cuda::shared_addr(empty + s));
    }
  }
  __syncthreads();  // every piece summed

  float scale = 1.f;
  if constexpr (x_normed(XM)) {
    float ss = 0.f;
#pragma unroll
    for (int w = 0; w < NW; ++w) ss += ss_w[w];
    scale = rsqrtf(ss / static_cast<float>(K) + nm.eps);
  }
  unsigned long long key = 0;
  for (int i = threadIdx.x; i < rows; i += blockDim.x) {
    float v = 0.f;
    for (int q = 0; q < P * G; ++q) v += psum[i * P * G + q];
    key = max(key, store_output<T>(p, cv, rs, 0, row0 + i, v * scale));
  }
  if (am.out) block_argmax<NW + 1>(key, am.out);
}

// Everything a launch passes besides the shape decisions.
struct GemvArgs {
  GemmParams p;
  GemvConv cv;
  GemvNorm nm;
  GemvResidual rs;
  GemvArgmax am;
  bool stream = false;  // the caller asks for the weight-streaming kernel (gemv_cuda's stream_weights)
};

template <typename T, int V, int C>
void launch_rows(const GemvArgs& a, cudaStream_t st, int S, int64_t kslice, unsigned blocks) {
  const dim3 g(blocks), b(GemvTraits::kThreads);
  if (a.nm.weight && a.nm.x_in_w_dtype)
    cuda::launch_pdl(gemv_kernel<T, V, C, 1, kNormX>, g, b, 0, st, a.p, a.cv, a.nm, a.rs, a.am, S, kslice);
  else if (a.nm.weight)
    cuda::launch_pdl(gemv_kernel<T, V, C, 1, kNormF32X>, g, b, 0, st, a.p, a.cv, a.nm, a.rs, a.am, S, kslice);
  else if (a.p.M == 1)
    cuda::launch_pdl(gemv_kernel<T, V, C, 1, kPlainX>, g, b, 0, st, a.p, a.cv, a.nm, a.rs, a.am, S, kslice);
  else
    cuda::launch_pdl(gemv_kernel<T, V, C, GemvTraits::kMaxM, kPlainX>, g, b, 0, st, a.p, a.cv, a.nm, a.rs, a.am, S, kslice);
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

// STATESPACE_GEMV_STREAM=0 (read per launch) keeps every product on gemv_kernel.
bool stream_off() {
  const char* v = std::getenv("STATESPACE_GEMV_STREAM");
  return v && v[0] == '0';
}

// The shared-memory split of the SMs the kernel runs on. Left to the driver, an SM holding a
// 188 KB block may keep too little beside it for the block of a Mamba-1 state update (~25 KB)
// that runs before it in a batch-1 step: on the largest split they share SMs (H100, same call,
// three interleaved pairs: mamba-2.8b-bf16state b1 2.579-2.583 -> 2.546-2.553 ms, mamba-2.8b
// 2.609 -> 2.579). The gated form (Mamba-2's out_proj, whose step runs z's product on the side
// stream beside the update) keeps the driver's choice: on the largest split mamba2-2.7b lost
// 2.390 -> 2.719 (bench/NOTES.md, fourteenth session).
constexpr bool stream_max_shared(int xm) { return !x_gated(xm); }

template <typename T, int XM, int NW> void launch_stream_as(const GemvArgs& a, cudaStream_t st, const StreamShape& sh, unsigned grid, size_t smem) {
  auto kernel = gemv_stream_kernel<T, XM, NW>;
  cuda::set_smem_once<gemv_stream_kernel<T, XM, NW>>(StreamTraits::kSmemBytes, "linear (gemv): shared memory", stream_max_shared(XM));
  cuda::launch_pdl(kernel, dim3(grid), dim3(StreamTraits::threads(NW)), smem, st, a.p, a.cv, a.nm, a.rs, a.am, sh);
}

// The shape of gemv_stream_kernel for one row of a 16-bit matrix: one block per SM, each an equal
// share of whole rows (±1). False when p does not fit it.
bool stream_shape(const GemmParams& p, size_t elem, bool gated, StreamShape& sh, size_t& smem) {
  using Tr = StreamTraits;
  const int64_t G = cuda::sm_count();
  // Rows shorter than 1024 stay on the register kernel (130m's LM head, K 768: streamed it cost
  // ~2 us per step, gemv5 G4).
  if (elem != 2 || p.M != 1 || p.N < G || p.K % 8 != 0 || p.K < 1024 || cuda::compute_capability() < 90 || stream_off()) return false;
  if (p.N * p.K * static_cast<int64_t>(elem) <= kSmallBytes) return false;
  const int64_t row_bytes = p.K * static_cast<int64_t>(elem);
  const int64_t piece_max = Tr::piece_bytes(gated);
  const int group = Tr::group(gated);
  if (row_bytes <= piece_max) {
    sh.rows = static_cast<int>(piece_max / row_bytes);
  } else {  // the fewest parts of at most piece_max whose length is a whole number of vectors
    sh.parts = 2;
    while (sh.parts <= 64 && ((p.K / 8) % sh.parts != 0 || row_bytes / sh.parts > piece_max)) ++sh.parts;
    if (sh.parts > 64) return false;
  }
  sh.rows_per = static_cast<int>(p.N / G);
  sh.extra = static_cast<int>(p.N % G);
  const int64_t max_rows = sh.rows_per + (sh.extra ? 1 : 0);
  auto up = [](int64_t v) { return (v + 127) / 128 * 128; };
  const int64_t slot = up(sh.rows > 1 ? sh.rows * row_bytes : row_bytes / sh.parts);
  const int64_t x_off = 2 * Tr::kMaxSlots * 8, psum_off = up(x_off + p.K * 4);
  const int64_t ring_off = up(psum_off + (max_rows + sh.rows) * sh.parts * group * 4);
  // A multiple of the consumer groups: slot s then always holds pieces of group s % groups, which
  // waits for them in order (a barrier's parity names only its current or previous phase, so no
  // warp may wait for a slot's next piece before the one it holds has landed).
  // No more slots than a block has pieces (rounded up), so that a small matrix's blocks leave
  // room for their neighbours' blocks on the SM.
  constexpr int NW = Tr::kConsumerWarps;
  const int64_t max_pieces = sh.rows > 1 ? (max_rows + sh.rows - 1) / sh.rows : max_rows * sh.parts;
  const int NG = NW / group;
  const int64_t fit = std::min<int64_t>(Tr::kMaxSlots, (static_cast<int64_t>(Tr::kSmemBytes) - ring_off) / slot) / NG * NG;
  const int64_t slots = std::min(fit, (max_pieces + NG - 1) / NG * NG);
  if (slots < NG) return false;
  sh.slot_bytes = static_cast<uint32_t>(slot);
  sh.slots = static_cast<int>(slots);
  sh.x_off = static_cast<uint32_t>(x_off);
  sh.psum_off = static_cast<uint32_t>(psum_off);
  sh.ring_off = static_cast<uint32_t>(ring_off);
  smem = static_cast<size_t>(ring_off + slots * slot);
  return true;
}

// Whether every operand the kernels read in 16-byte vectors is aligned for them.
bool vectorised(const GemvArgs& a, int V) {
  const GemmParams& p = a.p;
  return p.K % V == 0 && p.ldx % V == 0 && aligned16(p.x) && aligned16(p.weight) && (!a.nm.weight || aligned16(a.nm.weight)) &&
         (!a.nm.gate || aligned16(a.nm.gate));
}

template <typename T> void launch_stream(const GemvArgs& a, cudaStream_t st, const StreamShape& sh, size_t smem) {
  constexpr int NW = StreamTraits::kConsumerWarps;
  const unsigned grid = static_cast<unsigned>(cuda::sm_count());
  const GemvNorm& nm = a.nm;
  if (nm.gate)
    launch_stream_as<T, kGateNormX, NW>(a, st, sh, grid, smem);
  else if (nm.weight && nm.x_in_w_dtype)
    launch_stream_as<T, kNormX, NW>(a, st, sh, grid, smem);
  else if (nm.weight)
    launch_stream_as<T, kNormF32X, NW>(a, st, sh, grid, smem);
  else
    launch_stream_as<T, kPlainX, NW>(a, st, sh, grid, smem);
}

template <typename T> void launch_gemv(const GemvArgs& a, cudaStream_t st) {
  constexpr int V = 16 / sizeof(T);
  const GemmParams& p = a.p;
  const bool vec = vectorised(a, V);
  // Large matrices, one row, when asked (always with a gate): the bulk-copy streaming kernel where it fits.
  StreamShape sh;
  size_t smem = 0;
  if ((a.stream || a.nm.gate) && vec && stream_shape(p, sizeof(T), a.nm.gate != nullptr, sh, smem)) {
    if constexpr (sizeof(T) == 2) launch_stream<T>(a, st, sh, smem);
    return;
  }
  if (a.nm.gate) fail("ERR_INVALID_ARG", ErrorKind::Type, "linear: the gate is applied on the fly by the weight-streaming kernel only");
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
  const bool argmax_after = a.am.out && !(p.M == 1 && S == 1);
  if (argmax_after) args.am = GemvArgmax{};
  const int64_t cols_per_block = W / S * C;
  const int64_t blocks = (p.N + cols_per_block - 1) / cols_per_block;
  if (blocks > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "linear: too many outputs");
  const unsigned g = static_cast<unsigned>(blocks);
  if (!vec) {
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

bool gemv_streams_gate(const GemmParams& p, const GemvNorm& nm) {
  GemvArgs a{p, GemvConv{}, nm, GemvResidual{}, GemvArgmax{}, true};
  StreamShape sh;
  size_t smem = 0;
  return vectorised(a, 8) && stream_shape(p, dtype_size(p.dtype), nm.gate != nullptr, sh, smem);
}

void gemv_cuda(const GemmParams& p, void* stream, const GemvConv* conv, const GemvNorm* norm,
               const GemvResidual* residual, const GemvArgmax* argmax, bool stream_weights) {
  GemvArgs a{p, conv ? *conv : GemvConv{}, norm ? *norm : GemvNorm{},
             residual ? *residual : GemvResidual{}, argmax ? *argmax : GemvArgmax{}, stream_weights};
  if (a.nm.weight && p.M != 1) fail("ERR_SHAPE", ErrorKind::Range, "linear: the on-the-fly norm takes one row");
  if (a.am.out && a.rs.out) fail("ERR_INVALID_ARG", ErrorKind::Type, "linear: argmaxOut is not taken with residual");
  SS_FLOAT_SWITCH(p.dtype, T, [&] { launch_gemv<T>(a, static_cast<cudaStream_t>(stream)); });
  cuda::check_launch("linear (gemv)");
}

}  // namespace ss
