// Warpgroup matrix products of Hopper (wgmma.mma_async, sm_90a): a warpgroup (4 consecutive
// warps, the first one's index a multiple of 4) multiplies a 64 × N tile by an N-wide one in one
// instruction per 16-deep k step, B (and optionally A) read by the tensor cores straight from
// shared memory through 64-bit matrix descriptors, the f32 accumulators in registers.
//
// Only what the SSD forward uses: m64n64k16, bf16 / f16 operands, f32 accumulation, operands in
// the 128-byte-swizzled layout (below), A from shared memory (K-major) or from registers.
//
// Register layouts (per warp w of the warpgroup, g = lane / 4, t = lane % 4) are those of
// mma.m16n8k16 stacked over the four warps (rows 16·w ..):
//   A (4 × b32): a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, ..], a[2] = A[g][2t+8, ..], a[3] = A[g+8][2t+8, ..]
//   D (32 f32):  d[4i + 0, 1] = D[g][8i + 2t, +1], d[4i + 2, 3] = D[g + 8][8i + 2t, +1]
// so fragment code written for mma.sync (mma_tile.cuh) carries over unchanged.
//
// Shared-memory layout ("SW128"): a tile is stored as 8-row × 128-byte atoms; row i of a
// region of 64 16-bit columns lies at byte 128·i, its 16-byte piece c (columns 8c .. 8c + 7) at
// piece c ^ (i % 8). Regions start on 1024-byte boundaries (the swizzle is taken from the
// address bits 7-9). Wider tiles are several 64-column regions one after the other.
//   - K-major operand (A as M × K, B as N × K, K contiguous): rows = M or N, columns = K; a
//     16-deep k step kk starts 32·(kk % 4) bytes into region kk / 4; 8-row groups 1024 bytes apart.
//   - MN-major operand (B as K × N, N contiguous, N = 64): rows = K, columns = N; k step kk
//     starts at row 16·kk (2048·kk bytes); 8-row groups 1024 bytes apart.
//
// Ordering: shared memory written by the threads (cp.async included) must be followed by
// fence_proxy_async() in each writing thread and a barrier before a wgmma reads it; registers an
// asynchronous wgmma writes must not be read before wait<0>() (fence_acc pins them there).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <type_traits>

namespace ss::cuda::wg {

// Byte offset of element (row, col) of a 16-bit SW128 tile whose regions hold `rows` rows.
__host__ __device__ __forceinline__ uint32_t sw128_offset(int row, int col, int rows) {
  return uint32_t((col >> 6) * rows * 128 + row * 128 + ((((col >> 3) & 7) ^ (row & 7)) << 4) + (col & 7) * 2);
}

// Matrix descriptor of an SW128 operand at shared address `saddr` (8-row groups 1024 bytes apart;
// `lbo`: bytes between 64-wide MN regions, MN-major only).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t saddr, uint32_t lbo = 16) {
  return uint64_t((saddr & 0x3FFFF) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

__device__ __forceinline__ void fence_proxy_async() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void commit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// stmatrix (sm_90): the inverse of ldmatrix.x4 — lane l gives the address of row l % 8 of 8 × 8
// matrix l / 8; register j holds this lane's pair (row lane / 4, columns 2·(lane % 4), + 1) of
// matrix j (the accumulator layout above, packed to 16-bit pairs).
__device__ __forceinline__ void stsm_x4(uint32_t saddr, const uint32_t (&r)[4]) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(saddr), "r"(r[0]), "r"(r[1]),
               "r"(r[2]), "r"(r[3])
               : "memory");
#endif
}

// Keeps the compiler from moving reads or writes of the accumulators across a wait / fence.
template <int R>
__device__ __forceinline__ void fence_acc(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// Each product's asm is written once, its operand type spliced in as the PTX type name (bf16 /
// f16) by SS_WG_TYPED: the instruction strings must be literals.
#define SS_WG_TYPED(T, ASM)                              \
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {      \
    ASM(bf16);                                           \
  } else {                                               \
    ASM(f16);                                            \
  }

#define SS_WG_D32                                                                                              \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),   \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),   \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define SS_WG_DREGS                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
  "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define SS_WG_D64                                                                                              \
  SS_WG_D32, "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]),        \
      "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), \
      "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), \
      "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), \
      "+f"(d[63])
#define SS_WG_DREGS64                                                                 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "           \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "  \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "  \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

template <typename T>
constexpr void check_operand_type() {
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "bf16 or f16 operands");
}

// D (+)= A·B, A (64 × 16; K-major, or MN-major with TA) and B (16 × 64; K-major, or MN-major
// with TB) from shared memory. accumulate == false overwrites D.
template <typename T, int TA, int TB>
__device__ __forceinline__ void mma_ss(float (&d)[32], uint64_t a, uint64_t b, bool accumulate) {
  check_operand_type<T>();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SS_WG_MMA_SS(TY)                                                                                          \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                       \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." #TY "." #TY " " SS_WG_DREGS                           \
               ", %32, %33, p, 1, 1, %35, %36;\n}\n"                                                               \
               : SS_WG_D32                                                                                        \
               : "l"(a), "l"(b), "r"(int(accumulate)), "n"(TA), "n"(TB))
  SS_WG_TYPED(T, SS_WG_MMA_SS)
#undef SS_WG_MMA_SS
#endif
}

// D += A·B, A (64 × 16) from registers (the layout above), B (16 × 64; K-major, or MN-major
// with TB) from shared memory.
template <typename T, int TB>
__device__ __forceinline__ void mma_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b) {
  check_operand_type<T>();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SS_WG_MMA_RS(TY)                                                                                          \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %38, 0;\n"                                                       \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." #TY "." #TY " " SS_WG_DREGS                           \
               ", {%32, %33, %34, %35}, %36, p, 1, 1, %37;\n}\n"                                                   \
               : SS_WG_D32                                                                                        \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(TB), "r"(1))
  SS_WG_TYPED(T, SS_WG_MMA_RS)
#undef SS_WG_MMA_RS
#endif
}

// D += A·B for N = 128 (64 accumulators, d[4·i + e] as above with i = 0 .. 15), A (64 × 16) from
// registers, B (16 × 128; K-major, or MN-major with TB: two 64-wide regions `lbo` bytes apart in
// its descriptor) from shared memory.
template <typename T, int TB>
__device__ __forceinline__ void mma_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t b) {
  check_operand_type<T>();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SS_WG_MMA_RS128(TY)                                                                                       \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %70, 0;\n"                                                       \
               "wgmma.mma_async.sync.aligned.m64n128k16.f32." #TY "." #TY " " SS_WG_DREGS64                        \
               ", {%64, %65, %66, %67}, %68, p, 1, 1, %69;\n}\n"                                                   \
               : SS_WG_D64                                                                                        \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(TB), "r"(1))
  SS_WG_TYPED(T, SS_WG_MMA_RS128)
#undef SS_WG_MMA_RS128
#endif
}

#undef SS_WG_TYPED
#undef SS_WG_D32
#undef SS_WG_DREGS
#undef SS_WG_D64
#undef SS_WG_DREGS64

}  // namespace ss::cuda::wg
