// Discretisation kernels. Dense: ZOH as one matrix exponential of the augmented system
// [[A, B], [0, 0]]·dt (whose top row is [Ā, B̄]); the implicit methods as one LU solve with
// [I + c·A | dt·B] on the right. Diagonal: the same formulas elementwise, with expm1 so that
// B̄ = (e^{a dt} − 1)/a · b keeps full precision for small a·dt.
#include <cmath>
#include "cpu/classical_cpu.h"
#include "cpu/classical_linalg.h"
#include "ops/classical_discretize.h"

namespace ss::classical {
namespace {

void dense(const DiscretizeParams& p) {
  const int64_t n = p.n, m = p.m, w = n + m;
  Mat A = load(p.A, p.dtype, n * n), B = load(p.B, p.dtype, n * m);
  Mat Ad(n * n), Bd(n * m);
  if (p.method == Method::Zoh) {
    Mat M(w * w, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) M[i * w + j] = A[i * n + j] * p.dt;
      for (int64_t j = 0; j < m; ++j) M[i * w + n + j] = B[i * m + j] * p.dt;
    }
    Mat E = expm(w, M.data());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) Ad[i * n + j] = E[i * w + j];
      for (int64_t j = 0; j < m; ++j) Bd[i * m + j] = E[i * w + n + j];
    }
  } else if (p.method == Method::Euler) {
    for (int64_t i = 0; i < n * n; ++i) Ad[i] = p.dt * A[i];
    for (int64_t i = 0; i < n; ++i) Ad[i * n + i] += 1.0;
    for (int64_t i = 0; i < n * m; ++i) Bd[i] = p.dt * B[i];
  } else {
    // bilinear: (I − dt/2·A) [Ā | B̄] = [I + dt/2·A | dt·B];  backward Euler: (I − dt·A) [Ā | B̄] = [I | dt·B]
    const double c = p.method == Method::Bilinear ? p.dt / 2 : p.dt;
    const double c_rhs = p.method == Method::Bilinear ? p.dt / 2 : 0.0;
    Mat L(n * n), R(n * w, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        L[i * n + j] = (i == j) - c * A[i * n + j];
        R[i * w + j] = (i == j) + c_rhs * A[i * n + j];
      }
      for (int64_t j = 0; j < m; ++j) R[i * w + n + j] = p.dt * B[i * m + j];
    }
    lu_solve(n, w, L.data(), R.data(), "discretize: I - c·A");
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) Ad[i * n + j] = R[i * w + j];
      for (int64_t j = 0; j < m; ++j) Bd[i * m + j] = R[i * w + n + j];
    }
  }
  store(p.Ad, p.dtype, Ad.data(), n * n);
  store(p.Bd, p.dtype, Bd.data(), n * m);
}

// ā and the factor f with b̄ = f·b, for one diagonal entry a.
void diagonal_entry(Method method, double dt, cd a, cd* ad, cd* f) {
  switch (method) {
    case Method::Zoh: {
      cd z = a * dt;
      *ad = std::exp(z);
      *f = std::abs(z) == 0.0 ? cd(dt) : cdiv(expm1c(z), a);
      break;
    }
    case Method::Bilinear: {
      cd den = 1.0 - a * (dt / 2);
      *ad = cdiv(1.0 + a * (dt / 2), den);
      *f = cdiv(cd(dt), den);
      break;
    }
    case Method::Euler:
      *ad = 1.0 + a * dt;
      *f = dt;
      break;
    case Method::BackwardEuler: {
      cd den = 1.0 - a * dt;
      *ad = cdiv(cd(1.0), den);
      *f = cdiv(cd(dt), den);
      break;
    }
  }
}

void diagonal(const DiscretizeParams& p) {
  const int64_t n = p.n, m = p.m;
  const bool cplx = p.structure == Structure::ComplexDiagonal;
  std::vector<cd> a = cplx ? load_complex(p.A, p.dtype, n) : std::vector<cd>();
  std::vector<double> ar = cplx ? std::vector<double>() : load(p.A, p.dtype, n);
  std::vector<cd> b = p.b_complex ? load_complex(p.B, p.dtype, n * m) : std::vector<cd>();
  std::vector<double> br = p.b_complex ? std::vector<double>() : load(p.B, p.dtype, n * m);
  std::vector<cd> ad(n), bd(n * m);
  for (int64_t i = 0; i < n; ++i) {
    cd f;
    diagonal_entry(p.method, p.dt, cplx ? a[i] : cd(ar[i]), &ad[i], &f);
    for (int64_t j = 0; j < m; ++j) bd[i * m + j] = f * (p.b_complex ? b[i * m + j] : cd(br[i * m + j]));
  }
  if (cplx) {
    store_complex(p.Ad, p.dtype, ad.data(), n);
    store_complex(p.Bd, p.dtype, bd.data(), n * m);
  } else {
    std::vector<double> adr(n), bdr(n * m);
    for (int64_t i = 0; i < n; ++i) adr[i] = ad[i].real();
    for (int64_t i = 0; i < n * m; ++i) bdr[i] = bd[i].real();
    store(p.Ad, p.dtype, adr.data(), n);
    store(p.Bd, p.dtype, bdr.data(), n * m);
  }
}

}  // namespace

void discretize_cpu(const DiscretizeParams& p) {
  if (p.structure == Structure::Dense) dense(p);
  else diagonal(p);
}

}  // namespace ss::classical
