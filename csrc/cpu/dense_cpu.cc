// CPU kernels of the dense ops other than the GEMM: embedding, (gated) RMSNorm, elementwise.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
#include "cpu/vec_math.h"
#include "ops/dense.h"

namespace ss {

void embedding_cpu(const EmbeddingParams& p) {
  for (int64_t i = 0; i < p.n; ++i)
    if (p.ids[i] < 0 || p.ids[i] >= p.vocab)
      fail("ERR_INVALID_ARG", ErrorKind::Range, "ids: id " + std::to_string(p.ids[i]) + " at position " + std::to_string(i) +
                                                    " is outside the vocabulary [0, " + std::to_string(p.vocab) + ")");
  const size_t row = p.d * dtype_size(p.dtype);
  parallel_for(p.n, std::max<int64_t>(1, 65536 / (row + 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      std::memcpy(static_cast<char*>(p.out) + i * row, static_cast<const char*>(p.weight) + p.ids[i] * row, row);
  });
}

namespace {

template <typename C> inline C softplus(C v) { return v > C(20) ? v : std::log1p(std::exp(v)); }

template <typename T> void rms_norm_rows(const RmsNormParams& p) {
  using C = cpu::compute_t<T>;
  parallel_for(p.rows, std::max<int64_t>(1, 16384 / (p.dim + 1)), [&](int64_t r0, int64_t r1) {
    std::vector<C> r(p.dim), zs(p.z ? p.dim : 0);
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t off = row * p.dim;
      const T* x = static_cast<const T*>(p.x) + off;
      for (int64_t i = 0; i < p.dim; ++i) {
        C v = cpu::ld<C>(x + i);
        if (p.residual) {
          v += cpu::ld_any<C>(p.residual, p.residual_dtype, off + i);
          cpu::st_any<C>(p.residual_out, p.residual_dtype, off + i, v);
        }
        r[i] = v;
      }
      if (p.z) {  // r *= silu(z), with the vectorised SiLU
        for (int64_t i = 0; i < p.dim; ++i) zs[i] = cpu::ld<C>(static_cast<const T*>(p.z) + row * p.z_stride + i);
        cpu::silu_inplace(zs.data(), p.dim);
        for (int64_t i = 0; i < p.dim; ++i) r[i] *= zs[i];
      }
      T* y = static_cast<T*>(p.y) + off;
      for (int64_t g0 = 0; g0 < p.dim; g0 += p.group) {
        C ss = 0;
        for (int64_t i = g0; i < g0 + p.group; ++i) ss += r[i] * r[i];
        C scale = C(1) / std::sqrt(ss / C(p.group) + C(p.eps));
        for (int64_t i = g0; i < g0 + p.group; ++i)
          cpu::st(y + i, r[i] * scale * cpu::ld_any<C>(p.weight, p.weight_dtype, i));
      }
    }
  });
}

template <typename T> void eltwise_typed(const EltwiseParams& p) {
  using C = cpu::compute_t<T>;
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  T* o = static_cast<T*>(p.out);
  parallel_for(p.n, 1 << 15, [&](int64_t i0, int64_t i1) {
    switch (p.op) {
      case EltwiseOp::Silu: {
        // In blocks through a compute-type buffer, for the vectorised SiLU.
        C buf[1024];
        for (int64_t j0 = i0; j0 < i1; j0 += 1024) {
          const int64_t n = std::min<int64_t>(1024, i1 - j0);
          for (int64_t j = 0; j < n; ++j) buf[j] = cpu::ld<C>(a + j0 + j);
          cpu::silu_inplace(buf, n);
          for (int64_t j = 0; j < n; ++j) cpu::st(o + j0 + j, buf[j]);
        }
        break;
      }
      case EltwiseOp::Softplus: for (int64_t i = i0; i < i1; ++i) cpu::st(o + i, softplus(cpu::ld<C>(a + i))); break;
      case EltwiseOp::Add: for (int64_t i = i0; i < i1; ++i) cpu::st(o + i, cpu::ld<C>(a + i) + cpu::ld<C>(b + i)); break;
      case EltwiseOp::Mul: for (int64_t i = i0; i < i1; ++i) cpu::st(o + i, cpu::ld<C>(a + i) * cpu::ld<C>(b + i)); break;
    }
  });
}

}  // namespace

void rms_norm_cpu(const RmsNormParams& p) {
  cpu::float_switch(p.dtype, [&](auto* t) { rms_norm_rows<std::remove_pointer_t<decltype(t)>>(p); });
}

void eltwise_cpu(const EltwiseParams& p) {
  cpu::float_switch(p.dtype, [&](auto* t) { eltwise_typed<std::remove_pointer_t<decltype(t)>>(p); });
}

}  // namespace ss
