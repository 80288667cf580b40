// float16 / bfloat16 storage types and conversions (round to nearest even; NaN and ±Inf survive).
// Plain bit manipulation so the same code runs on the host and in CUDA kernels.
#pragma once
#include <cstdint>
#include <cstring>
#include "core/hd.h"

namespace ss {

struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

SS_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u; std::memcpy(&u, &f, 4); return u;
#endif
}
SS_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f; std::memcpy(&f, &u, 4); return f;
#endif
}

SS_HD uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}
SS_HD float bf16_bits_to_f32(uint16_t b) { return bits_f32(static_cast<uint32_t>(b) << 16); }

SS_HD uint16_t f32_to_f16_bits(float f) {
  uint32_t u = f32_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to Inf (or is Inf)
  if (a < 0x38800000u) {
    // subnormal half (or zero), rounded to nearest even by hand
    if (a < 0x33000001u) return static_cast<uint16_t>(sign);  // below half the smallest subnormal
    uint32_t exp = a >> 23;
    uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;  // 14..24: value / 2^-24 = mant >> shift
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    uint32_t r = mant >> shift;
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = a - 0x38000000u;  // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
}

SS_HD float f16_bits_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return bits_f32(sign);
    // subnormal: value = mant * 2^-24
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

// Generic load/store so kernels can be written once over the storage type.
SS_HD float to_f32(float v) { return v; }
SS_HD float to_f32(Half v) { return f16_bits_to_f32(v.bits); }
SS_HD float to_f32(BFloat16 v) { return bf16_bits_to_f32(v.bits); }
SS_HD double to_f64(double v) { return v; }

template <typename T> SS_HD T from_f32(float v);
template <> SS_HD float from_f32<float>(float v) { return v; }
template <> SS_HD Half from_f32<Half>(float v) { return Half{f32_to_f16_bits(v)}; }
template <> SS_HD BFloat16 from_f32<BFloat16>(float v) { return BFloat16{f32_to_bf16_bits(v)}; }

}  // namespace ss
