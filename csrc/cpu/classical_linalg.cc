#include "cpu/classical_linalg.h"
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include "core/error.h"

namespace ss::classical {

Mat identity(int64_t n) {
  Mat I(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) I[i * n + i] = 1.0;
  return I;
}

void matmul(int64_t n, int64_t k, int64_t m, const double* A, const double* B, double* C) {
  std::fill(C, C + n * m, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t l = 0; l < k; ++l) {
      double a = A[i * k + l];
      if (a == 0.0) continue;
      const double* b = B + l * m;
      double* c = C + i * m;
      for (int64_t j = 0; j < m; ++j) c[j] += a * b[j];
    }
}

void cmatmul(int64_t n, int64_t k, int64_t m, const cd* A, const cd* B, cd* C) {
  std::fill(C, C + n * m, cd(0.0));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t l = 0; l < k; ++l) {
      cd a = A[i * k + l];
      const cd* b = B + l * m;
      cd* c = C + i * m;
      for (int64_t j = 0; j < m; ++j) c[j] += cmul(a, b[j]);
    }
}

void lu_solve(int64_t n, int64_t m, double* A, double* B, const char* what) {
  double scale = 0.0;
  for (int64_t i = 0; i < n * n; ++i) scale = std::max(scale, std::abs(A[i]));
  for (int64_t c = 0; c < n; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::abs(A[r * n + c]) > std::abs(A[piv * n + c])) piv = r;
    double p = A[piv * n + c];
    if (!(std::abs(p) > 1e-14 * scale))
      fail("ERR_NUMERIC", ErrorKind::Plain, std::string(what) + ": matrix is singular to working precision");
    if (piv != c) {
      std::swap_ranges(A + c * n, A + c * n + n, A + piv * n);
      std::swap_ranges(B + c * m, B + c * m + m, B + piv * m);
    }
    for (int64_t r = c + 1; r < n; ++r) {
      double f = A[r * n + c] / p;
      if (f == 0.0) continue;
      A[r * n + c] = f;
      for (int64_t j = c + 1; j < n; ++j) A[r * n + j] -= f * A[c * n + j];
      for (int64_t j = 0; j < m; ++j) B[r * m + j] -= f * B[c * m + j];
    }
  }
  for (int64_t c = n - 1; c >= 0; --c) {
    double p = A[c * n + c];
    for (int64_t j = 0; j < m; ++j) B[c * m + j] /= p;
    for (int64_t r = 0; r < c; ++r) {
      double f = A[r * n + c];
      if (f == 0.0) continue;
      for (int64_t j = 0; j < m; ++j) B[r * m + j] -= f * B[c * m + j];
    }
  }
}

bool cholesky(int64_t n, double* A) {
  for (int64_t j = 0; j < n; ++j) {
    double d = A[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= A[j * n + k] * A[j * n + k];
    if (!(d > 0.0)) return false;
    double l = std::sqrt(d);
    A[j * n + j] = l;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = A[i * n + j];
      for (int64_t k = 0; k < j; ++k) s -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = s / l;
    }
    for (int64_t k = j + 1; k < n; ++k) A[j * n + k] = 0.0;
  }
  return true;
}

void cholesky_solve(int64_t n, int64_t m, const double* L, double* B) {
  for (int64_t i = 0; i < n; ++i) {  // L Y = B
    for (int64_t k = 0; k < i; ++k)
      for (int64_t j = 0; j < m; ++j) B[i * m + j] -= L[i * n + k] * B[k * m + j];
    for (int64_t j = 0; j < m; ++j) B[i * m + j] /= L[i * n + i];
  }
  for (int64_t i = n - 1; i >= 0; --i) {  // Lᵀ X = Y
    for (int64_t k = i + 1; k < n; ++k)
      for (int64_t j = 0; j < m; ++j) B[i * m + j] -= L[k * n + i] * B[k * m + j];
    for (int64_t j = 0; j < m; ++j) B[i * m + j] /= L[i * n + i];
  }
}

