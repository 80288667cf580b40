// HiPPO transition matrices (in the normalised bases of the S4 papers) and their
// normal-plus-low-rank decomposition. A + P Pᵀ = c·I + K with K real skew-symmetric, so
// iK is Hermitian: its eigen-decomposition iK = V diag(μ) Vᴴ gives
// A = V (Λ − P̃ P̃ᴴ) Vᴴ with Λ = c − iμ, P̃ = Vᴴ P, V unitary.
#include <cmath>
#include "cpu/classical_cpu.h"
#include "cpu/classical_linalg.h"
#include "ops/classical_hippo.h"

namespace ss::classical {
namespace {

void hippo_matrix(HippoKind kind, int64_t n, Mat& A, Mat& B) {
  A.assign(n * n, 0.0);
  B.assign(n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double ri = std::sqrt(2.0 * i + 1.0);
    switch (kind) {
      case HippoKind::LegS:  // scaled Legendre: −√((2i+1)(2j+1)) below, −(i+1) on the diagonal
        for (int64_t j = 0; j < i; ++j) A[i * n + j] = -ri * std::sqrt(2.0 * j + 1.0);
        A[i * n + i] = -(i + 1.0);
        B[i] = ri;
        break;
      case HippoKind::LegT:  // translated Legendre, window 1 (LMU up to the similarity diag((−1)^i))
        for (int64_t j = 0; j < n; ++j) {
          const double sign = j > i && (j - i) % 2 ? -1.0 : 1.0;
          A[i * n + j] = -ri * std::sqrt(2.0 * j + 1.0) * sign;
        }
        B[i] = ri;
        break;
      case HippoKind::LagT:  // Laguerre (α = 0), shifted by 1/2: −1 below, −1/2 on the diagonal
        for (int64_t j = 0; j < i; ++j) A[i * n + j] = -1.0;
        A[i * n + i] = -0.5;
        B[i] = 1.0;
        break;
      case HippoKind::Fourier:  // FouT: rotations at frequencies πk, minus the rank-1 endpoint term
        B[i] = i == 0 ? 1.0 : i % 2 == 0 ? std::sqrt(2.0) : 0.0;
        break;
    }
  }
  if (kind == HippoKind::Fourier) {
    for (int64_t i = 1; i + 1 < n; i += 2) {  // cos/sin pair (i, i+1) of frequency (i+1)/2
      const double f = M_PI * ((i + 1) / 2);
      A[i * n + i + 1] = -f;
      A[(i + 1) * n + i] = f;
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) A[i * n + j] -= B[i] * B[j];
  }
}

struct Nplr {
  std::vector<cd> lambda, P, B;
  CMat V;
};

Nplr nplr_dense(HippoKind kind, int64_t n) {
  Mat A, B;
  hippo_matrix(kind, n, A, B);
  std::vector<double> P(n);
  for (int64_t i = 0; i < n; ++i) P[i] = kind == HippoKind::LegS ? std::sqrt(i + 0.5) : B[i];
  double c = 0.0;
  for (int64_t i = 0; i < n; ++i) c += A[i * n + i] + P[i] * P[i];
  c /= static_cast<double>(n);
  Mat K(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) K[i * n + j] = A[i * n + j] + P[i] * P[j] - (i == j ? c : 0.0);
  std::vector<double> mu;
  Nplr r;
  skew_eig(n, K.data(), mu, r.V);
  r.lambda.resize(n);
  r.P.assign(n, cd(0.0));
  r.B.assign(n, cd(0.0));
  for (int64_t k = 0; k < n; ++k) {
    r.lambda[k] = cd(c, -mu[k]);  // μ ascending: imaginary parts descending
    for (int64_t j = 0; j < n; ++j) {
      r.P[k] += std::conj(r.V[j * n + k]) * P[j];
      r.B[k] += std::conj(r.V[j * n + k]) * B[j];
    }
  }
  return r;
}

}  // namespace

void hippo_cpu(const HippoParams& p) {
  Mat A, B;
  hippo_matrix(p.kind, p.n, A, B);
  store(p.A, p.dtype, A.data(), p.n * p.n);
  store(p.B, p.dtype, B.data(), p.n);
}

void nplr_cpu(const NplrParams& p) {
  Nplr r = nplr_dense(p.kind, p.n);
  store_complex(p.lambda, p.dtype, r.lambda.data(), p.n);
  store_complex(p.P, p.dtype, r.P.data(), p.n);
  store_complex(p.B, p.dtype, r.B.data(), p.n);
  store_complex(p.V, p.dtype, r.V.data(), p.n * p.n);
}

void s4d_init_cpu(const S4dInitParams& p) {
  const int64_t n = p.n;
  std::vector<cd> lambda(n), B(n, cd(1.0));
  if (p.kind == S4dKind::LegS) {
    // The 2n-state LegS normal part has n conjugate pairs; keep the n with Im > 0 (first in
    // the descending order nplr_dense returns) and their projected B.
    Nplr r = nplr_dense(HippoKind::LegS, 2 * n);
    for (int64_t k = 0; k < n; ++k) {
      lambda[k] = r.lambda[k];
      B[k] = r.B[k];
    }
  } else {
    const double N2 = 2.0 * static_cast<double>(n);  // the state size with conjugates
    for (int64_t k = 0; k < n; ++k) {
      switch (p.kind) {
        case S4dKind::Lin: lambda[k] = cd(-0.5, M_PI * k); break;
        case S4dKind::Inv: lambda[k] = cd(-0.5, N2 / M_PI * (N2 / (2.0 * k + 1.0) - 1.0)); break;
        default: lambda[k] = cd(-(k + 1.0), 0.0); break;
      }
    }
  }
  store_complex(p.lambda, p.dtype, lambda.data(), n);
  store_complex(p.B, p.dtype, B.data(), n);
}

}  // namespace ss::classical
