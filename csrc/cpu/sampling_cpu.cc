// CPU argmax over rows (ops/sampling.h).
#include <cmath>
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
#include "ops/sampling.h"

namespace ss {

void argmax_cpu(const ArgmaxParams& p) {
  cpu::float_switch(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    using C = cpu::compute_t<T>;
    parallel_for(p.rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* x = static_cast<const T*>(p.x) + r * p.n;
        int64_t best = 0;
        C bv = cpu::ld<C>(x);
        for (int64_t i = 1; i < p.n && !std::isnan(bv); ++i) {
          const C v = cpu::ld<C>(x + i);
          if (v > bv || std::isnan(v)) {
            bv = v;
            best = i;
          }
        }
        p.out[r] = static_cast<int32_t>(best);
      }
    });
  });
}

}  // namespace ss
