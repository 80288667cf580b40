// Counter-based random numbers (Philox4x32-10): element i of a tensor depends only on
// (seed, i), so the CPU and CUDA backends produce the same values for the same seed.
#pragma once
#include <cmath>
#include <cstdint>
#include "core/hd.h"

namespace ss {

SS_HD void philox4x32(uint32_t ctr[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * ctr[0];
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * ctr[2];
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    uint32_t n0 = hi1 ^ ctr[1] ^ k0, n2 = hi0 ^ ctr[3] ^ k1;
    ctr[0] = n0; ctr[1] = lo1; ctr[2] = n2; ctr[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// Uniform in [0, 1) (kind 0) or standard normal by Box-Muller (kind 1), in double so both
// backends round to the same float.
SS_HD double philox_sample(uint64_t seed, uint64_t index, int kind) {
  uint32_t c[4] = {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0x5EEDu, 0};
  philox4x32(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  double u1 = (static_cast<double>(c[0]) + static_cast<double>(c[1] >> 11) * (1.0 / 2097152.0)) * (1.0 / 4294967296.0);
  if (kind == 0) return u1;
  double u2 = static_cast<double>(c[2]) * (1.0 / 4294967296.0);
  double r = sqrt(-2.0 * log(1.0 - u1));  // 1 - u1 in (0, 1]
  return r * cos(6.283185307179586 * u2);
}

}  // namespace ss
