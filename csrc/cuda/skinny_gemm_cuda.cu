// Skinny GEMM of batched decode: out (M, N) = x (M, K) · w (N, K)ᵀ + bias for 8 < M <= 64 rows,
// bf16/f16 operands, f32 accumulation on tensor cores (mma.sync m16n8k16, cuda/mma_tile.cuh).
//
// With M <= 64 the product is bound by reading w once (M·K·N MACs on N·K weight bytes), so the
// kernel is laid out for the weight stream, not for reuse:
//  - a block (8 warps) owns BN = 128 weight rows of a K range and all M tokens (padded to 64):
//    the weights are the mma A operand (16 weight rows per warp), the tokens the B operand
//    (8 n-tiles of 8), so every weight byte is read from DRAM exactly once;
//  - a kStages-deep cp.async pipeline of (128 + 64) x 64 tiles (swizzled, no padding: 24 KB a
//    stage, 96 KB a block, 2 blocks per SM) keeps ~3 weight tiles (48 KB) per block in flight;
//    x comes from L2 per K chunk beside them (x : w bytes = 64 : 128);
//  - narrow outputs split K over the S blocks of a thread-block cluster (Hopper) so that
//    ceil(N / 128)·S blocks cover the SMs; the S partial tiles are summed through distributed
//    shared memory in rank order (deterministic, no partials in global memory, no atomics), each
//    block finalising 1/S of the tile (bias, one rounding);
//  - programmatic dependent launch: the first stages' weights are requested before waiting for
//    the kernel that produces x.
// Measured on an H100 (bench/NOTES.md, batch-64 decode, third session) it still loses to cuBLAS
// (in_proj 64x10240x2560 30 µs = 1.8 TB/s against 22 µs; out_proj 64x2560x5120 20 against 11.5):
// each stage waits for the slowest of its ~1500 16-byte copies at 2 blocks per SM, and DRAM stays
// near half busy. So it runs where cuBLAS is missing (skinny_gemm_fits); cuBLAS's sm_90 kernels
// stream through TMA with warp-specialised producers, the next thing to try here.
#include <atomic>
#include <cstdlib>
#include <string>
#include "cuda/async_copy.cuh"
#include "cuda/check.cuh"
#include "cuda/cluster.cuh"
#include "cuda/cublas_loader.h"
#include "cuda/gemm_epilogue.cuh"
#include "cuda/load_any.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "cuda/smem_optin.h"
#include "ops/dense.h"

namespace ss {
namespace {

using namespace cuda::mma;

struct SkinnyTraits {
  static constexpr int kMaxM = 64;    // tokens (mma B columns): 8 n-tiles of 8
  static constexpr int BN = 128;      // weight rows per block: 16 per warp
  static constexpr int BK = 64;       // K per stage: 128-byte rows, 8 chunks of 16 bytes
  static constexpr int kStages = 4;
  static constexpr int kWarps = BN / 16, kThreads = kWarps * 32;
  static constexpr int kMaxSplit = 8;  // portable cluster size
  static constexpr int kStageElems = (BN + kMaxM) * BK;
  static constexpr size_t kSmem = static_cast<size_t>(kStages) * kStageElems * 2;
  static constexpr int kRedPitch = BN + 4;  // f32 partial tile [token][row], conflict-free writes
  static_assert(static_cast<size_t>(kMaxM) * kRedPitch * 4 <= kSmem, "the partial tile reuses the pipeline's shared memory");
};
static_assert(SkinnyTraits::kMaxM > kGemvMaxM, "the skinny GEMM starts where the matrix-vector kernel stops");

// Stage tiles have 64-element (128-byte) rows whose 16-byte chunk index is XORed with the row's
// low 3 bits: the 8 rows read by one ldmatrix 8x8 matrix (same logical chunk) sit in 8 different
// bank groups, and the cp.async writes of a row stay whole 16-byte chunks.

// Cluster loads (sm_90); on older GPUs the host launches S = 1 and they reduce to the block.
// 4 floats at shared address `local` of this block, in the block of cluster rank `rank`.
__device__ __forceinline__ float4 ld_cluster_f4(uint32_t local, uint32_t rank) {
  float4 v;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(rank));
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(remote) : "memory");
#else
  (void)rank;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(local) : "memory");
