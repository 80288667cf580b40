// Thread-block cluster primitives (Hopper, sm_90): a cluster-wide barrier and reads of another
// block's shared memory (distributed shared memory), for K-split products whose blocks sum their
// partial tiles in rank order. On older GPUs the launchers use clusters of one block and these
// reduce to the block.
#pragma once
#include <cstdint>

namespace ss::cuda {

__device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#else
  __syncthreads();
#endif
}

// 4 floats at shared address `local` of this block, in the block of cluster rank `rank`.
__device__ __forceinline__ float4 ld_cluster_f4(uint32_t local, uint32_t rank) {
  float4 v;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(rank));
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(remote) : "memory");
#else
  (void)rank;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(local) : "memory");
#endif
  return v;
}

// The float4 at shared address `local` summed over the cluster's blocks 0..S-1, in rank order (the
// K-split partials: a fixed order, so the result repeats bit for bit).
__device__ __forceinline__ float4 cluster_sum_f4(uint32_t local, int S) {
  float4 v = ld_cluster_f4(local, 0);
  for (int s = 1; s < S; ++s) {
    const float4 u = ld_cluster_f4(local, static_cast<uint32_t>(s));
    v.x += u.x;
    v.y += u.y;
    v.z += u.z;
    v.w += u.w;
  }
  return v;
}

}  // namespace ss::cuda
