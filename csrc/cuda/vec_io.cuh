// Vector access to operands whose dtype is known only at run time (residual streams, norm
// weights): V consecutive elements as floats in one or two wide loads, with a uniform switch on
// the dtype instead of another template dimension. The caller guarantees alignment: element i
// a multiple of V, the base aligned to V elements of its dtype.
#pragma once
#include "cuda/types.cuh"

namespace ss::cuda {

template <typename S, int V> struct alignas(sizeof(S) * V) Vec {
  S v[V];
};

template <int V> __device__ __forceinline__ void load_vals(const void* base, DType d, int64_t i, float (&out)[V]) {
  switch (d) {
    case DType::BFloat16: {
      const Vec<__nv_bfloat16, V> v = reinterpret_cast<const Vec<__nv_bfloat16, V>*>(base)[i / V];
#pragma unroll
      for (int e = 0; e < V; ++e) out[e] = __bfloat162float(v.v[e]);
      break;
    }
    case DType::Float16: {
      const Vec<__half, V> v = reinterpret_cast<const Vec<__half, V>*>(base)[i / V];
#pragma unroll
      for (int e = 0; e < V; ++e) out[e] = __half2float(v.v[e]);
      break;
    }
    default: {
      const Vec<float, V> v = reinterpret_cast<const Vec<float, V>*>(base)[i / V];
#pragma unroll
      for (int e = 0; e < V; ++e) out[e] = v.v[e];
    }
  }
}

template <int V> __device__ __forceinline__ void store_vals(void* base, DType d, int64_t i, const float (&in)[V]) {
  switch (d) {
    case DType::BFloat16: {
      Vec<__nv_bfloat16, V> v;
#pragma unroll
      for (int e = 0; e < V; ++e) v.v[e] = __float2bfloat16_rn(in[e]);
      reinterpret_cast<Vec<__nv_bfloat16, V>*>(base)[i / V] = v;
      break;
    }
    case DType::Float16: {
      Vec<__half, V> v;
#pragma unroll
      for (int e = 0; e < V; ++e) v.v[e] = __float2half_rn(in[e]);
      reinterpret_cast<Vec<__half, V>*>(base)[i / V] = v;
      break;
    }
    default: {
      Vec<float, V> v;
#pragma unroll
      for (int e = 0; e < V; ++e) v.v[e] = in[e];
      reinterpret_cast<Vec<float, V>*>(base)[i / V] = v;
    }
  }
}

}  // namespace ss::cuda