#endif
  return v;
}

// The float4 at shared address `local` summed over the cluster's blocks 0..S-1 (S <= kMax), in
// rank order (the K-split partials: a fixed order, so the result repeats bit for bit), every
// rank's value loaded before the first add (one round trip through the cluster, not S).
template <int kMax> __device__ __forceinline__ float4 cluster_sum_f4(uint32_t local, int S) {
  float4 part[kMax];
#pragma unroll
  for (int s = 0; s < kMax; ++s)
    if (s < S) part[s] = ld_cluster_f4(local, static_cast<uint32_t>(s));
  float4 v = part[0];
#pragma unroll
  for (int s = 1; s < kMax; ++s)
    if (s < S) {
      v.x += part[s].x;
      v.y += part[s].y;
      v.z += part[s].z;
      v.w += part[s].w;
    }
  return v;
}

// Grid (ceil(N / BN), S), clusters of (1, S): block (bx, s) computes weight rows
// [bx·BN, bx·BN + BN) over K range [s·kc, s·kc + kc) (kc a multiple of BK).
template <typename T>
__global__ void __launch_bounds__(SkinnyTraits::kThreads, 2) skinny_gemm_kernel(GemmParams p, int64_t kc) {
  using Tr = SkinnyTraits;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int S = gridDim.y, rank = blockIdx.y;
  const int M = static_cast<int>(p.M);
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * Tr::BN;
  const int64_t k_begin = static_cast<int64_t>(rank) * kc;
  const int64_t k_end = min(p.K, k_begin + kc);
  const int nk = k_end > k_begin ? static_cast<int>((k_end - k_begin + Tr::BK - 1) / Tr::BK) : 0;
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldw = p.ldw ? p.ldw : p.K;
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.weight);

  // Everything the stage loop needs is computed once here, so that a stage costs the 6 copies,
  // 20 ldmatrix and 32 mma of a warp plus a few adds (the first version recomputed swizzled
  // addresses per use and guarded each n-tile with a branch, which serialised every ldmatrix
  // with its mma: the kernel was bound by its own instruction latency, at 1.35 TB/s).
  // Loads: this thread's 16-byte chunk column and rows r0 + 32·i of the weight (4) and x (2)
  // tiles. (r0 + 32·i) & 7 = r0 & 7, so one swizzled offset serves every row of a thread.
  const int ch = tid % 8, r0 = tid / 8;
  const uint32_t smem_base = smem_addr(smem_raw);
  constexpr uint32_t kStageBytes = Tr::kStageElems * 2, kRowBytes = Tr::BK * 2, kXBytes = Tr::BN * Tr::BK * 2;
  const uint32_t dst0 = r0 * kRowBytes + ((ch ^ r0) & 7) * 16;  // + i·32 rows
  const T* wsrc[Tr::BN / 32];
  bool wok[Tr::BN / 32];
#pragma unroll
  for (int i = 0; i < Tr::BN / 32; ++i) {
    const int64_t r = n0 + r0 + 32 * i;
    wok[i] = r < p.N;
    wsrc[i] = wok[i] ? w + r * ldw + k_begin + ch * 8 : w;
  }
  const T* xsrc[Tr::kMaxM / 32];
  bool xok[Tr::kMaxM / 32];
