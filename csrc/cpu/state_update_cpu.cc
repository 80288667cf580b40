// CPU decode step of the selective SSM (both forms): threaded over (batch, head) pairs, the
// per-head quantities computed once, then a vectorisable loop over headdim rows and states.
// Mamba-1 (one row a head, A per state) runs blocks of channels instead: a channel has only
// dstate states, so its dt softplus, dstate decays and gate, one by one, cost more than its
// update; over a block they are vector loops (bench generate, CPU, mamba-130m: the batch-64
// step's updates 165 -> 44 ms).
#include <algorithm>
#include <cmath>
#include <vector>
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
#include "cpu/scan_simd.h"
#include "cpu/vec_math.h"
#include "ops/state_update.h"

namespace ss {
namespace {

template <typename C> inline C softplus(C v) { return v > C(20) ? v : std::log1p(std::exp(v)); }

// y[j] = C · s_j, where s_j = decay_j ∘ s_j + dtx_j · B over n states (8 partial sums).
template <typename C, typename S> inline C update_row(S* s, const C* decay, const C* Bf, const C* Cf, C dtx, int64_t N) {
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
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Mamba-2 (A per head, headdim rows a head).
template <typename T, typename S> void run(const StateUpdateParams& p) {
  using C = cpu::compute_t<T>;
  const int64_t H = p.heads, P = p.headdim, N = p.dstate, G = p.groups;
  // The per-head parameters are in the compute type (the op checks them: float32, float64 with
  // float64 data).
  const C* A = static_cast<const C*>(p.A);
  const C* D = static_cast<const C*>(p.D);
  const C* dt_bias = static_cast<const C*>(p.dt_bias);
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
      if (dt_bias) dt += dt_bias[h];
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
      std::fill(decay.begin(), decay.end(), std::exp(dt * A[h]));  // A (heads): one decay a head
      for (int64_t q = 0; q < P; ++q) {
        const int64_t row = i * P + q;
        S* s = static_cast<S*>(p.state) + ((slot * H + h) * P + q) * N;
        const C x = cpu::ld<C>(static_cast<const T*>(p.x) + b * p.x_stride + h * P + q);
        C y = update_row(s, decay.data(), Bf.data(), Cf.data(), dt * x, N);
        if (D) y += D[p.d_per_row ? h * P + q : h] * x;
        if (p.z) {
          C z = cpu::ld<C>(static_cast<const T*>(p.z) + b * p.z_stride + h * P + q);
          y *= z / (C(1) + std::exp(-z));
        }
        cpu::st(static_cast<T*>(p.y) + row, y);
      }
    }
  });
}

// Mamba-1 (headdim 1, A (dim, dstate)): blocks of kBlock channels of one batch row; dt, the
// gate and the decays exp(dt·A) of a block are computed as arrays (vector exp and softplus),
// then each channel's states are updated as above.
template <typename T, typename S> void run_channels(const StateUpdateParams& p) {
  using C = cpu::compute_t<T>;
  constexpr int64_t kBlock = 64;
  const int64_t H = p.heads, N = p.dstate, HG = p.heads / p.groups, nb = (H + kBlock - 1) / kBlock;
  // The per-channel parameters are in the compute type (as in run).
  const C* A = static_cast<const C*>(p.A);
  const C* D = static_cast<const C*>(p.D);
  const C* dt_bias = static_cast<const C*>(p.dt_bias);
  parallel_for(p.batch * nb, std::max<int64_t>(1, 8192 / (kBlock * N)), [&](int64_t i0, int64_t i1) {
    std::vector<C> Bf(N), Cf(N), decay(kBlock * N);
    C dt[kBlock], gate[kBlock];
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / nb, h0 = (i % nb) * kBlock, hn = std::min(kBlock, H - h0);
      const int64_t slot = p.state_idx ? p.state_idx[b] : b;
      T* y = static_cast<T*>(p.y) + b * H + h0;
      if (slot < 0 || slot >= p.slots) {  // padding (y = 0) or a slot out of range (y = NaN), as on CUDA
        for (int64_t j = 0; j < hn; ++j) cpu::st(y + j, slot < 0 ? C(0) : C(NAN));
        continue;
      }
      const T* x = static_cast<const T*>(p.x) + b * p.x_stride + h0;
      for (int64_t j = 0; j < hn; ++j) {
        dt[j] = cpu::ld<C>(static_cast<const T*>(p.dt) + b * p.dt_stride + h0 + j);
        if (dt_bias) dt[j] += dt_bias[h0 + j];
      }
      if (p.dt_softplus) scan_simd::softplus_row(dt, hn);
      if (p.has_dt_limit)
        for (int64_t j = 0; j < hn; ++j) dt[j] = std::min(std::max(dt[j], C(p.dt_min)), C(p.dt_max));
      if (p.z) {
        for (int64_t j = 0; j < hn; ++j) gate[j] = cpu::ld<C>(static_cast<const T*>(p.z) + b * p.z_stride + h0 + j);
        cpu::silu_inplace(gate, hn);
      }
      for (int64_t j = 0; j < hn; ++j)
        for (int64_t n = 0; n < N; ++n) decay[j * N + n] = dt[j] * A[(h0 + j) * N + n];
      cpu::exp_inplace(decay.data(), hn * N);
      int64_t loaded_g = -1;
      for (int64_t j = 0; j < hn; ++j) {
        const int64_t h = h0 + j, g = h / HG;
        if (g != loaded_g) {  // B and C are shared by the channels of a group: convert once
          loaded_g = g;
          const T* B = static_cast<const T*>(p.B) + b * p.bc_stride + g * N;
          const T* Cv = static_cast<const T*>(p.C) + b * p.bc_stride + g * N;
          for (int64_t n = 0; n < N; ++n) {
            Bf[n] = cpu::ld<C>(B + n);
            Cf[n] = cpu::ld<C>(Cv + n);
          }
        }
        const C xv = cpu::ld<C>(x + j);
        S* s = static_cast<S*>(p.state) + (slot * H + h) * N;
        C v = update_row(s, decay.data() + j * N, Bf.data(), Cf.data(), dt[j] * xv, N);
        if (D) v += D[h] * xv;
        if (p.z) v *= gate[j];
        cpu::st(y + j, v);
      }
    }
  });
}

}  // namespace

void state_update_cpu(const StateUpdateParams& p) {
  cpu::float_switch(p.dtype, [&](auto* t) {
    cpu::float_switch(p.state_dtype, [&](auto* s) {
      using T = std::remove_pointer_t<decltype(t)>;
      using S = std::remove_pointer_t<decltype(s)>;
      if (p.a_per_state)  // Mamba-1 (headdim 1)
        run_channels<T, S>(p);
      else
        run<T, S>(p);
    });
  });
}

}  // namespace ss
