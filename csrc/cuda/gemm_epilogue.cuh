// The last step of the split-K GEMMs of batched decode: four consecutive outputs of one token,
// plus the bias, rounded once to the output type, stored 8 bytes at a time where the row allows.
#pragma once
#include <cstdint>
#include <cstring>
#include "cuda/load_any.cuh"
#include "ops/dense.h"

namespace ss::cuda {

// out[tok][n .. n+3] = v + bias[n .. n+3] (outputs past N skipped); vec: N % 4 == 0 and out 8-byte
// aligned (n a multiple of 4).
template <typename T>
__device__ __forceinline__ void store_out4(const GemmParams& p, int64_t tok, int64_t n, const float4& v, bool vec) {
  const float vals[4] = {v.x, v.y, v.z, v.w};
  T o[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) o[e] = from_float<T>(vals[e] + (p.bias && n + e < p.N ? load_any(p.bias, p.bias_dtype, n + e) : 0.f));
  T* dst = static_cast<T*>(p.out) + tok * p.N + n;
  if (vec && n + 4 <= p.N) {
    uint2 w2;
    memcpy(&w2, o, 8);
    *reinterpret_cast<uint2*>(dst) = w2;
  } else {
    for (int e = 0; e < 4 && n + e < p.N; ++e) dst[e] = o[e];
  }
}

}  // namespace ss::cuda