#pragma unroll
  for (int i = 0; i < Tr::kMaxM / 32; ++i) {
    const int r = r0 + 32 * i;
    xok[i] = r < M;
    xsrc[i] = xok[i] ? x + r * ldx + k_begin + ch * 8 : x;
  }
  const int64_t klen = k_end - k_begin;
  auto load_w = [&](int kt, int stage) {
    const int64_t kofs = static_cast<int64_t>(kt) * Tr::BK;
    const bool kok = kofs + ch * 8 < klen;
    const uint32_t dst = smem_base + stage * kStageBytes + dst0;
#pragma unroll
    for (int i = 0; i < Tr::BN / 32; ++i) {
      const bool ok = wok[i] && kok;
      cuda::copy_async16_zfill(dst + i * 32 * kRowBytes, ok ? wsrc[i] + kofs : w, ok ? 16 : 0);
    }
  };
  auto load_x = [&](int kt, int stage) {
    const int64_t kofs = static_cast<int64_t>(kt) * Tr::BK;
    const bool kok = kofs + ch * 8 < klen;
    const uint32_t dst = smem_base + stage * kStageBytes + kXBytes + dst0;
#pragma unroll
    for (int i = 0; i < Tr::kMaxM / 32; ++i) {
      const bool ok = xok[i] && kok;
      cuda::copy_async16_zfill(dst + i * 32 * kRowBytes, ok ? xsrc[i] + kofs : x, ok ? 16 : 0);
    }
  };

  // Prologue: the weights of the first stages are parameters, requested before the producer of
  // x has finished; x of stage s joins commit group s (group 0 also holds every prologue weight).
#pragma unroll
  for (int s = 0; s < Tr::kStages - 1; ++s)
    if (s < nk) load_w(s, s);
  cuda::pdl_wait();
  cuda::pdl_trigger();
#pragma unroll
  for (int s = 0; s < Tr::kStages - 1; ++s) {
    if (s < nk) load_x(s, s);
    cuda::copy_async_commit();
  }

  float acc[8][4];
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[j][i] = 0.f;
  // ldmatrix offsets (bytes within a stage) of this lane for the 4 k16 steps: the warp's 16 weight
  // rows (A) and token rows 0..15 (B; token block jp adds jp·16 rows, the same swizzle).
  const RC ra = a_addr(lane), rb = b_addr_nk(lane);
  uint32_t a_off[4], b_off[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int ar = warp * 16 + ra.r;
    a_off[q] = ar * kRowBytes + (((2 * q + (ra.c >> 3)) ^ ar) & 7) * 16;
    b_off[q] = kXBytes + rb.r * kRowBytes + (((2 * q + (rb.c >> 3)) ^ rb.r) & 7) * 16;
  }

  for (int kt = 0; kt < nk; ++kt) {
    cuda::copy_async_wait_group<Tr::kStages - 2>();
    __syncthreads();  // stage kt visible to all; stage kt - 1 no longer read by anyone
    const int next = kt + Tr::kStages - 1;
    if (next < nk) {
      load_w(next, next % Tr::kStages);
      load_x(next, next % Tr::kStages);
    }
    cuda::copy_async_commit();
    const uint32_t sb = smem_base + (kt % Tr::kStages) * kStageBytes;
    // Fragments of k16 step q + 1 are loaded before the mma of step q.
    uint32_t a[2][4], b[2][4][4];
    ldsm_x4(a[0], sb + a_off[0]);
#pragma unroll
    for (int jp = 0; jp < 4; ++jp) ldsm_x4(b[0][jp], sb + b_off[0] + jp * 16 * kRowBytes);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int cur = q & 1;
      if (q + 1 < 4) {
        ldsm_x4(a[cur ^ 1], sb + a_off[q + 1]);
#pragma unroll
        for (int jp = 0; jp < 4; ++jp) ldsm_x4(b[cur ^ 1][jp], sb + b_off[q + 1] + jp * 16 * kRowBytes);
      }
#pragma unroll
      for (int jp = 0; jp < 4; ++jp) {
        const uint32_t b0[2] = {b[cur][jp][0], b[cur][jp][1]}, b1[2] = {b[cur][jp][2], b[cur][jp][3]};
        mma16816<T>(acc[2 * jp], a[cur], b0);
        mma16816<T>(acc[2 * jp + 1], a[cur], b1);
      }
    }
  }
  cuda::copy_async_wait_group<0>();
  __syncthreads();  // every warp is done with the pipeline's shared memory

  // Partial tile red[token][row] (f32) in this block's shared memory.
  float* red = reinterpret_cast<float*>(smem_raw);
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) red[(j * 8 + acc_col(lane, i)) * Tr::kRedPitch + warp * 16 + acc_row(lane, i)] = acc[j][i];
  cuda::cluster_sync();  // the S partial tiles of the cluster are complete and visible

  // Block `rank` finalises rows [rank·BN/S, (rank+1)·BN/S) of the tile, 4 rows x 1 token per item.
  const int rows_per = Tr::BN / S, groups = rows_per / 4;
  const bool vec_out = p.N % 4 == 0 && reinterpret_cast<uintptr_t>(p.out) % 8 == 0;
  for (int item = tid; item < groups * M; item += Tr::kThreads) {
    const int tok = item / groups, row = rank * rows_per + (item - tok * groups) * 4;
    const uint32_t local = smem_addr(red + tok * Tr::kRedPitch + row);
    cuda::store_out4<T>(p, tok, n0 + row, cluster_sum_f4<Tr::kMaxSplit>(local, S), vec_out);
  }
  cuda::cluster_sync();  // no block leaves while another still reads its partial tile
}

