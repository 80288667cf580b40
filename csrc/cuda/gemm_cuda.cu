// CUDA GEMM for linear layers: out (M, N) = x (M, K) · w (N, K)ᵀ + bias.
// cuBLAS when the host has it (cuda/cublas_loader.h), else statespace's own kernels:
//  - bf16/f16: tensor cores through WMMA (16x16x16 fragments, f32 accumulation). A block of
//    4 warps computes a 64x64 tile, each warp 32x32 (2x2 fragments), K in steps of 32 staged
//    through shared memory, the next step prefetched into registers during the MMAs; the
//    epilogue adds the bias and rounds once.
//  - f32: exact f32 FMA (no TF32), 64x64 tiles, 4x4 outputs per thread.
// Both keep it simple (no cp.async pipeline, no warp specialisation): the fallback is for hosts
// without cuBLAS.
// Small M (M <= 8: decode) always takes the matrix-vector kernel of gemv_cuda.cu instead: the
// product is bound by reading the weights once, without padding M up to a 64-row tile. Batched
// decode (8 < M <= 64) takes cuBLASLt with a timed algorithm choice (cuda/cublaslt_gemm.h), else
// cublasGemmEx; where the host has no cuBLAS, 8 < M <= 64 in 16-bit takes the skinny tensor-core
// GEMM of skinny_gemm_cuda.cu (the builtin 64x64-tile kernel pads M and stages through registers).
#include <mma.h>
#include "cuda/check.cuh"
#include "cuda/cublas_loader.h"
#include "cuda/cublaslt_gemm.h"
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

__device__ __forceinline__ uint32_t bits16(__half v) { return __half_as_ushort(v); }
__device__ __forceinline__ uint32_t bits16(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }

// One thread's share of a 64 x 32 tile: 256 chunks of 8 consecutive elements over 128 threads.
struct TileRegs {
  static constexpr int kChunks = 64 * (WmmaTraits::BK / 8) / WmmaTraits::kThreads;
  uint4 c[kChunks];
};

// Loads this thread's chunks of rows [r0, r0+64) x columns [k0, k0+32) of a row-major (rows, K)
// matrix into registers, zero-padded: 16-byte loads where the chunk is whole and aligned (vec8).
template <typename T>
__device__ __forceinline__ void fetch_tile(TileRegs& t, const T* src, int64_t rows, int64_t K, int64_t r0, int64_t k0, bool vec8) {
#pragma unroll
  for (int i = 0; i < TileRegs::kChunks; ++i) {
    const int c = threadIdx.x + i * WmmaTraits::kThreads;
    const int64_t gr = r0 + c / (WmmaTraits::BK / 8), gk = k0 + (c % (WmmaTraits::BK / 8)) * 8;
    if (vec8 && gr < rows && gk + 8 <= K) {
      t.c[i] = *reinterpret_cast<const uint4*>(src + gr * K + gk);
    } else {
      uint32_t w[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t k = gk + 2 * j;
        const uint32_t lo = gr < rows && k < K ? bits16(src[gr * K + k]) : 0u;
        const uint32_t hi = gr < rows && k + 1 < K ? bits16(src[gr * K + k + 1]) : 0u;
        w[j] = lo | (hi << 16);
      }
      t.c[i] = make_uint4(w[0], w[1], w[2], w[3]);
    }
  }
}

template <typename T> __device__ __forceinline__ void store_tile(T (*dst)[WmmaTraits::LDS], const TileRegs& t) {
#pragma unroll
  for (int i = 0; i < TileRegs::kChunks; ++i) {
    const int c = threadIdx.x + i * WmmaTraits::kThreads;
    *reinterpret_cast<uint4*>(&dst[c / (WmmaTraits::BK / 8)][(c % (WmmaTraits::BK / 8)) * 8]) = t.c[i];
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

  // The next K-tile is fetched into registers while the tensor cores work on the current one
  // from shared memory, so global-memory latency overlaps the MMAs.
  TileRegs ra, rb;
  fetch_tile<T>(ra, x, p.M, p.K, m0, 0, vec8);
  fetch_tile<T>(rb, w, p.N, p.K, n0, 0, vec8);
  for (int64_t k0 = 0; k0 < p.K; k0 += Tr::BK) {
    store_tile<T>(As, ra);
    store_tile<T>(Bs, rb);
    __syncthreads();
    if (k0 + Tr::BK < p.K) {
      fetch_tile<T>(ra, x, p.M, p.K, m0, k0 + Tr::BK, vec8);
      fetch_tile<T>(rb, w, p.N, p.K, n0, k0 + Tr::BK, vec8);
    }
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

bool gemm_cuda_reads_strided(const GemmParams& p, int device) {
  (void)device;
  std::string why;
  return p.M > kGemvMaxM && (skinny_gemm_fits(p) || cuda::cublas_usable(p, &why));
}

void gemm_cuda(const GemmParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (gemv_reads(p)) {
    gemv_cuda(p, stream);
    return;
  }
  if (skinny_gemm_cuda(p, stream)) return;  // batched decode: 8 < M <= 64
  std::string why;
  const int device = current_device();
  if (cuda::cublaslt_gemm(p, stream, device) || cuda::cublas_gemm(p, stream, device, &why)) {
    if (p.bias) SS_FLOAT_SWITCH(p.dtype, T, [&] { add_bias_kernel<T><<<cuda::grid_1d(p.M * p.N, 256), 256, 0, st>>>(p); });
    cuda::check_launch("linear (bias)");
    return;
  }
  // The caller passes other layouts (gemm_cuda_reads_strided) only when cuBLAS is there to take them.
  if (p.strided()) fail("ERR_CUDA", ErrorKind::Plain, "linear: strided operands reached the builtin GEMM (" + why + ")");
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
