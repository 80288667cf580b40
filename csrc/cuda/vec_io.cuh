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

// Calls f(S{}) with S the storage type of dtype d (bf16, fp16, else f32).
template <typename F> __device__ __forceinline__ void with_storage_type(DType d, F&& f) {
  switch (d) {
    case DType::BFloat16: f(__nv_bfloat16{}); break;
    case DType::Float16: f(__half{}); break;
    default: f(float{});
  }
}

template <int V> __device__ __forceinline__ void load_vals(const void* base, DType d, int64_t i, float (&out)[V]) {
  with_storage_type(d, [&](auto tag) {
    using S = decltype(tag);
    const Vec<S, V> v = reinterpret_cast<const Vec<S, V>*>(base)[i / V];
#pragma unroll
    for (int e = 0; e < V; ++e) out[e] = to_float(v.v[e]);
  });
}

template <int V> __device__ __forceinline__ void store_vals(void* base, DType d, int64_t i, const float (&in)[V]) {
  with_storage_type(d, [&](auto tag) {
    using S = decltype(tag);
    Vec<S, V> v;
#pragma unroll
    for (int e = 0; e < V; ++e) v.v[e] = from_float<S>(in[e]);
    reinterpret_cast<Vec<S, V>*>(base)[i / V] = v;
  });
}

}  // namespace ss::cuda
