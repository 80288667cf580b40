// CUDA GEMM for linear layers: out (M, N) = x (M, K) · w (N, K)ᵀ + bias.
// cuBLAS when the host has it (cuda/cublas_loader.h), else statespace's own kernels:
//  - bf16/f16: tensor cores through WMMA (16x16x16 fragments, f32 accumulation). A block of
//    4 warps computes a 64x64 tile, each warp 32x32 (2x2 fragments), K in steps of 32 staged
//    through shared memory; the epilogue adds the bias and rounds once.
//  - f32: exact f32 FMA (no TF32), 64x64 tiles, 4x4 outputs per thread.
// Both keep it simple (no multi-stage pipeline): the fallback is for hosts without cuBLAS.
// Small M (M <= 8: decode) always takes a matrix-vector kernel instead: the product is bound by
// reading the weights once, which a warp per output column does at full vector width (16-byte
// loads, several in flight per lane) without padding M up to a 64-row tile.
#include <mma.h>
#include "cuda/check.cuh"
#include "cuda/cublas_loader.h"
#include "cuda/load_any.cuh"
#include "cuda/runtime.h"
#include "ops/dense.h"

namespace ss {
namespace {

using cuda::load_any;
using cuda::to_float;

struct WmmaTraits {
  static constexpr int BM = 64, BN = 64, BK = 32, kThreads = 128;
  static constexpr int LDS = BK + 8;   // smem row of a tile (16-bit elements): rows stay 32-byte aligned
  static constexpr int LDC = BN + 4;   // smem row of the f32 output tile
  static_assert(BM == 64 && BN == 64 && kThreads == 128, "four warps, each 32x32");
  static_assert((LDS * 2) % 16 == 0 && LDC % 4 == 0, "wmma leading dimensions");
};

// Stages rows [r0, r0+64) x columns [k0, k0+32) of a row-major (rows, K) matrix, zero-padded.
template <typename T>
__device__ void stage_tile(T (*dst)[WmmaTraits::LDS], const T* src, int64_t rows, int64_t K, int64_t r0, int64_t k0, bool vec8) {
  constexpr int BK = WmmaTraits::BK;
  // 64 rows x 4 chunks of 8 elements = 256 chunks over 128 threads.
  for (int c = threadIdx.x; c < 64 * (BK / 8); c += blockDim.x) {
    const int r = c / (BK / 8), kk = (c % (BK / 8)) * 8;
    const int64_t gr = r0 + r, gk = k0 + kk;
    if (vec8 && gr < rows && gk + 8 <= K) {
      *reinterpret_cast<uint4*>(&dst[r][kk]) = *reinterpret_cast<const uint4*>(src + gr * K + gk);
    } else {
      for (int j = 0; j < 8; ++j)
        dst[r][kk + j] = gr < rows && gk + j < K ? src[gr * K + gk + j] : cuda::from_float<T>(0.f);
    }
  }
}

template <typename T> __global__ void __launch_bounds__(WmmaTraits::kThreads) wmma_gemm_kernel(GemmParams p, bool vec8) {
  using namespace nvcuda;
  using Tr = WmmaTraits;
  __shared__ __align__(32) T As[Tr::BM][Tr::LDS];
  __shared__ __align__(32) T Bs[Tr::BN][Tr::LDS];
  __shared__ __align__(32) float Cs[Tr::BM][Tr::LDC];
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * Tr::BM, n0 = static_cast<int64_t>(blockIdx.x) * Tr::BN;
  const int warp = threadIdx.x / 32, wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.weight);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  for (int64_t k0 = 0; k0 < p.K; k0 += Tr::BK) {
    stage_tile<T>(As, x, p.M, p.K, m0, k0, vec8);
    stage_tile<T>(Bs, w, p.N, p.K, n0, k0, vec8);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < Tr::BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[2];
      // (k, n) of the B operand sits at Bs[n][k]: a column-major K x N tile.
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(a[i], &As[wm + 16 * i][kk], Tr::LDS);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(b[j], &Bs[wn + 16 * j][kk], Tr::LDS);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::store_matrix_sync(&Cs[wm + 16 * i][wn + 16 * j], acc[i][j], Tr::LDC, wmma::mem_row_major);
  __syncthreads();
  T* out = static_cast<T*>(p.out);
  for (int e = threadIdx.x; e < Tr::BM * Tr::BN; e += blockDim.x) {
    const int r = e / Tr::BN, c = e % Tr::BN;
    const int64_t gm = m0 + r, gn = n0 + c;
    if (gm < p.M && gn < p.N)
      out[gm * p.N + gn] = cuda::from_float<T>(Cs[r][c] + (p.bias ? load_any(p.bias, p.bias_dtype, gn) : 0.f));
  }
}

struct SimtTraits {
  static constexpr int BM = 64, BN = 64, BK = 16, kThreads = 256, TM = 4, TN = 4;
  static_assert(BM * BN == kThreads * TM * TN, "each thread owns TM x TN outputs");
};

// Exact f32: out = x · wᵀ with fused multiply-adds, thread (ty, tx) owning rows ty + 16i and
// columns tx + 16j of the tile (conflict-free shared-memory reads).
__global__ void __launch_bounds__(SimtTraits::kThreads) simt_gemm_kernel(GemmParams p) {
  using Tr = SimtTraits;
  __shared__ float As[Tr::BK][Tr::BM + 4];
  __shared__ float Bs[Tr::BK][Tr::BN + 4];
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * Tr::BM, n0 = static_cast<int64_t>(blockIdx.x) * Tr::BN;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* x = static_cast<const float*>(p.x);
  const float* w = static_cast<const float*>(p.weight);
  float acc[Tr::TM][Tr::TN] = {};
  for (int64_t k0 = 0; k0 < p.K; k0 += Tr::BK) {
    for (int e = threadIdx.x; e < Tr::BM * Tr::BK; e += blockDim.x) {
      const int r = e / Tr::BK, k = e % Tr::BK;
      const int64_t gk = k0 + k;
      As[k][r] = m0 + r < p.M && gk < p.K ? x[(m0 + r) * p.K + gk] : 0.f;
      Bs[k][r] = n0 + r < p.N && gk < p.K ? w[(n0 + r) * p.K + gk] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < Tr::BK; ++k) {
      float a[Tr::TM], b[Tr::TN];
#pragma unroll
      for (int i = 0; i < Tr::TM; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < Tr::TN; ++j) b[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < Tr::TM; ++i)
#pragma unroll
        for (int j = 0; j < Tr::TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  float* out = static_cast<float*>(p.out);
#pragma unroll
  for (int i = 0; i < Tr::TM; ++i)
#pragma unroll
    for (int j = 0; j < Tr::TN; ++j) {
      const int64_t gm = m0 + ty + 16 * i, gn = n0 + tx + 16 * j;
      if (gm < p.M && gn < p.N) out[gm * p.N + gn] = acc[i][j] + (p.bias ? load_any(p.bias, p.bias_dtype, gn) : 0.f);
    }
}

template <typename T, int V> struct alignas(sizeof(T) * V) Pack16 {
  T v[V];
};

struct GemvTraits {
  static constexpr int kMaxM = 8, kThreads = 256, kUnroll = 4;
};

// out[m, n] = Σ_k x[m, k]·w[n, k] (+ bias[n]) for m < M <= 8: one warp per n, lanes striding K
// in 16-byte vectors (kVec: K a multiple of the vector and 16-byte aligned rows) or elements.
template <typename T, bool kVec> __global__ void __launch_bounds__(GemvTraits::kThreads) gemv_kernel(GemmParams p) {
  constexpr int V = kVec ? 16 / sizeof(T) : 1;
  constexpr int MM = GemvTraits::kMaxM;
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (n >= p.N) return;  // whole warps leave together
  const int M = static_cast<int>(p.M);
  const T* w = static_cast<const T*>(p.weight) + n * p.K;
  const T* x = static_cast<const T*>(p.x);
  float acc[MM];
#pragma unroll
  for (int m = 0; m < MM; ++m) acc[m] = 0.f;
#pragma unroll GemvTraits::kUnroll
  for (int64_t k = static_cast<int64_t>(lane) * V; k < p.K; k += 32 * V) {
    const Pack16<T, V> wv = *reinterpret_cast<const Pack16<T, V>*>(w + k);
#pragma unroll
    for (int m = 0; m < MM; ++m) {
      if (m >= M) break;
      const Pack16<T, V> xv = *reinterpret_cast<const Pack16<T, V>*>(x + m * p.K + k);
#pragma unroll
      for (int j = 0; j < V; ++j) acc[m] = fmaf(to_float(xv.v[j]), to_float(wv.v[j]), acc[m]);
    }
  }
  const float b = p.bias ? load_any(p.bias, p.bias_dtype, n) : 0.f;
#pragma unroll
  for (int m = 0; m < MM; ++m) {
    if (m >= M) break;
    float v = acc[m];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) static_cast<T*>(p.out)[m * p.N + n] = cuda::from_float<T>(v + b);
  }
}

template <typename T> void launch_gemv(const GemmParams& p, cudaStream_t st) {
  const unsigned blocks = static_cast<unsigned>((p.N + GemvTraits::kThreads / 32 - 1) / (GemvTraits::kThreads / 32));
  const bool vec = p.K % (16 / sizeof(T)) == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.weight) % 16 == 0;
  if (vec)
    gemv_kernel<T, true><<<blocks, GemvTraits::kThreads, 0, st>>>(p);
  else
    gemv_kernel<T, false><<<blocks, GemvTraits::kThreads, 0, st>>>(p);
}

template <typename T> __global__ void add_bias_kernel(GemmParams p) {
  T* out = static_cast<T*>(p.out);
  const int64_t n = p.M * p.N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = cuda::from_float<T>(to_float(out[i]) + load_any(p.bias, p.bias_dtype, i % p.N));
}

int current_device() {
  int d = 0;
  cudaGetDevice(&d);
  return d;
}

}  // namespace

void gemm_cuda(const GemmParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (p.M <= GemvTraits::kMaxM) {
    if (p.N > 0x7fffffffLL * (GemvTraits::kThreads / 32)) fail("ERR_SHAPE", ErrorKind::Range, "linear: too many outputs");
    SS_FLOAT_SWITCH(p.dtype, T, [&] { launch_gemv<T>(p, st); });
    cuda::check_launch("linear (gemv)");
    return;
  }
  std::string why;
  if (cuda::cublas_gemm(p, stream, current_device(), &why)) {
    if (p.bias) SS_FLOAT_SWITCH(p.dtype, T, [&] { add_bias_kernel<T><<<cuda::grid_1d(p.M * p.N, 256), 256, 0, st>>>(p); });
    cuda::check_launch("linear (bias)");
    return;
  }
  const int64_t gx = (p.N + 63) / 64, gy = (p.M + 63) / 64;
  if (gy > 65535 || gx > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "linear: too many rows for the builtin GEMM");
  dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
  if (p.dtype == DType::Float32) {
    simt_gemm_kernel<<<grid, SimtTraits::kThreads, 0, st>>>(p);
  } else {
    const bool vec8 = p.K % 8 == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && reinterpret_cast<uintptr_t>(p.weight) % 16 == 0;
    if (p.dtype == DType::BFloat16)
      wmma_gemm_kernel<__nv_bfloat16><<<grid, WmmaTraits::kThreads, 0, st>>>(p, vec8);
    else
      wmma_gemm_kernel<__half><<<grid, WmmaTraits::kThreads, 0, st>>>(p, vec8);
  }
  cuda::check_launch("linear");
}

}  // namespace ss
