// Tile copies of the SSD backward's tensor-core kernels (ssd_bwd_chunk.cu, ssd_bwd_states.cu):
// global → shared with zero padding, 16 bytes per cp.async when every row is whole and aligned,
// for any block size NT, without an integer division per piece. The caller commits the group.
#pragma once
#include <cuda_pipeline.h>
#include <cstdint>
#include "cuda/types.cuh"

namespace ss::cuda::ssd {

// Whether tile_copy copies a tile by cp.async (whole, aligned 16-byte rows).
template <typename T>
__device__ __forceinline__ bool tile_vec(int ldd, const T* src, int64_t stride, int cols_valid, int cols) {
  constexpr int V = 16 / sizeof(T);
  return cols_valid == cols && cols % V == 0 && ldd % V == 0 && stride % V == 0 &&
         (reinterpret_cast<uintptr_t>(src) % 16) == 0;
}

// This thread's start and step through the 16-byte pieces of a tile `cols` wide in tile_copy's
// cp.async path (piece = r·(cols / V) + c / V; start piece threadIdx.x, step NT), packed as two
// 16-bit halves (row, piece column) per word. Its integer divisions cost ≈ 40 instructions: a
// kernel that copies tiles of the same runtime width in a loop makes it once and passes it in.
template <int NT, typename T>
struct TileWalk {
  static_assert(NT < 65536, "16-bit fields");
  uint32_t start, step;
  __device__ explicit TileWalk(int cols) {
    const int vcols = max(1, cols / int(16 / sizeof(T)));
    start = uint32_t(threadIdx.x / vcols) | (uint32_t(threadIdx.x % vcols) << 16);
    step = uint32_t(NT / vcols) | (uint32_t(NT % vcols) << 16);
  }
};

// dst[r][c] = src[r·stride + c] for r < rows_valid, c < cols_valid, else 0 (rows × cols).
// cp.async path: thread i handles 16-byte pieces i, i + NT, ... (walk: TileWalk<NT, T>(cols)),
// by pointer steps when NT is a multiple of the pieces per row (every use at the common sizes:
// the general walk cost ≈ 20 instructions per piece, 16 pieces per thread and chunk step in the
// state kernel); otherwise element by element (synchronous).
template <int NT, typename T>
__device__ void tile_copy(T* dst, int ldd, const T* src, int64_t stride, int rows_valid, int rows, int cols_valid,
                          int cols, TileWalk<NT, T> walk) {
  constexpr int V = 16 / sizeof(T);
  if (tile_vec(ldd, src, stride, cols_valid, cols)) {
    const int vcols = cols / V, dr = int(walk.step & 0xffffu), dc = int(walk.step >> 16);
    if (dc == 0) {  // NT a multiple of the pieces per row: this thread's column stays, rows step by dr
      const int c = int(walk.start >> 16) * V;
      for (int r = int(walk.start & 0xffffu); r < rows; r += dr) {
        T* to = dst + r * ldd + c;
        if (r < rows_valid)
          __pipeline_memcpy_async(to, src + int64_t(r) * stride + c, 16);
        else
          *reinterpret_cast<uint4*>(to) = make_uint4(0u, 0u, 0u, 0u);
      }
      return;
    }
    for (int r = int(walk.start & 0xffffu), cv = int(walk.start >> 16); r < rows; r += dr, cv += dc) {
      if (cv >= vcols) cv -= vcols, ++r;
      if (r >= rows) break;
      T* to = dst + r * ldd + cv * V;
      if (r < rows_valid)
        __pipeline_memcpy_async(to, src + int64_t(r) * stride + cv * V, 16);
      else
        *reinterpret_cast<uint4*>(to) = make_uint4(0u, 0u, 0u, 0u);  // all-zero bits: +0 in every float type
    }
    return;
  }
  for (int idx = threadIdx.x; idx < rows * cols; idx += NT) {
    const int r = idx / cols, c = idx % cols;
    dst[r * ldd + c] = (r < rows_valid && c < cols_valid) ? __ldg(src + int64_t(r) * stride + c) : from_float<T>(0.f);
  }
}
template <int NT, typename T>
__device__ void tile_copy(T* dst, int ldd, const T* src, int64_t stride, int rows_valid, int rows, int cols_valid,
                          int cols) {
  tile_copy<NT, T>(dst, ldd, src, stride, rows_valid, rows, cols_valid, cols, TileWalk<NT, T>(cols));
}

}  // namespace ss::cuda::ssd
