// CUDA argmax over rows (ops/sampling.h): one block per row. Each thread scans its share of the
// row in 16-byte vectors, four loads in flight (in increasing index order, so it keeps the first
// of equal values), then
// (value, index) pairs meet by shuffles and shared memory; ties go to the lower index and NaN
// beats every number, so the result is the first maximum whatever the reduction order.
#include <cmath>
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "ops/sampling.h"

namespace ss {
namespace {

using cuda::to_float;

constexpr int kThreads = 512;

struct Best {
  float v;
  int i;
};

// Whether b comes before a in the order "NaN first, then larger, then lower index".
__device__ __forceinline__ bool before(const Best& b, const Best& a) {
  if (isnan(a.v)) return isnan(b.v) && b.i < a.i;
  if (isnan(b.v)) return true;
  return b.v > a.v || (b.v == a.v && b.i < a.i);
}

__device__ __forceinline__ void take(Best& a, float v, int i) {
  if (before(Best{v, i}, a)) a = Best{v, i};
}

template <typename T, int V> struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <typename T, int V> __global__ void __launch_bounds__(kThreads) argmax_kernel(ArgmaxParams p) {
  __shared__ Best part[kThreads / 32];
  cuda::pdl_wait();
  cuda::pdl_trigger();
  const T* x = static_cast<const T*>(p.x) + static_cast<int64_t>(blockIdx.x) * p.n;
  const int n = static_cast<int>(p.n);
  Best b{-INFINITY, n};
  const int nv = n / V;
  // kLoads vectors per thread in flight at once (one row of a decode step is ~100 KB, read by a
  // single block: one vector per round trip would make a dozen dependent round trips)
  constexpr int kLoads = 4;
  for (int j0 = threadIdx.x; j0 < nv; j0 += kLoads * kThreads) {
    Vec<T, V> v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int j = j0 + u * kThreads;
      if (j < nv) v[u] = *reinterpret_cast<const Vec<T, V>*>(x + static_cast<int64_t>(j) * V);
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int j = j0 + u * kThreads;
      if (j < nv) {
#pragma unroll
        for (int e = 0; e < V; ++e) take(b, to_float(v[u].v[e]), j * V + e);
      }
    }
  }
  for (int i = nv * V + threadIdx.x; i < n; i += kThreads) take(b, to_float(x[i]), i);
  for (int o = 16; o > 0; o >>= 1) {
    const Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    if (before(other, b)) b = other;
  }
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = b;
  __syncthreads();
  if (threadIdx.x == 0) {
    Best r = part[0];
    for (int w = 1; w < kThreads / 32; ++w)
      if (before(part[w], r)) r = part[w];
    p.out[blockIdx.x] = r.i < n ? r.i : 0;  // (an all -inf row keeps index 0)
  }
}

}  // namespace

void argmax_cuda(const ArgmaxParams& p, void* stream) {
  if (p.rows > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "argmax: too many rows for one launch");
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    constexpr int V = 16 / sizeof(T);
    const bool vec = p.n % V == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0;
    auto kernel = vec ? argmax_kernel<T, V> : argmax_kernel<T, 1>;
    cuda::launch_pdl(kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kThreads), 0, st, p);
  });
  cuda::check_launch("argmax");
}

}  // namespace ss
