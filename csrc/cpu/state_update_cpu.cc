// CPU decode step of the selective SSM (both forms): threaded over (batch, head) pairs, the
// per-head quantities computed once, then a vectorisable loop over headdim rows and states.
#include <algorithm>
#include <cmath>
#include <vector>
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
#include "cpu/vec_math.h"
#include "ops/state_update.h"

namespace ss {
namespace {

template <typename C> inline C softplus(C v) { return v > C(20) ? v : std::log1p(std::exp(v)); }

template <typename T, typename S> void run(const StateUpdateParams& p) {
  using C = cpu::compute_t<T>;
  const int64_t H = p.heads, P = p.headdim, N = p.dstate, G = p.groups;
  parallel_for(p.batch * H, std::max<int64_t>(1, 8192 / (P * N + 1)), [&](int64_t i0, int64_t i1) {
    // Per head: B, C and the decay exp(dt'·A) as compute-type arrays, so the loop over the
    // states is plain arithmetic that vectorises (8 partial sums for Σ s·C).
    std::vector<C> Bf(N), Cf(N), decay(N);
    int64_t loaded_bg = -1;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H, g = h / (H / G);
      const int64_t slot = p.state_idx ? p.state_idx[b] : b;
      if (slot < 0 || slot >= p.slots) {  // padding (y = 0) or a slot out of range (y = NaN), as on CUDA
        for (int64_t q = 0; q < P; ++q) cpu::st(static_cast<T*>(p.y) + i * P + q, slot < 0 ? C(0) : C(NAN));
        continue;
      }
      C dt = cpu::ld<C>(static_cast<const T*>(p.dt) + b * p.dt_stride + h);
      if (p.dt_bias) dt += cpu::ld_any<C>(p.dt_bias, p.param_dtype, h);
      if (p.dt_softplus) dt = softplus(dt);
      if (p.has_dt_limit) dt = std::min(std::max(dt, C(p.dt_min)), C(p.dt_max));
      if (b * G + g != loaded_bg) {  // B and C are shared by the heads of a group: convert once
        loaded_bg = b * G + g;
        const T* B = static_cast<const T*>(p.B) + b * p.bc_stride + g * N;
        const T* Cv = static_cast<const T*>(p.C) + b * p.bc_stride + g * N;
        for (int64_t n = 0; n < N; ++n) {
          Bf[n] = cpu::ld<C>(B + n);
          Cf[n] = cpu::ld<C>(Cv + n);
        }
      }
      if (p.a_per_state) {
        for (int64_t n = 0; n < N; ++n) decay[n] = dt * cpu::ld_any<C>(p.A, p.param_dtype, h * N + n);
        cpu::exp_inplace(decay.data(), N);
      } else {
        std::fill(decay.begin(), decay.end(), std::exp(dt * cpu::ld_any<C>(p.A, p.param_dtype, h)));
      }
      for (int64_t q = 0; q < P; ++q) {
        const int64_t row = i * P + q;
        S* s = static_cast<S*>(p.state) + ((slot * H + h) * P + q) * N;
        const C x = cpu::ld<C>(static_cast<const T*>(p.x) + b * p.x_stride + h * P + q);
        const C dtx = dt * x;
        C acc[8] = {};
        int64_t n = 0;
        for (; n + 8 <= N; n += 8) {
          for (int j = 0; j < 8; ++j) {
            C v = cpu::ld<C>(s + n + j) * decay[n + j] + dtx * Bf[n + j];
            cpu::st(s + n + j, v);
            acc[j] += v * Cf[n + j];
          }
        }
        for (; n < N; ++n) {
          C v = cpu::ld<C>(s + n) * decay[n] + dtx * Bf[n];
          cpu::st(s + n, v);
          acc[0] += v * Cf[n];
        }
        C y = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        if (p.D) y += cpu::ld_any<C>(p.D, p.param_dtype, p.d_per_row ? h * P + q : h) * x;
        if (p.z) {
          C z = cpu::ld<C>(static_cast<const T*>(p.z) + b * p.z_stride + h * P + q);
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
