// Pulling a later kernel's weights into L2 while this one runs (decode steps).
//
// A decode step alternates big matrix-vector products, which stream weights at the DRAM's full
// rate, with short latency-bound kernels (x_proj, the state update) during which DRAM sits idle.
// A kernel given an L2Prefetch (ops/dense.h) asks the memory system to bring those byte ranges
// into L2 (cp.async.bulk.prefetch: fire and forget, no registers, no completion to wait for),
// either before it waits for its producer (small tensors the next kernels need at once) or, late,
// as each block finishes its own loads (a big later weight: requested while this kernel's stream
// still runs, it would compete with it and be evicted by it before use). A hint only: results
// never depend on it.
#pragma once
#include <cstdint>
#include "ops/dense.h"

namespace ss::cuda {

// Every thread of the grid issues its share of the kPiece-byte pieces of the ranges whose `late`
// flag equals `late`, dealt round robin over the blocks first (piece i goes to block
// i % gridDim.x), so the requests leave from every SM.
__device__ __forceinline__ void l2_prefetch(const L2Prefetch& pf, bool late) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int kPiece = 32 << 10;
  const int all = gridDim.x * blockDim.x;
  int me = threadIdx.x * gridDim.x + blockIdx.x;  // minus the pieces of the ranges before
#pragma unroll  // constant indices: the parameter arrays stay in the constant bank (no stack copy)
  for (int r = 0; r < L2Prefetch::kMax; ++r) {
    if (r >= pf.n) break;
    if (pf.late[r] != late) continue;
    const int64_t bytes = pf.bytes[r];
    const int pieces = static_cast<int>((bytes + kPiece - 1) / kPiece);
    const char* base = static_cast<const char*>(pf.ptr[r]);
    for (int i = me; i < pieces; i += all) {
      const int64_t off = static_cast<int64_t>(i) * kPiece;
      const uint32_t size = static_cast<uint32_t>(bytes - off < kPiece ? bytes - off : kPiece);
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(__cvta_generic_to_global(base + off)), "r"(size) : "memory");
    }
    me = ((me - pieces) % all + all) % all;
  }
#else
  (void)pf;
  (void)late;
#endif
}

}  // namespace ss::cuda
