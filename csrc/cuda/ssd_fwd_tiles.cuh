// Tile copies of the SSD forward's tensor-core kernels (ssd_fwd_mma.cu, ssd_fwd_fused.cu):
// global → shared with zero padding, 16 bytes per cp.async where a piece is whole and aligned.
#pragma once
#include <cuda_pipeline.h>
#include <cstdint>
#include "cuda/types.cuh"

namespace ss::cuda::ssd {

// Copies a rows × cols tile (cols a multiple of 16 bytes' worth of T) to shared memory with NT
// threads (t: this thread's index among them): cp.async where a 16-byte piece is whole and
// aligned, else element by element; rows past rows_valid and columns past cols_valid are zero.
// The caller commits and waits. When the pieces of a row divide NT, every thread keeps one column
// and steps down the rows (no division or 64-bit multiply per piece).
template <typename T>
__device__ __forceinline__ void copy_piece(T* to, const T* from, bool row_ok, int cols_left) {
  constexpr int V = 16 / sizeof(T);
#pragma unroll
  for (int e = 0; e < V; ++e) to[e] = (row_ok && e < cols_left) ? __ldg(from + e) : from_float<T>(0.f);
}

template <int NT, typename T>
__device__ void copy_tile(int t, T* dst, int ldd, const T* src, int64_t stride, int rows_valid, int rows, int cols_valid, int cols) {
  constexpr int V = 16 / sizeof(T);
  const bool vec_ok = stride % V == 0 && (reinterpret_cast<uintptr_t>(src) % 16) == 0;
  const int vcols = cols / V;
  if (NT % vcols == 0) {
    const int rstep = NT / vcols, c = (t % vcols) * V, r0 = t / vcols;
    const T* from = src + int64_t(r0) * stride + c;
    const int64_t fstep = rstep * stride;
    T* to = dst + r0 * ldd + c;
    if (vec_ok && c + V <= cols_valid) {
      for (int r = r0; r < rows; r += rstep, from += fstep, to += rstep * ldd) {
        if (r < rows_valid)
          __pipeline_memcpy_async(to, from, 16);
        else
          *reinterpret_cast<uint4*>(to) = make_uint4(0u, 0u, 0u, 0u);  // all-zero bits: +0 in every float type
      }
    } else {
      for (int r = r0; r < rows; r += rstep, from += fstep, to += rstep * ldd)
        copy_piece(to, from, r < rows_valid, cols_valid - c);
    }
    return;
  }
  for (int idx = t; idx < rows * vcols; idx += NT) {
    const int r = idx / vcols, c = (idx % vcols) * V;
    T* to = dst + r * ldd + c;
    const T* from = src + int64_t(r) * stride + c;
    if (r < rows_valid && vec_ok && c + V <= cols_valid)
      __pipeline_memcpy_async(to, from, 16);
    else
      copy_piece(to, from, r < rows_valid, cols_valid - c);
  }
}

}  // namespace ss::cuda::ssd
