// Skinny GEMM for batched decode: out (M, N) = x (M, K) · w (N, K)ᵀ + bias with 8 < M <= 64
// rows, bf16/f16, on tensor cores (mma.sync m16n8k16, f32 accumulation).
//
// At these shapes the product is still bound by reading w once (64 rows reuse each weight 64
// times: ~60 flop per byte), but cuBLAS tiles it for compute: out_proj (64 x 2560 x 5120) gets
// ~20 thread blocks and streams at 1.2 TB/s. Here the weights stream as in the matrix-vector
// kernel and x waits in shared memory:
//  - a block owns 128 outputs (8 warps x 16 weight rows) and one slice of K (<= 768), the
//    slices' f32 partial sums added by a second small kernel in a fixed order (reproducible).
//    Partial sums cost 2·slices·M·N·4 bytes of traffic, so this kernel only takes narrow outputs
//    (1024 <= N <= 4096, K >= 2048: out_proj), where cuBLAS leaves most SMs idle;
//  - the block stages its slice of all 64 x rows in shared memory (zero rows past M), padded so
//    that the 16-byte fragment reads are free of bank conflicts;
//  - each lane loads its weight fragments straight from global memory as 16-byte vectors, three
//    32-wide K chunks ahead. The K order inside a chunk is permuted identically for the weight
//    (A) and x (B) fragments, so one 16-byte load per row gives two k16 steps' fragments:
//    physical elements 8t+4s .. 8t+4s+3 of lane quad t are the logical k {2t, 2t+1, 2t+8, 2t+9}
//    of step s (a bijection onto the step's 16 k). Three chunks ahead keep 128 registers (two
//    blocks per SM) without spills;
//  - programmatic dependent launch: the first weight chunks are loaded before waiting for x.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "ops/dense.h"