// Narrow outputs of batched decode (N <= 256: Mamba-1's x_proj, 64 x 192 x 5120, 8 < M <= 64,
// 16-bit), where cuBLAS leaves most SMs idle and the tile kernel above has too few tiles: K is
// split over the blocks of a thread-block cluster, 16 where the device runs clusters of 16
// (non-portable; else 8), and a block owns 32 weight rows (two mma m-tiles) of its K range, its 8
// warps taking interleaved 32-wide K chunks of it (x_proj: 6 x 16 = 96 blocks, 1-2 chunks a warp).
// No shared-memory staging and no barrier in the K loop: a lane reads its mma fragments straight
// from global memory, taking the 8 contiguous k at 8q of a chunk (q = lane % 4, one 16-byte load
// per operand row) as its slots of two k16 steps (a dot product does not care in which order it
// visits k; the same permutation for both operands). The weights (evict-first) of a warp's first
// kU chunks are requested before the PDL wait; after it every x load of a group of kU chunks goes
// out at once (x through L1: the block's warps read the same x rows). The warps' partial tiles
// are summed in shared memory in warp order, the cluster's through distributed shared memory in
// rank order, every rank's partial loaded before the sum (deterministic).
// What the kernel spends after its wait is x, not the weights: x_proj reads its 64 tokens of each
// K range once per 32-row tile (41 KB a block, 3.9 MB over the grid). Measured on the H100
// (bench/NOTES.md, b64x8 run 1): -0.05 ms a batch-64 step of mamba-2.8b against the first form of
// this kernel (one m-tile a block, clusters of 8: 82 KB of x a block, the next chunk's x
// requested after the current one's mma, the cluster partials loaded one after the other); the
// same kernel with clusters of 8 +0.10 ms.
// (The same loop for wide outputs, 2-warp blocks with one m-tile per warp and K split over
// clusters, ran in_proj 64x10240x2560 at 54 µs and out_proj at 26.5 against cuBLAS's 21.5 and
// 10.2: bench/NOTES.md, batch-64 decode, fourth session.)
struct NarrowTraits {
  static constexpr int kMT = 2, kKW = 8;  // m-tiles per warp (and block), warps per block (K interleave)
  static constexpr int kWarps = kKW, kThreads = kWarps * 32, kMaxM = 64, kRows = 16 * kMT;
  static constexpr int kU = 2;            // chunks of a warp whose loads go out together
  static constexpr int kMaxSplit = 16, kMinSplit = 8;  // clusters: the H100's non-portable size, the portable one
  static constexpr int kPitch = kRows + 4;  // f32 partial tile [token][32 rows + 4]: conflict-free writes, 16-byte rows
  static constexpr size_t kSmem = static_cast<size_t>(kKW) * kMaxM * kPitch * 4;  // 72 KB
  // At most 200 registers (51200 a block): a block fits on an SM beside one of the conv step's
  // (256 x 56), so that it can launch while the conv step runs and request its weights then, and
  // beside one of the batched Mamba-1 update's (128 x 96), which launches while this one runs.
  static constexpr int kMaxRegs = 200;
};
constexpr int kNarrowMaxN = 256;

