// Typed element access for CPU kernels: a dtype switch over the floating storage types and
// loads/stores that convert through the compute type (float, or double for float64 data).
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>
#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"

namespace ss::cpu {

// Calls f(T*) (a null pointer used as a type tag) with T the storage type of a floating dtype.
template <typename F> void float_switch(DType d, F&& f) {
  switch (d) {
    case DType::Float32: f(static_cast<float*>(nullptr)); break;
    case DType::Float16: f(static_cast<Half*>(nullptr)); break;
    case DType::BFloat16: f(static_cast<BFloat16*>(nullptr)); break;
    case DType::Float64: f(static_cast<double*>(nullptr)); break;
    default: fail("ERR_DTYPE", ErrorKind::Type, std::string("unsupported dtype ") + dtype_name(d));
  }
}

// Same, also allowing int32 (T = int32_t).
template <typename F> void any_switch(DType d, F&& f) {
  if (d == DType::Int32) {
    f(static_cast<int32_t*>(nullptr));
  } else {
    float_switch(d, std::forward<F>(f));
  }
}

// The arithmetic type for storage type T: double for double, float otherwise.
template <typename T> using compute_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename C> inline C ld(const float* p) { return static_cast<C>(*p); }
template <typename C> inline C ld(const double* p) { return static_cast<C>(*p); }
template <typename C> inline C ld(const Half* p) { return static_cast<C>(to_f32(*p)); }
template <typename C> inline C ld(const BFloat16* p) { return static_cast<C>(to_f32(*p)); }
template <typename C> inline C ld(const int32_t* p) { return static_cast<C>(*p); }

template <typename C> inline void st(float* p, C v) { *p = static_cast<float>(v); }
template <typename C> inline void st(double* p, C v) { *p = static_cast<double>(v); }
template <typename C> inline void st(Half* p, C v) { *p = from_f32<Half>(static_cast<float>(v)); }
template <typename C> inline void st(BFloat16* p, C v) { *p = from_f32<BFloat16>(static_cast<float>(v)); }
template <typename C> inline void st(int32_t* p, C v) { *p = static_cast<int32_t>(v); }

// Element i of a buffer whose dtype is only known at run time (small side operands: weights,
// biases, per-channel parameters), converted to C.
template <typename C> inline C ld_any(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::Float32: return static_cast<C>(static_cast<const float*>(p)[i]);
    case DType::Float64: return static_cast<C>(static_cast<const double*>(p)[i]);
    case DType::Float16: return static_cast<C>(to_f32(static_cast<const Half*>(p)[i]));
    case DType::BFloat16: return static_cast<C>(to_f32(static_cast<const BFloat16*>(p)[i]));
    default: return C(0);
  }
}
template <typename C> inline void st_any(void* p, DType t, int64_t i, C v) {
  switch (t) {
    case DType::Float32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::Float64: static_cast<double*>(p)[i] = static_cast<double>(v); break;
    case DType::Float16: static_cast<Half*>(p)[i] = from_f32<Half>(static_cast<float>(v)); break;
    case DType::BFloat16: static_cast<BFloat16*>(p)[i] = from_f32<BFloat16>(static_cast<float>(v)); break;
    default: break;
  }
}

}  // namespace ss::cpu
