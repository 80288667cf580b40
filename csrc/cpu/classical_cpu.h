// Helpers for the classical toolkit's CPU kernels: the float32/float64 switch and conversion
// of whole arrays to and from float64 (the small dense algorithms compute in float64).
#pragma once
#include <complex>
#include <cstdint>
#include <vector>
#include "core/dtype.h"

namespace ss::classical {

// Calls f(T{}) with T = float or double for dtype d.
template <typename F>
void float_switch(DType d, F&& f) {
  if (d == DType::Float64) f(double{});
  else f(float{});
}

// Σ a_i b_i with eight independent partial sums, so the compiler can vectorise the
// reduction without -ffast-math (strict IEEE order would serialise it).
template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  T s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Address of element i of an array of dtype d.
inline const void* at(const void* p, DType d, int64_t i) { return static_cast<const char*>(p) + i * static_cast<int64_t>(dtype_size(d)); }
inline void* at(void* p, DType d, int64_t i) { return static_cast<char*>(p) + i * static_cast<int64_t>(dtype_size(d)); }

inline std::vector<double> load(const void* p, DType d, int64_t n) {
  std::vector<double> v(n);
  if (d == DType::Float64) {
    const double* s = static_cast<const double*>(p);
    for (int64_t i = 0; i < n; ++i) v[i] = s[i];
  } else {
    const float* s = static_cast<const float*>(p);
    for (int64_t i = 0; i < n; ++i) v[i] = s[i];
  }
  return v;
}

inline std::vector<std::complex<double>> load_complex(const void* p, DType d, int64_t n) {
  std::vector<double> v = load(p, d, 2 * n);
  std::vector<std::complex<double>> c(n);
  for (int64_t i = 0; i < n; ++i) c[i] = {v[2 * i], v[2 * i + 1]};
  return c;
}

inline void store(void* p, DType d, const double* src, int64_t n) {
  if (d == DType::Float64) {
    double* o = static_cast<double*>(p);
    for (int64_t i = 0; i < n; ++i) o[i] = src[i];
  } else {
    float* o = static_cast<float*>(p);
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(src[i]);
  }
}

inline void store_complex(void* p, DType d, const std::complex<double>* src, int64_t n) {
  store(p, d, reinterpret_cast<const double*>(src), 2 * n);
}

}  // namespace ss::classical