template <typename T>
__global__ void __maxnreg__(NarrowTraits::kMaxRegs) narrow_gemm_kernel(GemmParams p) {
  using Tr = NarrowTraits;
  constexpr int U = Tr::kU, MT = Tr::kMT;
  extern __shared__ __align__(128) unsigned char smem_raw[];  // (one alignment for every declaration of the name)
  float* red = reinterpret_cast<float*>(smem_raw);  // [kKW][kMaxM][kPitch]
  const int kw = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int S = gridDim.y, rank = blockIdx.y, M = static_cast<int>(p.M);
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * Tr::kRows;
  const int nc = static_cast<int>(p.K / 32), c0 = static_cast<int>(static_cast<int64_t>(rank) * nc / S),
            c1 = static_cast<int>(static_cast<int64_t>(rank + 1) * nc / S);
  const int mine = c1 - c0 > kw ? (c1 - c0 - kw + Tr::kKW - 1) / Tr::kKW : 0;  // chunks c0 + kw + i·kKW
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldw = p.ldw ? p.ldw : p.K;
  constexpr int kStep = Tr::kKW * 32;  // elements between a warp's consecutive chunks
  // This lane's weight rows: g, g + 8 of each m-tile (rows past N read the last one: never stored).
  const T* wrow[MT][2];
#pragma unroll
  for (int t = 0; t < MT; ++t)
#pragma unroll
    for (int h = 0; h < 2; ++h)
      wrow[t][h] = static_cast<const T*>(p.weight) + min(n0 + 16 * t + 8 * h + g, p.N - 1) * ldw + (c0 + kw) * 32 + q * 8;
  const T* x0 = static_cast<const T*>(p.x) + (c0 + kw) * 32 + q * 8;
  uint32_t xrow[8];  // element offsets of this lane's token rows (tokens past M read the last one)
#pragma unroll
  for (int j = 0; j < 8; ++j) xrow[j] = static_cast<uint32_t>(min(8 * j + g, M - 1) * ldx);

  float acc[MT][8][4];
#pragma unroll
  for (int t = 0; t < MT; ++t)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[t][j][0] = acc[t][j][1] = acc[t][j][2] = acc[t][j][3] = 0.f;
  uint4 w[U][MT][2];
  auto load_w = [&](int i0) {
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (i0 + u < mine)
#pragma unroll
        for (int t = 0; t < MT; ++t)
#pragma unroll
          for (int h = 0; h < 2; ++h) w[u][t][h] = __ldcs(reinterpret_cast<const uint4*>(wrow[t][h] + (i0 + u) * kStep));
  };
  load_w(0);  // parameters: requested before waiting for the producer of x
  cuda::pdl_wait();
  cuda::pdl_trigger();
  for (int i0 = 0; i0 < mine; i0 += U) {
    if (i0 > 0) load_w(i0);
    uint4 xb[U][8];
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (i0 + u < mine)
#pragma unroll
        for (int j = 0; j < 8; ++j) xb[u][j] = __ldg(reinterpret_cast<const uint4*>(x0 + xrow[j] + (i0 + u) * kStep));
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (i0 + u >= mine) break;
#pragma unroll
      for (int t = 0; t < MT; ++t) {
        const uint32_t a0[4] = {w[u][t][0].x, w[u][t][1].x, w[u][t][0].y, w[u][t][1].y};
        const uint32_t a1[4] = {w[u][t][0].z, w[u][t][1].z, w[u][t][0].w, w[u][t][1].w};
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const uint32_t b0[2] = {xb[u][j].x, xb[u][j].y}, b1[2] = {xb[u][j].z, xb[u][j].w};
          mma16816<T>(acc[t][j], a0, b0);
          mma16816<T>(acc[t][j], a1, b1);
        }
      }
    }
  }

  // acc[t][j]: rows 16t + g (+ 8), tokens 8j + 2q (+ 1)
  float* mine_red = red + kw * Tr::kMaxM * Tr::kPitch;
