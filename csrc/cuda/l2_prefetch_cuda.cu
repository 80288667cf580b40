// l2_prefetch_cuda (ops/dense.h): a decode step's L2 prefetch of a weight as a kernel of its own
// in the step's chain of programmatic launches (cuda/pdl.cuh). It lets the next kernel launch at
// once, requests the range (before or after waiting for its producer) and completes only after
// its producer has, so the chain's order is kept for the kernels after it.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include "cuda/check.cuh"
#include "cuda/l2_prefetch.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "ops/dense.h"

namespace ss {
namespace cuda {
int l2_prefetch_priority() {
  const char* v = std::getenv("STATESPACE_L2PF_POLICY");
  return v && std::strcmp(v, "normal") == 0 ? kL2Normal : kL2EvictFirst;
}
}  // namespace cuda

namespace {

constexpr int kThreads = 32;

// Part `part` of `parts` equal (16-byte) shares of [p, p + bytes), in pieces of up to 8 KB, one per
// thread (`threads` threads of which this is `thread`): pieces spread the requests over the SMs'
// copy engines. p 16-byte aligned, bytes a multiple of 16.
__device__ __forceinline__ void prefetch_share(const char* p, int64_t bytes, int64_t part, int64_t parts, int thread, int threads, int priority) {
  constexpr int64_t kPiece = 8 << 10;
  const int64_t per = ((bytes + parts - 1) / parts + 15) / 16 * 16;
  const int64_t lo = part * per, hi = lo + per < bytes ? lo + per : bytes;
  for (int64_t a = lo + thread * kPiece; a < hi; a += threads * kPiece) cuda::l2_prefetch_bulk(p + a, static_cast<uint32_t>(hi - a < kPiece ? hi - a : kPiece), priority);
}

__global__ void __launch_bounds__(kThreads) l2_prefetch_kernel(const char* p, int64_t bytes, bool after_wait, int priority) {
  cuda::pdl_trigger();
  if (after_wait) cuda::pdl_wait();
  prefetch_share(p, bytes, blockIdx.x, gridDim.x, threadIdx.x, kThreads, priority);
  if (!after_wait) cuda::pdl_wait();  // complete only after the producer: the next kernel waits for this one
}

}  // namespace

void l2_prefetch_cuda(const L2PrefetchParams& p, void* stream) {
  if (p.bytes < 16 || reinterpret_cast<uintptr_t>(p.ptr) % 16 != 0 || cuda::compute_capability() < 90) return;
  const int64_t bytes = p.bytes / 16 * 16;
  // One block per SM, or fewer with at least one 8 KB piece per thread
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(cuda::sm_count(), bytes / (kThreads * (int64_t{8} << 10))));
  cuda::launch_pdl(l2_prefetch_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, static_cast<cudaStream_t>(stream),
                   static_cast<const char*>(p.ptr), bytes, p.after_wait, cuda::l2_prefetch_priority());
  cuda::check_launch("l2Prefetch");
}

}  // namespace ss
