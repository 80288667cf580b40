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

// Waits for this thread's outstanding copies (a __syncthreads() after it publishes them).
__device__ __forceinline__ void copy_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

}  // namespace ss::cuda
