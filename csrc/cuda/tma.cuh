// Device side of the bulk tensor copies (TMA, sm_90): the 2-5 dimensional tile loads of a tensor
// map (tensor_map.h) into 128-byte-swizzled shared memory, completing on a shared-memory barrier
// (mbarrier.cuh). One thread issues a tile's copy after announcing its bytes on the barrier
// (mbar_arrive_expect_tx); every consumer waits on the barrier's phase (mbar_wait).
#pragma once
#include <cuda.h>
#include <cstdint>
#include "cuda/mbarrier.cuh"

namespace ss::cuda::tma {

// Tile at coordinates c (innermost first) of `map` into shared address dst, completing on bar.
__device__ __forceinline__ void load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
#endif
}
__device__ __forceinline__ void load_4d(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, int c3,
                                        uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
#endif
}

// Prefetches the tile at coordinates c of `map` into L2 (no shared memory, no barrier): a later
// load_4d of it then finds it there.
__device__ __forceinline__ void prefetch_4d(const CUtensorMap* map, int c0, int c1, int c2, int c3) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.tensor.4d.L2.global.tile [%0, {%1, %2, %3, %4}];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(c0), "r"(c1), "r"(c2), "r"(c3)
               : "memory");
#endif
}

}  // namespace ss::cuda::tma
