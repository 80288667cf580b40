// Thread-block clusters (Hopper, sm_90+): the blocks of a cluster run at once on one GPC and can
// read, write and update each other's shared memory (distributed shared memory). Compiled for an
// older GPU these helpers act on the block alone; the host launches clusters of one block there.
#pragma once
#include <cuda_runtime.h>
#include <atomic>
#include "cuda/check.cuh"
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#include <cooperative_groups.h>
#endif

namespace ss::cuda {

// Every thread of every block of the cluster arrives; writes before it (shared, distributed
// shared and global) are visible to the cluster's threads after it.
__device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#else
  __syncthreads();
#endif
}

__device__ __forceinline__ unsigned cluster_rank() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return cooperative_groups::this_cluster().block_rank();
#else
  return 0;
#endif
}

__device__ __forceinline__ unsigned cluster_blocks() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return cooperative_groups::this_cluster().num_blocks();
#else
  return 1;
#endif
}

// The same shared-memory object `p` in the block of cluster rank `rank` (a generic pointer: plain
// loads, stores and atomics reach it).
template <typename T> __device__ __forceinline__ T* cluster_map(T* p, unsigned rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return cooperative_groups::this_cluster().map_shared_rank(p, rank);
#else
  (void)rank;
  return p;
#endif
}

// How many clusters of 16 blocks of KERNEL the current device runs at once (0: none, or the
// non-portable size refused), with `threads` threads and `smem` bytes of dynamic shared memory a
// block (set the kernel's shared-memory opt-in first above 48 KB); opts KERNEL into clusters of
// 16. Asked once per kernel and device (the answer does not change).
template <auto* KERNEL> int clusters_of_16(unsigned threads, size_t smem, const char* what) {
  static std::atomic<int> known[64] = {};  // per device: 0 not asked, else 1 + the answer
  int dev = 0;
  check(cudaGetDevice(&dev), what);
  const bool tracked = dev >= 0 && dev < 64;
  if (tracked && known[dev].load(std::memory_order_acquire) != 0) return known[dev].load(std::memory_order_relaxed) - 1;
  int clusters = 0;
  if (cudaFuncSetAttribute(KERNEL, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(16);
    cfg.blockDim = dim3(threads);
    cfg.dynamicSmemBytes = smem;
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = 16;
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    if (cudaOccupancyMaxActiveClusters(&clusters, KERNEL, &cfg) != cudaSuccess) clusters = 0;
  }
  cudaGetLastError();  // a refusal above is an answer, not an error of a later launch
  if (tracked) known[dev].store(1 + clusters, std::memory_order_release);
  return clusters;
}

}  // namespace ss::cuda
