// Bulk copies global -> shared memory completed on an mbarrier (Hopper, sm_90+: the copy engine
// moves a contiguous byte range while the threads do other work; the barrier's phase flips once
// the expected bytes have landed). Device code for sm_90 and later only: the callers' host sides
// check the device's compute capability before launching a kernel that uses these.
#pragma once
#include <cstdint>
#include "cuda/mbarrier.cuh"

namespace ss::cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define SS_BULK_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SS_BULK_ASM(...) __trap()
#endif

// The barriers of cuda/mbarrier.cuh named by pointer. After initialising its barriers a block
// runs mbar_init_fence() (the copy engine must see the initialised words) and then __syncthreads().
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) { mbar_init(shared_addr(bar), count); }

// One arrival that also announces `bytes` still to come from bulk copies in this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) { mbar_arrive_expect_tx(shared_addr(bar), bytes); }
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  SS_BULK_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(shared_addr(bar)) : "memory");
}

// Waits until the phase of the given parity (0 for the barrier's first phase, then 1, 0, ...)
// has completed. The suspend-time hint lets the hardware park the thread until the phase
// completes instead of returning at once (fewer polls of shared memory while waiting).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const uint32_t a = shared_addr(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2, %3;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(a), "r"(parity), "r"(10000000u)
        : "memory");
  } while (!done);
#else
  __trap();
#endif
}

// An L2 policy for data read once: its lines are the first evicted.
__device__ __forceinline__ uint64_t l2_evict_first() {
  uint64_t pol = 0;
  SS_BULK_ASM("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
  return pol;
}

// Copies `bytes` (a multiple of 16; both addresses 16-byte aligned) from global to shared
// memory; their arrival completes that many of `bar`'s expected bytes.
__device__ __forceinline__ void bulk_copy_to_shared(void* dst, const void* src, uint32_t bytes, uint64_t* bar, uint64_t l2_policy) {
  SS_BULK_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::"r"(shared_addr(dst)),
              "l"(src), "r"(bytes), "r"(shared_addr(bar)), "l"(l2_policy)
              : "memory");
}

#undef SS_BULK_ASM

}  // namespace ss::cuda
