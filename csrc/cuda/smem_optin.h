// Dynamic shared memory above the 48 KB default needs a per-kernel opt-in on each device. The
// attribute calls cost a few µs of host time each, which short launches (a prefill layer, a
// decode step) would pay on every call: set_smem_once remembers, per kernel and device, the
// largest size it has set.
#pragma once
#include <cuda_runtime.h>
#include <atomic>
#include <cstddef>
#include "cuda/check.cuh"

namespace ss::cuda {

// A kernel's dynamic shared-memory limit and, with max_shared, the largest shared-memory carveout
// (left to the driver, the L1 share may stay large and fewer blocks fit on an SM than the shared
// memory allows). The carveout also matters below 48 KB: an SM runs blocks of one L1 / shared
// split at a time, so a kernel launched early beside its predecessor (programmatic launch) finds
// room only on SMs whose split it can use. With every kernel of the batched decode chain (conv
// step, x_proj, state update) on the largest split, as cuBLAS's kernels are, they share SMs
// (bench/NOTES.md, b64x8 run 3: -0.04 / -0.12 ms a mamba-2.8b batch-64 step, bf16 / f32 state).
template <typename K> void set_smem(K* kernel, size_t bytes, const char* what, bool max_shared = true) {
  if (bytes > 48 * 1024)  // the default limit needs no opt-in
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), what);
  if (max_shared)
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, int(cudaSharedmemCarveoutMaxShared)),
          what);
}

// 1 + the largest size set for KERNEL on each device (0: none yet; a size of 0 still sets the
// carveout once).
template <auto* KERNEL> std::atomic<size_t>& smem_set_for(int dev) {
  static std::atomic<size_t> done[64] = {};
  return done[dev];
}

// set_smem once per kernel, device and size. Thread-safe: two threads racing on a first call both
// set the attribute (the same value), never a smaller one.
template <auto* KERNEL> void set_smem_once(size_t bytes, const char* what, bool max_shared = true) {
  int dev = 0;
  check(cudaGetDevice(&dev), what);
  const bool tracked = dev >= 0 && dev < 64;
  if (tracked && smem_set_for<KERNEL>(dev).load(std::memory_order_acquire) > bytes) return;
  set_smem(KERNEL, bytes, what, max_shared);
  if (!tracked) return;
  std::atomic<size_t>& done = smem_set_for<KERNEL>(dev);
  size_t seen = done.load(std::memory_order_relaxed);
  while (seen <= bytes && !done.compare_exchange_weak(seen, bytes + 1, std::memory_order_release)) {
  }
}

}  // namespace ss::cuda
