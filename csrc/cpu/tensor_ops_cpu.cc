// CPU kernels for fills and strided, converting copies.
#include <cstring>
#include "core/half.h"
#include "core/philox.h"
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
#include "ops/tensor_ops.h"

namespace ss {

void fill_cpu(const FillParams& p) {
  cpu::any_switch(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T* dst = static_cast<T*>(p.dst);
    parallel_for(p.n, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        double v = p.kind == FillKind::Constant ? p.a : p.a + p.b * philox_sample(p.seed, i, static_cast<int>(p.kind));
        cpu::st(dst + i, v);
      }
    });
  });
}

void strided_copy_cpu(const StridedCopyParams& p) {
  cpu::any_switch(p.src_dtype, [&](auto* stag) {
    cpu::any_switch(p.dst_dtype, [&](auto* dtag) {
      using S = std::remove_pointer_t<decltype(stag)>;
      using D = std::remove_pointer_t<decltype(dtag)>;
      const S* src = static_cast<const S*>(p.src);
      D* dst = static_cast<D*>(p.dst);
      const int64_t inner = p.ndim ? p.shape[p.ndim - 1] : 1;
      const int64_t inner_stride = p.ndim ? p.src_strides[p.ndim - 1] : 1;
      const int64_t rows = inner ? p.n / inner : 0;
      parallel_for(rows, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          int64_t off = 0, rem = r;
          for (int d = p.ndim - 2; d >= 0; --d) {
            off += (rem % p.shape[d]) * p.src_strides[d];
            rem /= p.shape[d];
          }
          const S* s = src + off;
          D* o = dst + r * inner;
          if constexpr (std::is_same_v<S, D>) {
            if (inner_stride == 1) {
              std::memcpy(o, s, sizeof(D) * inner);
              continue;
            }
          }
          for (int64_t i = 0; i < inner; ++i) cpu::st(o + i, cpu::ld<double>(s + i * inner_stride));
        }
      });
    });
  });
}

}  // namespace ss
