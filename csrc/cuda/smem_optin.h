// Dynamic shared memory above the 48 KB default needs a per-kernel opt-in on each device. The
// attribute calls cost a few µs of host time each, which short launches (a prefill layer, a
// decode step) would pay on every call: set_smem_once remembers, per kernel and device, the
// largest size it has set.
#pragma once
#include <cuda_runtime.h>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include "cuda/check.cuh"

namespace ss::cuda {

// A kernel's dynamic shared-memory limit and, with max_shared, the largest shared-memory carveout
// (left to the driver, the L1 share may stay large and fewer blocks fit on an SM than the shared
// memory allows).
template <typename K> void set_smem(K* kernel, size_t bytes, const char* what, bool max_shared = true) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), what);
  if (max_shared)
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, int(cudaSharedmemCarveoutMaxShared)),
          what);
}

// The largest size set for KERNEL on each device (0: none yet).
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
  if (tracked && smem_set_for<KERNEL>(dev).load(std::memory_order_acquire) >= bytes) return;
  set_smem(KERNEL, bytes, what, max_shared);
  if (!tracked) return;
  std::atomic<size_t>& done = smem_set_for<KERNEL>(dev);
  size_t seen = done.load(std::memory_order_relaxed);
  while (seen < bytes && !done.compare_exchange_weak(seen, bytes, std::memory_order_release)) {
  }
}

// One-run A/B (STATESPACE_CARVEOUT=1; "0" or unset: the driver's choice): KERNEL prefers the
// largest shared-memory carveout. An SM runs blocks of one L1 / shared-memory split at a time, so
// a kernel launched early beside its predecessor (programmatic launch) finds room only on SMs
// whose split it can use; with every kernel of a decode step's chain on the largest split they
// can share SMs. Set on a change of the setting only (per kernel and device).
template <auto* KERNEL> void carveout_from_env(const char* what) {
  const char* v = std::getenv("STATESPACE_CARVEOUT");
  const int want = v && v[0] == '1' ? 1 : 2;  // 1: largest, 2: the driver's default
  static std::atomic<int> done[64] = {};     // per device: 0 never set (the default)
  int dev = 0;
  check(cudaGetDevice(&dev), what);
  if (dev < 0 || dev >= 64) return;
  const int cur = done[dev].load(std::memory_order_acquire);
  if (cur == want || (cur == 0 && want == 2)) return;
  check(cudaFuncSetAttribute(KERNEL, cudaFuncAttributePreferredSharedMemoryCarveout,
                             want == 1 ? int(cudaSharedmemCarveoutMaxShared) : int(cudaSharedmemCarveoutDefault)),
        what);
  done[dev].store(want, std::memory_order_release);
}

}  // namespace ss::cuda
