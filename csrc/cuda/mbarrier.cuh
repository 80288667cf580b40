// Shared-memory barriers (mbarrier, sm_90+) that complete when their arrivals and the bytes of
// the asynchronous copies counted on them (the tensor copies of tma.cuh) have landed. A barrier
// is named by its 32-bit shared-memory address. One thread initialises a block's barriers, then
// mbar_init_fence() (the copy engine must see the initialised words) and a __syncthreads(). A
// phase completes per `count` arrivals plus the announced bytes: phase k of a barrier used once
// per stage has parity k & 1.
// Device code for sm_90 and later only: the callers' host sides check the device first.
#pragma once
#include <cstdint>

namespace ss::cuda {

__device__ __forceinline__ uint32_t shared_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define SS_MBAR_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SS_MBAR_ASM(...) __trap()
#endif

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  SS_MBAR_ASM("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_init_fence() { SS_MBAR_ASM("fence.mbarrier_init.release.cluster;" ::: "memory"); }

// One arrival that also announces `bytes` still to come from asynchronous copies in this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  SS_MBAR_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  SS_MBAR_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

// Waits until the phase of the given parity (0 for the barrier's first phase, then 1, 0, ...)
// has completed. kPark: with a suspend-time hint, so that the hardware parks the thread until the
// phase completes instead of returning at once (fewer polls of shared memory by waiting warps).
template <bool kPark = false>
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t done = 0;
  do {
    if constexpr (kPark)
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2, %3;\n selp.u32 %0, 1, 0, p;\n}\n"
          : "=r"(done)
          : "r"(bar), "r"(parity), "r"(10000000u)
          : "memory");
    else
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
          : "=r"(done)
          : "r"(bar), "r"(parity)
          : "memory");
  } while (!done);
#else
  __trap();
#endif
}

#undef SS_MBAR_ASM

}  // namespace ss::cuda
