// Bulk copies global -> shared memory completed on an mbarrier of cuda/mbarrier.cuh (Hopper,
// sm_90+: the copy engine moves a contiguous byte range while the threads do other work; the
// barrier's phase flips once the expected bytes have landed). Device code for sm_90 and later
// only: the callers' host sides check the device's compute capability first.
#pragma once
#include <cstdint>
#include "cuda/mbarrier.cuh"

namespace ss::cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define SS_BULK_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SS_BULK_ASM(...) __trap()
#endif

// An L2 policy for data read once: its lines are the first evicted.
__device__ __forceinline__ uint64_t l2_evict_first() {
  uint64_t pol = 0;
  SS_BULK_ASM("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
  return pol;
}

// Copies `bytes` (a multiple of 16; both addresses 16-byte aligned) from global to shared
// memory; their arrival completes that many of `bar`'s expected bytes.
__device__ __forceinline__ void bulk_copy_to_shared(void* dst, const void* src, uint32_t bytes, uint32_t bar, uint64_t l2_policy) {
  SS_BULK_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::"r"(shared_addr(dst)),
              "l"(src), "r"(bytes), "r"(bar), "l"(l2_policy)
              : "memory");
}

#undef SS_BULK_ASM

}  // namespace ss::cuda
