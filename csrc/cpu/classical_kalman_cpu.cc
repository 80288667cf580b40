// Kalman filter (Joseph-form covariance update, Cholesky of the innovation covariance,
// missing observations dropped row by row) and RTS smoother; one sequence per task.
#include <cmath>
#include <string>
#include "core/error.h"
#include "core/thread_pool.h"
#include "cpu/classical_cpu.h"
#include "cpu/classical_linalg.h"
#include "ops/classical_kalman.h"

namespace ss::classical {
namespace {

void symmetrize(int64_t n, double* P) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) P[i * n + j] = P[j * n + i] = 0.5 * (P[i * n + j] + P[j * n + i]);
}

// C = A Bᵀ (A n x k, B m x k).
void matmul_nt(int64_t n, int64_t k, int64_t m, const double* A, const double* B, double* C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) C[i * m + j] = dot(A + i * k, B + j * k, k);
}

struct System {
  int64_t n, m, p;
  Mat A, B, C, Q, R, P0;
};

// Filters one sequence. x0: (n); u: (T, m) or null; z: (T, p). Writes filtered moments to
// xf (T, n), Pf (T, n, n) and, when xp/Pp are given, the one-step predictions too.
double filter(const System& s, int64_t T, const double* x0, const double* u, const double* z, double* xf, double* Pf,
              double* xp, double* Pp) {
  const int64_t n = s.n, m = s.m, p = s.p;
  std::vector<double> x(x0, x0 + n), xn(n), P(s.P0), AP(n * n), Pn(n * n);
  std::vector<double> Co, Ro, nu, CP, S, Kt, alpha, IKC(n * n), T1(n * n), KR, T2;
  std::vector<int64_t> obs;
  double ll = 0.0;
  const double log2pi = std::log(2.0 * M_PI);
  for (int64_t t = 0; t < T; ++t) {
    if (t > 0) {
      matmul(n, n, 1, s.A.data(), x.data(), xn.data());
      if (u)
        for (int64_t i = 0; i < n; ++i)
          for (int64_t k = 0; k < m; ++k) xn[i] += s.B[i * m + k] * u[(t - 1) * m + k];
      x.swap(xn);
      matmul(n, n, n, s.A.data(), P.data(), AP.data());
      matmul_nt(n, n, n, AP.data(), s.A.data(), Pn.data());
      for (int64_t i = 0; i < n * n; ++i) P[i] = Pn[i] + s.Q[i];
      symmetrize(n, P.data());
    }
    if (xp) {
      std::copy(x.begin(), x.end(), xp + t * n);
      std::copy(P.begin(), P.end(), Pp + t * n * n);
    }
    obs.clear();
    for (int64_t r = 0; r < p; ++r)
      if (!std::isnan(z[t * p + r])) obs.push_back(r);
    const int64_t k = static_cast<int64_t>(obs.size());
    if (k > 0) {
      Co.resize(k * n);
      Ro.resize(k * k);
      nu.resize(k);
      for (int64_t a = 0; a < k; ++a) {
        std::copy(s.C.begin() + obs[a] * n, s.C.begin() + obs[a] * n + n, Co.begin() + a * n);
        for (int64_t b = 0; b < k; ++b) Ro[a * k + b] = s.R[obs[a] * p + obs[b]];
        double cx = 0;
        for (int64_t j = 0; j < n; ++j) cx += Co[a * n + j] * x[j];
        nu[a] = z[t * p + obs[a]] - cx;
      }
      CP.resize(k * n);
      S.resize(k * k);
      matmul(k, n, n, Co.data(), P.data(), CP.data());
      matmul_nt(k, n, k, CP.data(), Co.data(), S.data());
      for (int64_t i = 0; i < k * k; ++i) S[i] += Ro[i];
      symmetrize(k, S.data());
      if (!cholesky(k, S.data()))
        fail("ERR_NUMERIC", ErrorKind::Plain,
             "kalman: the innovation covariance C P Cᵀ + R is not positive definite at step " + std::to_string(t));
      Kt = CP;  // Kᵀ = S^{-1} C P
      cholesky_solve(k, n, S.data(), Kt.data());
      alpha = nu;
      cholesky_solve(k, 1, S.data(), alpha.data());
      double logdet = 0, quad = 0;
      for (int64_t a = 0; a < k; ++a) {
        logdet += 2.0 * std::log(S[a * k + a]);
        quad += nu[a] * alpha[a];
      }
      ll += -0.5 * (k * log2pi + logdet + quad);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t a = 0; a < k; ++a) x[i] += Kt[a * n + i] * nu[a];
      // Joseph form: P = (I − K C) P (I − K C)ᵀ + K R Kᵀ
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double v = i == j ? 1.0 : 0.0;
          for (int64_t a = 0; a < k; ++a) v -= Kt[a * n + i] * Co[a * n + j];
          IKC[i * n + j] = v;
        }
      matmul(n, n, n, IKC.data(), P.data(), T1.data());
      matmul_nt(n, n, n, T1.data(), IKC.data(), P.data());
      KR.assign(n * k, 0.0);  // K R (n x k)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t b = 0; b < k; ++b) {
          double v = 0;
          for (int64_t a = 0; a < k; ++a) v += Kt[a * n + i] * Ro[a * k + b];
          KR[i * k + b] = v;
        }
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double v = 0;
          for (int64_t b = 0; b < k; ++b) v += KR[i * k + b] * Kt[b * n + j];
          P[i * n + j] += v;
        }
      symmetrize(n, P.data());
    }
    std::copy(x.begin(), x.end(), xf + t * n);
    std::copy(P.begin(), P.end(), Pf + t * n * n);
  }
  return ll;
}

