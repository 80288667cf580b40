// S4D and S4 kernels, computed in float64 whatever the storage dtype (long kernels raise
// λ̄ to powers in the thousands), one channel per task.
#include <cmath>
#include "core/thread_pool.h"
#include "cpu/classical_cpu.h"
#include "cpu/classical_fft.h"
#include "cpu/classical_linalg.h"
#include "ops/classical_s4.h"

namespace ss::classical {
namespace {

struct Channel {
  std::vector<cd> lambda, P, B, C;
  double dt;
};

Channel channel(const S4KernelParams& p, int64_t h) {
  auto get = [&](const void* src, int64_t stride) {
    return src ? load_complex(at(src, p.dtype, 2 * h * stride), p.dtype, p.n) : std::vector<cd>(p.n, cd(1.0));
  };
  Channel c;
  c.lambda = get(p.lambda, p.lambda_stride);
  c.C = get(p.C, p.C_stride);
  c.B = get(p.B, p.B_stride);
  if (p.dplr) c.P = get(p.P, p.P_stride);
  c.dt = p.dt ? load(at(p.dt, p.dtype, h), p.dtype, 1)[0] : p.dt_value;
  return c;
}

// K_l = Σ_n C_n B̄_n λ̄_n^l. Powers advance by one multiplication per step and restart from
// exp(l·log λ̄) every 64 steps, so the error does not grow with l.
void s4d_channel(const S4KernelParams& p, const Channel& ch, double* K) {
  constexpr int64_t kBlock = 64;
  std::fill(K, K + p.L, 0.0);
  for (int64_t i = 0; i < p.n; ++i) {
    const cd a = ch.lambda[i] * ch.dt;
    cd z, logz, f;
    if (p.method == Method::Zoh) {
      z = std::exp(a);
      logz = a;
      f = std::abs(a) == 0.0 ? cd(ch.dt) : cdiv(expm1c(a), ch.lambda[i]);
    } else {
      const cd den = 1.0 - a / 2.0;
      z = cdiv(1.0 + a / 2.0, den);
      logz = std::log(z);
      f = cdiv(cd(ch.dt), den);
    }
    const cd coef = cmul(cmul(ch.C[i], ch.B[i]), f);
    for (int64_t l0 = 0; l0 < p.L; l0 += kBlock) {
      // (l0 = 0 separately: λ̄ = 0 has log λ̄ = −∞ and 0·∞ would be NaN)
      cd w = l0 == 0 ? coef : cmul(coef, std::exp(logz * static_cast<double>(l0)));
      const int64_t l1 = std::min(p.L, l0 + kBlock);
      for (int64_t l = l0; l < l1; ++l) {
        K[l] += w.real();
        w = cmul(w, z);
      }
    }
  }
}

// K̂(ω) = Σ_{l<L} C Ā^l B̄ ω^l = C̃ (I − ω Ā)^{-1} B̄ at ω^L = 1, with C̃ = C (I − Ā^L).
// For the bilinear Ā, B̄ this is 2 C̃ M^{-1} B with M = diag(d) + (1+ω) P Pᴴ,
// d_n = (2/dt)(1−ω) − (1+ω) λ_n (no pole at ω = −1 in this form), inverted by Woodbury.
void s4_channel(const S4KernelParams& p, const Channel& ch, double* K) {
  const int64_t n = p.n, L = p.L;
  const double dt = ch.dt, hdt = dt / 2;
  const std::vector<cd>& lam = ch.lambda;
  const std::vector<cd>& P = ch.P;
  // C̃: L steps of the row recurrence c <- c Ā = [c (I + dt/2·A)] (I − dt/2·A)^{-1}, each O(n):
  // I − dt/2·A = diag(1 − dt/2·λ) + dt/2·P Pᴴ is inverted by Woodbury.
  std::vector<cd> dinv(n), c(ch.C), v(n);
  cd den = 1.0;
  for (int64_t i = 0; i < n; ++i) {
    dinv[i] = cdiv(cd(1.0), 1.0 - hdt * lam[i]);
    den += hdt * cmul(cmul(std::conj(P[i]), P[i]), dinv[i]);
  }
  for (int64_t l = 0; l < L; ++l) {
    cd cp = 0.0;
    for (int64_t i = 0; i < n; ++i) cp += cmul(c[i], P[i]);
    cd s = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      v[i] = cmul(c[i] + hdt * (cmul(c[i], lam[i]) - cmul(cp, std::conj(P[i]))), dinv[i]);
      s += cmul(v[i], P[i]);
    }
    const cd g = hdt * cdiv(s, den);
    for (int64_t i = 0; i < n; ++i) c[i] = v[i] - cmul(g, cmul(std::conj(P[i]), dinv[i]));
  }
  std::vector<cd> cb(n), cpv(n), pb(n), pp(n);
  for (int64_t i = 0; i < n; ++i) {
    const cd ct = ch.C[i] - c[i];
    cb[i] = cmul(ct, ch.B[i]);
    cpv[i] = cmul(ct, P[i]);
    pb[i] = cmul(std::conj(P[i]), ch.B[i]);
    pp[i] = cmul(std::conj(P[i]), P[i]);
  }
  std::vector<cd> Khat(L), k(L);
  for (int64_t j = 0; j < L; ++j) {
    const double ang = -2.0 * M_PI * static_cast<double>(j) / static_cast<double>(L);
    const cd w(std::cos(ang), std::sin(ang));
    const cd a = (2.0 / dt) * (1.0 - w), b = 1.0 + w;
    cd k00 = 0.0, k01 = 0.0, k10 = 0.0, k11 = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const cd r = cdiv(cd(1.0), a - cmul(b, lam[i]));
      k00 += cmul(cb[i], r);
      k01 += cmul(cpv[i], r);
      k10 += cmul(pb[i], r);
      k11 += cmul(pp[i], r);
    }
    Khat[j] = 2.0 * (k00 - cdiv(cmul(b, cmul(k01, k10)), 1.0 + cmul(b, k11)));
  }
  dft_any(L, Khat.data(), k.data(), true);
  for (int64_t l = 0; l < L; ++l) K[l] = k[l].real() / static_cast<double>(L);
}

}  // namespace

void s4_kernel_cpu(const S4KernelParams& p) {
  parallel_for(p.h, 1, [&](int64_t h0, int64_t h1) {
    std::vector<double> K(p.L);
    for (int64_t h = h0; h < h1; ++h) {
      Channel ch = channel(p, h);
      if (p.dplr) s4_channel(p, ch, K.data());
      else s4d_channel(p, ch, K.data());
      if (p.conjugate)
        for (double& x : K) x *= 2.0;
      store(at(p.K, p.dtype, h * p.L), p.dtype, K.data(), p.L);
    }
  });
}

}  // namespace ss::classical
