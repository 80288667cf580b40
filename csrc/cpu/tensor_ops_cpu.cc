// CPU kernels for fills and strided, converting copies.
#include <cstring>
#include "core/half.h"
#include "core/philox.h"
#include "core/thread_pool.h"
#include "ops/tensor_ops.h"

namespace ss {
namespace {

template <typename T> inline void store(T* p, double v);
template <> inline void store(float* p, double v) { *p = static_cast<float>(v); }
template <> inline void store(double* p, double v) { *p = v; }
template <> inline void store(int32_t* p, double v) { *p = static_cast<int32_t>(v); }
template <> inline void store(Half* p, double v) { *p = from_f32<Half>(static_cast<float>(v)); }
template <> inline void store(BFloat16* p, double v) { *p = from_f32<BFloat16>(static_cast<float>(v)); }

inline double load(const float* p) { return *p; }
inline double load(const double* p) { return *p; }
inline double load(const int32_t* p) { return *p; }
inline double load(const Half* p) { return to_f32(*p); }
inline double load(const BFloat16* p) { return to_f32(*p); }

// Calls f(T*) with the storage type for dtype d.
template <typename F> void with_type(DType d, F&& f) {
  switch (d) {
    case DType::Float32: f(static_cast<float*>(nullptr)); break;
    case DType::Float16: f(static_cast<Half*>(nullptr)); break;
    case DType::BFloat16: f(static_cast<BFloat16*>(nullptr)); break;
    case DType::Int32: f(static_cast<int32_t*>(nullptr)); break;
    case DType::Float64: f(static_cast<double*>(nullptr)); break;
  }
}

}  // namespace

void fill_cpu(const FillParams& p) {
  with_type(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T* dst = static_cast<T*>(p.dst);
    parallel_for(p.n, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        double v = p.kind == FillKind::Constant ? p.a : p.a + p.b * philox_sample(p.seed, i, static_cast<int>(p.kind));
        store(dst + i, v);
      }
    });
  });
}

void strided_copy_cpu(const StridedCopyParams& p) {
  with_type(p.src_dtype, [&](auto* stag) {
    with_type(p.dst_dtype, [&](auto* dtag) {
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
          for (int64_t i = 0; i < inner; ++i) store(o + i, load(s + i * inner_stride));
        }
      });
    });
  });
}

}  // namespace ss
