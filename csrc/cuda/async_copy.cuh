// Asynchronous 16-byte copies global -> shared memory (cp.async, sm_80+): a block can have all
// of a tile's loads in flight without holding registers for them. Plain copies on older GPUs.
#pragma once
#include <cstdint>

namespace ss::cuda {

__device__ __forceinline__ void copy_async16(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
#else
  *reinterpret_cast<uint4*>(smem) = *reinterpret_cast<const uint4*>(gmem);
#endif
}

// Same, copying the first src_bytes (0 or 16) and filling the rest of the 16 bytes with zeros
// (an out-of-range chunk: nothing is read, but gmem must still be a valid address). sm_80+ only.
__device__ __forceinline__ void copy_async16_zfill(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}

// Same with the shared-memory destination as a 32-bit shared address (__cvta_generic_to_shared).
__device__ __forceinline__ void copy_async16_zfill(uint32_t smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(src_bytes) : "memory");
}

// Commit groups (sm_80+): copy_async_commit() closes the group of this thread's copies issued
// since the last commit; copy_async_wait_group<N>() waits until at most N groups are pending.
__device__ __forceinline__ void copy_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void copy_async_wait_group() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// Waits for this thread's outstanding copies (a __syncthreads() after it publishes them).
__device__ __forceinline__ void copy_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

}  // namespace ss::cuda