namespace ss {
namespace {

using cuda::to_float;

struct SkinnyTraits {
  static constexpr int kWarps = 8, kThreads = kWarps * 32;
  static constexpr int kRowsPerBlock = kWarps * 16;  // weight rows (outputs) per block
  static constexpr int kMaxM = 64, kTiles = kMaxM / 8;  // x rows, as n8 tiles of the mma
  static constexpr int kAhead = 3;                      // 32-wide K chunks of weights in flight
  static constexpr int kMaxSlice = 768;                 // K per block: 102 KB of staged x, 2 blocks per SM
  static constexpr int kPad = 64;                       // bytes after each staged x row
  static constexpr int kQuantum = 64;                   // K slices are multiples of this
  // Row pitch of the staged x slice: (slice·2 + 64) bytes is 64 mod 128 when the slice is a
  // multiple of 64, so the 8 lanes of a 16-byte access phase hit 8 different bank groups.
  static constexpr size_t smem_bytes(int64_t slice) { return static_cast<size_t>(kMaxM) * (slice * 2 + kPad); }
};

template <typename T> __device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

// Grid (N blocks of 128 outputs, K slices). partial: null (one slice: write out) or the f32
// partial sums (slices, M, N).
template <typename T>
__global__ void __launch_bounds__(SkinnyTraits::kThreads, 2) skinny_gemm_kernel(GemmParams p, int64_t ks, float* partial) {
  using Tr = SkinnyTraits;
  extern __shared__ __align__(16) unsigned char xs[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t K = p.K, N = p.N, ldx = p.ldx ? p.ldx : p.K;
  const int M = static_cast<int>(p.M);
  const int64_t kb = static_cast<int64_t>(blockIdx.y) * ks;
  const int64_t klen = min(K, kb + ks) - kb;  // a multiple of 64 (the launcher checks K)
  const int nchunks = static_cast<int>(klen / 32);
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * Tr::kRowsPerBlock + warp * 16;
  const T* w = static_cast<const T*>(p.weight);
  // This lane's rows of the warp's 16: g and g + 8 (clamped: loads stay in bounds).
  const uint4* wa = reinterpret_cast<const uint4*>(w + (n0 + g < N ? n0 + g : N - 1) * K + kb) + t;
  const uint4* wb = reinterpret_cast<const uint4*>(w + (n0 + g + 8 < N ? n0 + g + 8 : N - 1) * K + kb) + t;

  uint4 A[Tr::kAhead][2];
#pragma unroll
  for (int i = 0; i < Tr::kAhead; ++i)
    if (i < nchunks) {
      A[i][0] = __ldcs(wa + i * 4);
      A[i][1] = __ldcs(wb + i * 4);
    }
  cuda::pdl_wait();
  cuda::pdl_trigger();

  // Stage x[:, kb:kb+klen] (rows past M as zeros).
  const int pitch = static_cast<int>(klen * 2 + Tr::kPad);
  const int per_row = static_cast<int>(klen / 8);
  const T* x = static_cast<const T*>(p.x);
  for (int v = threadIdx.x; v < Tr::kMaxM * per_row; v += Tr::kThreads) {
    const int m = v / per_row, c = v - m * per_row;
    const uint4 val = m < M ? *reinterpret_cast<const uint4*>(x + m * ldx + kb + c * 8) : make_uint4(0, 0, 0, 0);
    *reinterpret_cast<uint4*>(xs + m * pitch + c * 16) = val;
  }
  __syncthreads();

  float acc[Tr::kTiles][4];
#pragma unroll
  for (int j = 0; j < Tr::kTiles; ++j)
#pragma unroll
    for (int r = 0; r < 4; ++r) acc[j][r] = 0.f;
  const unsigned char* xrow = xs + g * pitch + t * 16;
  for (int c0 = 0; c0 < nchunks; c0 += Tr::kAhead) {
#pragma unroll
    for (int i = 0; i < Tr::kAhead; ++i) {
      const int c = c0 + i;
      if (c >= nchunks) break;
      const uint4 a = A[i][0], b = A[i][1];
      if (c + Tr::kAhead < nchunks) {  // refill this slot with the chunk kAhead further on
        A[i][0] = __ldcs(wa + (c + Tr::kAhead) * 4);
        A[i][1] = __ldcs(wb + (c + Tr::kAhead) * 4);
      }
#pragma unroll
      for (int j = 0; j < Tr::kTiles; ++j) {
        const uint4 xv = *reinterpret_cast<const uint4*>(xrow + 8 * j * pitch + c * 64);
        mma16816<T>(acc[j], a.x, b.x, a.y, b.y, xv.x, xv.y);  // k step 0: physical 8t+0..3
        mma16816<T>(acc[j], a.z, b.z, a.w, b.w, xv.z, xv.w);  // k step 1: physical 8t+4..7
      }
    }
  }

  // acc[j]: (weight row g, x row 8j+2t), (g, 8j+2t+1), (g+8, 8j+2t), (g+8, 8j+2t+1).
#pragma unroll
  for (int j = 0; j < Tr::kTiles; ++j)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int m = 8 * j + 2 * t + (r & 1);
      const int64_t n = n0 + g + (r >= 2 ? 8 : 0);
      if (m >= M || n >= N) continue;
      if (partial) {
        partial[(static_cast<int64_t>(blockIdx.y) * M + m) * N + n] = acc[j][r];
      } else {
        const float bias = p.bias ? cuda::load_any(p.bias, p.bias_dtype, n) : 0.f;
        static_cast<T*>(p.out)[m * N + n] = cuda::from_float<T>(acc[j][r] + bias);
      }
    }
}

// out = Σ_s partial[s] + bias, slices added in order.
template <typename T> __global__ void skinny_reduce_kernel(GemmParams p, const float* partial, int slices) {
  cuda::pdl_wait();
  cuda::pdl_trigger();
  const int64_t total = p.M * p.N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = 0.f;
    for (int s = 0; s < slices; ++s) v += partial[s * total + i];
    if (p.bias) v += cuda::load_any(p.bias, p.bias_dtype, i % p.N);
    static_cast<T*>(p.out)[i] = cuda::from_float<T>(v);
  }
}

template <typename T> void launch_skinny(const GemmParams& p, cudaStream_t st) {
  using Tr = SkinnyTraits;
  int dev = 0;
  cudaGetDevice(&dev);
  static bool attr_set[64] = {};  // per device: room for the largest slice's shared memory
  if (dev < 0 || dev >= 64) fail("ERR_DEVICE", ErrorKind::Type, "linear: device index beyond 63");
  if (!attr_set[dev]) {
    cuda::check(cudaFuncSetAttribute(skinny_gemm_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(Tr::smem_bytes(Tr::kMaxSlice))),
                "cudaFuncSetAttribute");
    attr_set[dev] = true;
  }
  const int64_t nb = (p.N + Tr::kRowsPerBlock - 1) / Tr::kRowsPerBlock;
  const int64_t quanta = p.K / Tr::kQuantum;
  // Slices: the fewest of at most kMaxSlice of K each (the partial sums cost traffic).
  int64_t slices = std::min((p.K + Tr::kMaxSlice - 1) / Tr::kMaxSlice, quanta);
  const int64_t ks = (quanta + slices - 1) / slices * Tr::kQuantum;
  slices = (p.K + ks - 1) / ks;
  if (nb > 0x7fffffff || slices > 65535) fail("ERR_SHAPE", ErrorKind::Range, "linear: too many outputs for the skinny GEMM");
  Tensor part;
  if (slices > 1) part = empty({slices * p.M * p.N}, DType::Float32, Device{DeviceKind::CUDA, dev});
  float* partial = slices > 1 ? part.ptr<float>() : nullptr;
  cuda::launch_pdl(skinny_gemm_kernel<T>, dim3(static_cast<unsigned>(nb), static_cast<unsigned>(slices)), dim3(Tr::kThreads),
                   Tr::smem_bytes(ks), st, p, ks, partial);
  if (slices > 1)
    cuda::launch_pdl(skinny_reduce_kernel<T>, dim3(cuda::grid_1d(p.M * p.N, 256)), dim3(256), 0, st, p,
                     static_cast<const float*>(partial), static_cast<int>(slices));
  // (part is freed in stream order, after the reduction)
}

}  // namespace

bool skinny_gemm_cuda(const GemmParams& p, void* stream) {
  const char* env = std::getenv("STATESPACE_SKINNY");
  if (env && std::strcmp(env, "0") == 0) return false;
  const bool half = p.dtype == DType::BFloat16 || p.dtype == DType::Float16;
  const int64_t ldx = p.ldx ? p.ldx : p.K;
  if (!half || p.M <= kGemvMaxM || p.M > SkinnyTraits::kMaxM || p.K % SkinnyTraits::kQuantum != 0 || ldx % 8 != 0 ||
      p.N < 1024 || p.N > 4096 || p.K < 2048 ||
      reinterpret_cast<uintptr_t>(p.x) % 16 != 0 || reinterpret_cast<uintptr_t>(p.weight) % 16 != 0)
    return false;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (p.dtype == DType::BFloat16)
    launch_skinny<__nv_bfloat16>(p, st);
  else
    launch_skinny<__half>(p, st);
  cuda::check_launch("linear (skinny)");
  return true;
}

}  // namespace ss
