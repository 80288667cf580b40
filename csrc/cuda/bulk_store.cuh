// Bulk copies shared -> global memory (Hopper, sm_90+), the other direction of bulk_copy.cuh: a
// thread hands a contiguous byte range of shared memory to the copy engine and goes on; the
// copies it issued since its last commit form a group, and a thread waits for its groups by
// count (oldest first). Before the copy engine reads shared memory written by ordinary stores,
// the writing threads run fence_proxy_async_shared() and the block synchronises.
#pragma once
#include <cstdint>
#include "cuda/bulk_copy.cuh"

namespace ss::cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define SS_BULK_STORE_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SS_BULK_STORE_ASM(...) __trap()
#endif

// Makes this thread's ordinary shared-memory writes visible to the copy engine.
__device__ __forceinline__ void fence_proxy_async_shared() { SS_BULK_STORE_ASM("fence.proxy.async.shared::cta;" ::: "memory"); }

// An L2 policy for data read more than once (B and C of a group's heads).
__device__ __forceinline__ uint64_t l2_evict_normal() {
  uint64_t pol = 0;
  SS_BULK_STORE_ASM("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(pol));
  return pol;
}

// Copies `bytes` (a multiple of 16; both addresses 16-byte aligned) from shared to global memory.
__device__ __forceinline__ void bulk_copy_to_global(void* dst, const void* src, uint32_t bytes, uint64_t l2_policy) {
  SS_BULK_STORE_ASM("cp.async.bulk.global.shared::cta.bulk_group.L2::cache_hint [%0], [%1], %2, %3;" ::"l"(dst), "r"(shared_addr(src)), "r"(bytes),
                    "l"(l2_policy)
                    : "memory");
}
// Asks for `bytes` (a multiple of 16; 16-byte aligned) of global memory to be brought into L2.
__device__ __forceinline__ void bulk_prefetch_l2(const void* src, uint32_t bytes) {
  SS_BULK_STORE_ASM("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulk_commit() { SS_BULK_STORE_ASM("cp.async.bulk.commit_group;" ::: "memory"); }
// Waits until at most N of this thread's groups still read their shared memory (it may be reused).
template <int N> __device__ __forceinline__ void bulk_wait_read() { SS_BULK_STORE_ASM("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory"); }
// Waits until at most N of this thread's groups are incomplete (their writes done).
template <int N> __device__ __forceinline__ void bulk_wait() { SS_BULK_STORE_ASM("cp.async.bulk.wait_group %0;" ::"n"(N) : "memory"); }

#undef SS_BULK_STORE_ASM

}  // namespace ss::cuda