#pragma unroll
  for (int t = 0; t < MT; ++t)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) mine_red[(8 * j + 2 * q + (e & 1)) * Tr::kPitch + 16 * t + g + 8 * (e >> 1)] = acc[t][j][e];
  __syncthreads();
  for (int i = threadIdx.x; i < Tr::kMaxM * Tr::kRows / 4; i += Tr::kThreads) {  // the warps' sum, in warp order, into warp 0's tile
    const int off = (i / (Tr::kRows / 4)) * Tr::kPitch + (i % (Tr::kRows / 4)) * 4;
    float4 v = *reinterpret_cast<const float4*>(red + off);
#pragma unroll
    for (int k = 1; k < Tr::kKW; ++k) {
      const float4 u = *reinterpret_cast<const float4*>(red + k * Tr::kMaxM * Tr::kPitch + off);
      v.x += u.x;
      v.y += u.y;
      v.z += u.z;
      v.w += u.w;
    }
    *reinterpret_cast<float4*>(red + off) = v;
  }
  cuda::cluster_sync();  // the S partial tiles of the cluster are complete and visible

  // Block `rank` finalises items [rank·per, rank·per + per) of 64 tokens x 8 row quads.
  constexpr int kItems = Tr::kMaxM * Tr::kRows / 4;
  const int per = (kItems + S - 1) / S;
  const bool vec_out = p.N % 4 == 0 && reinterpret_cast<uintptr_t>(p.out) % 8 == 0;
  for (int item = rank * per + static_cast<int>(threadIdx.x); item < min(rank * per + per, kItems); item += Tr::kThreads) {
    const int tok = item / (Tr::kRows / 4), row = (item % (Tr::kRows / 4)) * 4;
    if (tok >= M) continue;
    const uint32_t local = smem_addr(red + tok * Tr::kPitch + row);
    cuda::store_out4<T>(p, tok, n0 + row, cluster_sum_f4<Tr::kMaxSplit>(local, S), vec_out);
  }
  cuda::cluster_sync();  // no block leaves while another still reads its partial tile
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

template <typename T> void launch_skinny(const GemmParams& p, cudaStream_t st) {
  using Tr = SkinnyTraits;
  cuda::set_smem_once<skinny_gemm_kernel<T>>(Tr::kSmem, "linear (skinny): shared memory", false);  // 96 KB
  const int64_t tiles = (p.N + Tr::BN - 1) / Tr::BN;
  // Split K until the blocks cover the SMs (clusters need sm_90), keeping >= 2 stages per block.
  int S = 1;
  if (cuda::compute_capability() >= 90)
    while (S < Tr::kMaxSplit && tiles * S < cuda::sm_count() && p.K >= static_cast<int64_t>(2 * S) * 2 * Tr::BK) S *= 2;
  const int64_t kc = ((p.K + S - 1) / S + Tr::BK - 1) / Tr::BK * Tr::BK;
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(S)), cluster(1, static_cast<unsigned>(S));
  cuda::check(cuda::launch_clustered(skinny_gemm_kernel<T>, grid, dim3(Tr::kThreads), Tr::kSmem, st, cluster, p, kc), "linear (skinny)");
}

