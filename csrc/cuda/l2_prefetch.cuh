// Pulling a later kernel's weights into L2 while this one runs (decode steps).
//
// A decode step alternates big matrix-vector products, which stream weights at the DRAM's full
// rate, with short latency-bound kernels (norms, x_proj, the state update) during which DRAM
// sits idle. A kernel given an L2Prefetch (ops/dense.h) asks the memory system, before it waits
// for its producer, to bring those byte ranges into L2 (cp.async.bulk.prefetch: fire and forget,
// no registers, no completion to wait for): the DRAM keeps streaming through the short kernels,
// and the later kernel finds its weights in L2. A hint only: results never depend on it.
#pragma once
#include <cstdint>
#include "ops/dense.h"

namespace ss::cuda {

// Every thread of the grid issues its share of kPiece-byte pieces, dealt round robin over the
// blocks first (piece i goes to block i % gridDim.x), so the requests leave from every SM.
__device__ __forceinline__ void l2_prefetch(const L2Prefetch& pf) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int kPiece = 32 << 10;
  const int all = gridDim.x * blockDim.x;
  int me = threadIdx.x * gridDim.x + blockIdx.x;  // minus the pieces of the ranges before
#pragma unroll  // constant indices: the parameter arrays stay in the constant bank (no stack copy)
  for (int r = 0; r < L2Prefetch::kMax; ++r) {
    if (r >= pf.n) break;
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
#endif
}

}  // namespace ss::cuda