// Rauch–Tung–Striebel, in place over (xf, Pf): G_t = Pf_t Aᵀ Pp_{t+1}^{-1},
// x_t += G_t (xs_{t+1} − xp_{t+1}), P_t += G_t (Ps_{t+1} − Pp_{t+1}) G_tᵀ.
void smooth(const System& s, int64_t T, const double* xp, const double* Pp, double* x, double* P) {
  const int64_t n = s.n;
  std::vector<double> M(n * n), X(n * n), G(n * n), dx(n), dP(n * n), GdP(n * n), upd(n * n);
  for (int64_t t = T - 2; t >= 0; --t) {
    const double* pp1 = Pp + (t + 1) * n * n;
    double* Pt = P + t * n * n;
    std::copy(pp1, pp1 + n * n, M.begin());
    matmul(n, n, n, s.A.data(), Pt, X.data());  // A Pf_t = Pp_{t+1} Gᵀ
    lu_solve(n, n, M.data(), X.data(), "kalman.smooth: predicted covariance");
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) G[i * n + j] = X[j * n + i];
    for (int64_t i = 0; i < n; ++i) dx[i] = x[(t + 1) * n + i] - xp[(t + 1) * n + i];
    for (int64_t i = 0; i < n * n; ++i) dP[i] = P[(t + 1) * n * n + i] - pp1[i];
    for (int64_t i = 0; i < n; ++i) {
      double v = 0;
      for (int64_t j = 0; j < n; ++j) v += G[i * n + j] * dx[j];
      x[t * n + i] += v;
    }
    matmul(n, n, n, G.data(), dP.data(), GdP.data());
    matmul_nt(n, n, n, GdP.data(), G.data(), upd.data());
    for (int64_t i = 0; i < n * n; ++i) Pt[i] += upd[i];
    symmetrize(n, Pt);
  }
}

}  // namespace

void kalman_cpu(const KalmanParams& p) {
  const int64_t n = p.n, T = p.T;
  System s{n, p.m, p.p, load(p.A, p.dtype, n * n), p.B ? load(p.B, p.dtype, n * p.m) : Mat(), load(p.C, p.dtype, p.p * n),
           load(p.Q, p.dtype, n * n), load(p.R, p.dtype, p.p * p.p), load(p.P0, p.dtype, n * n)};
  parallel_for(p.batch, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> xf(T * n), Pf(T * n * n), xp, Pp;
    if (p.smooth) {
      xp.resize(T * n);
      Pp.resize(T * n * n);
    }
    for (int64_t b = b0; b < b1; ++b) {
      const std::vector<double> x0 = load(at(p.x0, p.dtype, b * p.x0_stride), p.dtype, n);
      const std::vector<double> z = load(at(p.z, p.dtype, b * T * p.p), p.dtype, T * p.p);
      const std::vector<double> u = p.u ? load(at(p.u, p.dtype, b * T * p.m), p.dtype, T * p.m) : std::vector<double>();
      double ll = filter(s, T, x0.data(), p.u ? u.data() : nullptr, z.data(), xf.data(), Pf.data(),
                         p.smooth ? xp.data() : nullptr, p.smooth ? Pp.data() : nullptr);
      if (p.smooth) smooth(s, T, xp.data(), Pp.data(), xf.data(), Pf.data());
      store(at(p.means, p.dtype, b * T * n), p.dtype, xf.data(), T * n);
      store(at(p.covs, p.dtype, b * T * n * n), p.dtype, Pf.data(), T * n * n);
      store(at(p.loglik, p.dtype, b), p.dtype, &ll, 1);
    }
  });
}

}  // namespace ss::classical