// Whether the narrow kernel takes p: 8 < M <= 64, N <= 256, 16-bit, K % 32 == 0 with >= 2048
// (a chunk per warp of every block), row-major 16-byte aligned rows, sm_90 (clusters).
bool narrow_fits(const GemmParams& p) {
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldw = p.ldw ? p.ldw : p.K;
  return (p.dtype == DType::BFloat16 || p.dtype == DType::Float16) && p.M > kGemvMaxM && p.M <= NarrowTraits::kMaxM && p.N > 0 &&
         p.N <= kNarrowMaxN && p.K % 32 == 0 && p.K >= 32 * NarrowTraits::kKW * NarrowTraits::kMinSplit && !p.x_col_major &&
         !p.w_col_major && ldx % 8 == 0 && ldw % 8 == 0 && 64 * ldx < (int64_t{1} << 31) && aligned16(p.x) && aligned16(p.weight) &&
         cuda::compute_capability() >= 90;
}

// Clusters of 16 (non-portable) for the narrow kernel where the device runs at least `clusters`
// of them at once, else the portable 8.
template <typename T> int narrow_split(int64_t clusters) {
  using Tr = NarrowTraits;
  return cuda::clusters_of_16<narrow_gemm_kernel<T>>(Tr::kThreads, Tr::kSmem, "linear (narrow)") >= clusters ? Tr::kMaxSplit : Tr::kMinSplit;
}

template <typename T> void launch_narrow(const GemmParams& p, cudaStream_t st) {
  using Tr = NarrowTraits;
  cuda::set_smem_once<narrow_gemm_kernel<T>>(Tr::kSmem, "linear (narrow): shared memory");  // and the largest carveout
  const int64_t tiles = (p.N + Tr::kRows - 1) / Tr::kRows;
  // 16 K slices where each keeps at least a chunk per warp (x_proj: 10 chunks of 32 a block)
  const int S = p.K / 32 >= int64_t{Tr::kMaxSplit} * Tr::kKW ? narrow_split<T>(tiles) : Tr::kMinSplit;
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(S)), cluster(1, static_cast<unsigned>(S));
  cuda::check(cuda::launch_clustered(narrow_gemm_kernel<T>, grid, dim3(Tr::kThreads), Tr::kSmem, st, cluster, p), "linear (narrow)");
}

}  // namespace

bool skinny_gemm_fits(const GemmParams& p) {
  if (narrow_fits(p)) return true;
  // Where cuBLAS is there it is faster (bench/NOTES.md, batch-64 decode, third session: in_proj
  // 64x10240x2560 22 µs against 30 µs), so the skinny GEMM serves hosts without it, unless
  // STATESPACE_SKINNY=1 asks for it (benchmarks, tests) or =0 refuses it.
  const char* v = std::getenv("STATESPACE_SKINNY");
  if (v && v[0] == '0') return false;
  std::string why;
  if (!(v && v[0] == '1') && cuda::cublas_usable(p, &why)) return false;
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldw = p.ldw ? p.ldw : p.K;
  return (p.dtype == DType::BFloat16 || p.dtype == DType::Float16) && p.M > kGemvMaxM && p.M <= SkinnyTraits::kMaxM && p.N > 0 &&
         p.K > 0 && p.N < (int64_t{1} << 31) / SkinnyTraits::BN && !p.x_col_major && !p.w_col_major && p.K % 8 == 0 && ldx % 8 == 0 &&
         ldw % 8 == 0 && aligned16(p.x) && aligned16(p.weight);
}

bool skinny_gemm_cuda(const GemmParams& p, void* stream) {
  if (!skinny_gemm_fits(p)) return false;
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (narrow_fits(p)) {
    if (p.dtype == DType::BFloat16)
      launch_narrow<__nv_bfloat16>(p, st);
    else
      launch_narrow<__half>(p, st);
  } else if (p.dtype == DType::BFloat16) {
    launch_skinny<__nv_bfloat16>(p, st);
  } else {
    launch_skinny<__half>(p, st);
  }
  cuda::check_launch("linear (skinny)");
  return true;
}

}  // namespace ss
