// Warp-level tensor-core primitives: ldmatrix (shared → register fragments) and
// mma.sync.m16n8k16 (bf16 / f16 operands, f32 accumulation), with the fragment layouts spelled
// out so kernels can apply scalings, masks and conversions to fragments directly instead of
// round-tripping through shared memory (what wmma's opaque fragments force).
//
// Fragment layouts of mma.m16n8k16 (lane = 0..31, g = lane / 4 "group", t = lane % 4):
//   A (16×16, row-major view, 4 × b32 = 8 halves):
//     a[0] = A[g    ][2t, 2t+1]   a[1] = A[g + 8][2t, 2t+1]
//     a[2] = A[g    ][2t+8, +9]   a[3] = A[g + 8][2t+8, +9]
//   B (16×8, k × n, 2 × b32):
//     b[0] = B[2t, 2t+1][g]       b[1] = B[2t+8, 2t+9][g]
//   C/D (16×8 f32, 4 floats):
//     c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g + 8][2t, 2t+1]
// (In each b32 the lower 16 bits hold the lower column / k index.)
//
// ldmatrix.x4 loads four 8×8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i
// (16-byte rows, 16-byte aligned) and register i receives matrix i with lane holding row g,
// columns 2t, 2t+1 (.trans: the transposed matrix, i.e. stored row 2t, 2t+1, stored column g).
// The *_addr helpers below return, for this lane, the (row, col) in the stored tile whose
// address it must pass, so one call fills a whole operand fragment.
//
// Shared-memory rows should be padded (leading dimension ≡ 8 halves mod 64, e.g. cols + 8) so
// that the eight 16-byte rows of each 8×8 matrix fall in distinct bank groups.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <type_traits>

namespace ss::cuda::mma {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---------------------------------------------------------------------------------------------
// ldmatrix

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
// Same from a shared-memory address already converted (smem_addr), for loops that keep their
// fragment addresses as 32-bit offsets.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t saddr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(saddr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t saddr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(saddr));
}

// Per-lane (row, col) of the address to pass, relative to the tile's top-left element.
struct RC {
  int r, c;
};
// A fragment (16×16, m × k) from a tile stored row-major A[m][k]: ldsm_x4. Returned as (m, k).
__device__ __forceinline__ RC a_addr(int lane) { return {lane & 15, (lane >> 4) * 8}; }
// A fragment from a tile stored transposed, A[k][m] (m contiguous): ldsm_x4_t. Returned as (k, m).
__device__ __forceinline__ RC a_addr_t(int lane) { return {(lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8}; }
// B fragments of TWO adjacent n-tiles (16 × 16, k × n) from a tile stored B[n][k] (k contiguous):
// ldsm_x4 → r[0..1] = n-tile 0, r[2..3] = n-tile 1. Returned as (n, k).
__device__ __forceinline__ RC b_addr_nk(int lane) { return {(lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8}; }
// Same from a tile stored B[k][n] (n contiguous): ldsm_x4_t. Returned as (k, n).
__device__ __forceinline__ RC b_addr_kn(int lane) { return {lane & 15, (lane >> 4) * 8}; }

// ---------------------------------------------------------------------------------------------
// mma.sync.m16n8k16, D = A·B + C in place (f32 accumulators).

template <typename T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "bf16 or f16 operands");
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

// ---------------------------------------------------------------------------------------------
// Packing: two f32 → one b32 of two 16-bit values (lo in the low half), round to nearest.

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}
template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v));
  } else {
    return __half22float2(*reinterpret_cast<const __half2*>(&v));
  }
}

// Two packed 16-bit values times two others, in T (round to nearest): one instruction where
// unpacking, two f32 products and packing take five.
template <typename T>
__device__ __forceinline__ uint32_t mul2(uint32_t a, uint32_t b) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 r =
        __hmul2(*reinterpret_cast<const __nv_bfloat162*>(&a), *reinterpret_cast<const __nv_bfloat162*>(&b));
    return *reinterpret_cast<const uint32_t*>(&r);
  } else {
    const __half2 r = __hmul2(*reinterpret_cast<const __half2*>(&a), *reinterpret_cast<const __half2*>(&b));
    return *reinterpret_cast<const uint32_t*>(&r);
  }
}

// A 4×4 transpose of b32 values across the four lanes of each quad (t = lane % 4): lane t holds
// v[k] = M[t][k] and gets M[0..3][t]. Two butterfly rounds (xor 1, xor 2), two shuffles each.
// Used to store accumulators 16 bytes per lane: in a 16×16 pair of accumulator tiles the quad
// of rows g, g + 8 holds four 16-byte row pieces (row g / g + 8, columns 0-7 / 8-15), each spread
// over the quad 4 bytes per lane; after packing them as v[2·hi + j] (hi: row g + 8, j: columns
// 8..15) and transposing, lane t holds piece t whole (row g + 8·(t / 2), columns 8·(t % 2) ..).
__device__ __forceinline__ void quad_transpose(uint32_t (&v)[4], int t) {
  const bool odd = t & 1, high = t & 2;
#pragma unroll
  for (int k = 0; k < 4; k += 2) {  // pairs (0, 1), (2, 3): even lanes take the partner's v[k]
    const uint32_t got = __shfl_xor_sync(0xffffffffu, odd ? v[k] : v[k + 1], 1);
    if (odd) v[k] = got;
    else v[k + 1] = got;
  }
#pragma unroll
  for (int k = 0; k < 2; ++k) {  // pairs (0, 2), (1, 3)
    const uint32_t got = __shfl_xor_sync(0xffffffffu, high ? v[k] : v[k + 2], 2);
    if (high) v[k] = got;
    else v[k + 2] = got;
  }
}

// Accumulator element i (0..3) of this lane: row and column inside the 16×8 tile.
__device__ __forceinline__ int acc_row(int lane, int i) { return (lane >> 2) + (i >> 1) * 8; }
__device__ __forceinline__ int acc_col(int lane, int i) { return (lane & 3) * 2 + (i & 1); }

}  // namespace ss::cuda::mma
