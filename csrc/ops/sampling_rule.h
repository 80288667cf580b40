// The pieces of sample_tokens' rule (ops/sampling.h) that the CPU and CUDA backends must compute
// alike: the ranking key of a logit and its fixed-point weight.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include "core/hd.h"

namespace ss::sampling {

// An unsigned key whose order is the order of the float logits (larger key = larger logit).
SS_HD uint32_t key_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof(b));
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The weights' fixed-point unit: exp(0) = 2^40 (exact scaling; a 50k-token row sums below 2^56).
constexpr float kWeightOne = 1099511627776.0f;

// exp((v - max) / T) in 2^-40 fixed point, rounded to nearest (0 for -inf logits); `e` is the
// float32 exp, computed by the caller (the backends' exp differ in their last bits).
SS_HD uint64_t fixed_weight(float e) {
  const float w = e * kWeightOne;  // (<= 2^40: the signed conversion, one instruction on x86, is exact)
  return w >= 0.5f ? static_cast<uint64_t>(static_cast<int64_t>(w + 0.5f)) : 0;
}

// floor(u · M) clamped to [0, M - 1] (M > 0): the weight position the sample lands on.
SS_HD uint64_t landing(float u, uint64_t M) {
  const double r = static_cast<double>(u >= 0.f ? u : 0.f) * static_cast<double>(M);
  const uint64_t ri = r < static_cast<double>(M) ? static_cast<uint64_t>(r) : M - 1;
  return ri < M ? ri : M - 1;
}

// The weight target of top-p: ceil(P · S) (at least 1), computed in double on both backends.
SS_HD uint64_t nucleus_target(float P, uint64_t S) {
  const double t = std::ceil(static_cast<double>(P) * static_cast<double>(S));
  return t < 1.0 ? 1 : (t >= static_cast<double>(S) ? S : static_cast<uint64_t>(t));
}

}  // namespace ss::sampling
