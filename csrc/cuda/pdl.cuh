// Programmatic dependent launch (Hopper, sm_90+) for the kernels of a decode step.
//
// A decode step is a chain of short kernels, each waiting for the one before: without help the
// GPU idles between them for the launch latency (~1-2 us) and each kernel's ramp-up. A kernel
// launched with launch_pdl may start while its predecessor is still running (once every block of
// the predecessor has started or called pdl_trigger); it must call pdl_wait() before it reads
// anything a predecessor wrote and before it writes anything (pdl_wait returns once the
// predecessors have completed and their writes are visible). Work that reads only parameters,
// e.g. a matrix-vector product's first weight loads, can go before the wait and so overlaps the
// predecessor's tail. Stream capture records these launches as programmatic graph edges.
//
// On other GPUs, or with STATESPACE_PDL=0, launch_pdl is an ordinary launch and both device
// calls are no-ops.
#pragma once
#include <cuda_runtime.h>
#include <utility>

namespace ss::cuda {

// True when the current device supports programmatic launches and STATESPACE_PDL is not "0".
bool pdl_enabled();

// launch_pdl in thread-block clusters of `cluster` blocks (1: no cluster attribute; a driver that
// refuses PDL together with clusters gets a plain clustered launch). Returns the launch's error.
template <typename... KArgs, typename... Args>
cudaError_t launch_clustered(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, dim3 cluster,
                             Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  int n = 0;
  const bool clustered = cluster.x * cluster.y * cluster.z > 1;
  if (clustered) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = cluster.x;
    attr[n].val.clusterDim.y = cluster.y;
    attr[n].val.clusterDim.z = cluster.z;
    ++n;
  }
  if (pdl_enabled()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, args...);
  if (e != cudaSuccess && clustered && n > 1) {
    cudaGetLastError();
    cfg.numAttrs = 1;
    e = cudaLaunchKernelEx(&cfg, kernel, args...);
  }
  return e;
}

template <typename... KArgs, typename... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  launch_clustered(kernel, grid, block, smem, stream, dim3(1), std::forward<Args>(args)...);
}

// Blocks until the kernels this one depends on have completed and their writes are visible.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel of the stream launch (its blocks start once every block of this kernel
// has called this or exited, so they never take this kernel's place on the SMs).
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

}  // namespace ss::cuda
