// CPU decode step of the selective SSM (both forms): threaded over (batch, head) pairs, the
// per-head scalars computed once, then a plain loop over headdim rows and dstate states.
#include <cmath>
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
#include "ops/state_update.h"

namespace ss {
namespace {

template <typename C> inline C softplus(C v) { return v > C(20) ? v : std::log1p(std::exp(v)); }

template <typename T, typename S> void run(const StateUpdateParams& p) {
  using C = cpu::compute_t<T>;
  const int64_t H = p.heads, P = p.headdim, N = p.dstate, G = p.groups;
  parallel_for(p.batch * H, std::max<int64_t>(1, 8192 / (P * N + 1)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H, g = h / (H / G);
      C dt = cpu::ld<C>(static_cast<const T*>(p.dt) + i);
      if (p.dt_bias) dt += cpu::ld_any<C>(p.dt_bias, p.param_dtype, h);
      if (p.dt_softplus) dt = softplus(dt);
      const T* B = static_cast<const T*>(p.B) + (b * G + g) * N;
      const T* Cv = static_cast<const T*>(p.C) + (b * G + g) * N;
      const C dA_head = p.a_per_state ? C(0) : std::exp(dt * cpu::ld_any<C>(p.A, p.param_dtype, h));
      for (int64_t q = 0; q < P; ++q) {
        const int64_t row = i * P + q;
        S* s = static_cast<S*>(p.state) + row * N;
        const C x = cpu::ld<C>(static_cast<const T*>(p.x) + row);
        C y = 0;
        for (int64_t n = 0; n < N; ++n) {
          C dA = p.a_per_state ? std::exp(dt * cpu::ld_any<C>(p.A, p.param_dtype, h * N + n)) : dA_head;
          C v = cpu::ld<C>(s + n) * dA + dt * cpu::ld<C>(B + n) * x;
          cpu::st(s + n, v);
          y += v * cpu::ld<C>(Cv + n);
        }
        if (p.D) y += cpu::ld_any<C>(p.D, p.param_dtype, p.d_per_row ? h * P + q : h) * x;
        if (p.z) {
          C z = cpu::ld<C>(static_cast<const T*>(p.z) + row);
          y *= z / (C(1) + std::exp(-z));
        }
        cpu::st(static_cast<T*>(p.y) + row, y);
      }
    }
  });
}

}  // namespace

void state_update_cpu(const StateUpdateParams& p) {
  cpu::float_switch(p.dtype, [&](auto* t) {
    cpu::float_switch(p.state_dtype, [&](auto* s) {
      run<std::remove_pointer_t<decltype(t)>, std::remove_pointer_t<decltype(s)>>(p);
    });
  });
}

}  // namespace ss