Mat expm(int64_t n, const double* A) {
  // Padé [13/13] coefficients and the 1-norm bound below which it is accurate to unit
  // roundoff in float64 (Higham, "The scaling and squaring method for the matrix exponential
  // revisited", SIAM J. Matrix Anal. Appl. 26(4), 2005, table 2.3).
  static const double b[14] = {64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0,
                               129060195264000.0,   10559470521600.0,    670442572800.0,     33522128640.0,
                               1323241920.0,        40840800.0,          960960.0,           16380.0,
                               182.0,               1.0};
  const double theta13 = 5.371920351148152;
  double norm1 = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += std::abs(A[i * n + j]);
    norm1 = std::max(norm1, s);
  }
  if (!std::isfinite(norm1)) fail("ERR_NUMERIC", ErrorKind::Plain, "A: the matrix exponential needs finite entries");
  int s = norm1 > theta13 ? static_cast<int>(std::ceil(std::log2(norm1 / theta13))) : 0;
  const int64_t nn = n * n;
  Mat X(A, A + nn);
  double scale = std::ldexp(1.0, -s);
  for (double& x : X) x *= scale;
  Mat X2(nn), X4(nn), X6(nn), T1(nn), U(nn), V(nn);
  matmul(n, n, n, X.data(), X.data(), X2.data());
  matmul(n, n, n, X2.data(), X2.data(), X4.data());
  matmul(n, n, n, X2.data(), X4.data(), X6.data());
  // U = X [X6 (b13 X6 + b11 X4 + b9 X2) + b7 X6 + b5 X4 + b3 X2 + b1 I]
  // V =    X6 (b12 X6 + b10 X4 + b8 X2) + b6 X6 + b4 X4 + b2 X2 + b0 I
  Mat inner(nn), W(nn);
  for (int64_t i = 0; i < nn; ++i) inner[i] = b[13] * X6[i] + b[11] * X4[i] + b[9] * X2[i];
  matmul(n, n, n, X6.data(), inner.data(), T1.data());
  for (int64_t i = 0; i < nn; ++i) W[i] = T1[i] + b[7] * X6[i] + b[5] * X4[i] + b[3] * X2[i];
  for (int64_t i = 0; i < n; ++i) W[i * n + i] += b[1];
  matmul(n, n, n, X.data(), W.data(), U.data());
  for (int64_t i = 0; i < nn; ++i) inner[i] = b[12] * X6[i] + b[10] * X4[i] + b[8] * X2[i];
  matmul(n, n, n, X6.data(), inner.data(), T1.data());
  for (int64_t i = 0; i < nn; ++i) V[i] = T1[i] + b[6] * X6[i] + b[4] * X4[i] + b[2] * X2[i];
  for (int64_t i = 0; i < n; ++i) V[i * n + i] += b[0];
  // R = (V - U)^{-1} (V + U)
  Mat P(nn), Q(nn);
  for (int64_t i = 0; i < nn; ++i) {
    P[i] = V[i] - U[i];
    Q[i] = V[i] + U[i];
  }
  lu_solve(n, n, P.data(), Q.data(), "expm");
  for (int k = 0; k < s; ++k) {
    matmul(n, n, n, Q.data(), Q.data(), T1.data());
    Q.swap(T1);
  }
  return Q;
}

void hermitian_eig(int64_t n, const cd* Hin, std::vector<double>& w, CMat& Vout) {
  CMat H(Hin, Hin + n * n);
  CMat V(n * n, cd(0.0));
  for (int64_t i = 0; i < n; ++i) V[i * n + i] = 1.0;
  auto off_norm = [&] {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        if (i != j) s += std::norm(H[i * n + j]);
    return s;
  };
  double total = 0.0;
  for (const cd& h : H) total += std::norm(h);
  for (int sweep = 0; sweep < 100 && off_norm() > 1e-30 * total; ++sweep) {
    for (int64_t p = 0; p < n - 1; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        cd hpq = H[p * n + q];
        double mag = std::abs(hpq);
        if (mag < 1e-300) continue;
        // Phase e^{iφ} = hpq/|hpq| makes the 2x2 block real; then a real Jacobi rotation
        // (Numerical Recipes' convention) zeroes it. U = diag(1, e^{-iφ}) [[c, s], [-s, c]].
        cd ph = hpq / mag;
        double a = H[p * n + p].real(), d = H[q * n + q].real();
        double theta = (d - a) / (2.0 * mag);
        double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
        double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        cd u_qp = -s * std::conj(ph), u_qq = c * std::conj(ph);  // U = [[c, s], [u_qp, u_qq]]
        for (int64_t r = 0; r < n; ++r) {  // H <- H U, V <- V U (columns p, q)
          cd hp = H[r * n + p], hq = H[r * n + q];
          H[r * n + p] = c * hp + cmul(hq, u_qp);
          H[r * n + q] = s * hp + cmul(hq, u_qq);
          cd vp = V[r * n + p], vq = V[r * n + q];
          V[r * n + p] = c * vp + cmul(vq, u_qp);
          V[r * n + q] = s * vp + cmul(vq, u_qq);
        }
        for (int64_t k = 0; k < n; ++k) {  // H <- Uᴴ H (rows p, q)
          cd hp = H[p * n + k], hq = H[q * n + k];
          H[p * n + k] = c * hp + cmul(std::conj(u_qp), hq);
          H[q * n + k] = s * hp + cmul(std::conj(u_qq), hq);
        }
        H[p * n + q] = H[q * n + p] = 0.0;
        H[p * n + p] = H[p * n + p].real();
        H[q * n + q] = H[q * n + q].real();
      }
  }
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return H[i * n + i].real() < H[j * n + j].real(); });
  w.resize(n);
  Vout.assign(n * n, cd(0.0));
  for (int64_t k = 0; k < n; ++k) {
    w[k] = H[order[k] * n + order[k]].real();
    for (int64_t r = 0; r < n; ++r) Vout[r * n + k] = V[r * n + order[k]];
  }
}

}  // namespace ss::classical
