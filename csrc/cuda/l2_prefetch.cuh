// L2 prefetch of a byte range (decode weights): the data is requested from DRAM into the L2
// cache and nothing waits for it; a later kernel that reads the range hits L2. Hopper
// (cp.async.bulk.prefetch.L2: one instruction per contiguous piece, issued by the SM's copy
// engine); a no-op on older GPUs.
#pragma once
#include <cstdint>

namespace ss::cuda {

// Eviction priority the prefetched lines take in L2: evict-first (the default) lets them go
// before any line of normal priority (states, activations) once they have been read;
// evict_last is not offered (such lines could outstay their use and crowd L2 for everything after).
enum L2Priority : int { kL2Normal = 0, kL2EvictFirst = 1 };

// The priority prefetches take: STATESPACE_L2PF_POLICY=normal|first (default first), read per
// launch (host side; an A/B switch of this session).
int l2_prefetch_priority();

// Requests bytes [p, p + bytes) into L2: p 16-byte aligned, bytes a multiple of 16.
__device__ __forceinline__ void l2_prefetch_bulk(const void* p, uint32_t bytes, int priority) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const size_t g = __cvta_generic_to_global(p);
  if (priority == kL2EvictFirst) {
    uint64_t pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    asm volatile("cp.async.bulk.prefetch.L2.global.L2::cache_hint [%0], %1, %2;" ::"l"(g), "r"(bytes), "l"(pol) : "memory");
  } else {
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(g), "r"(bytes) : "memory");
  }
#endif
}

}  // namespace ss::cuda
