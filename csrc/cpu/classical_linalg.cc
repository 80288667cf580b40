#include "cpu/classical_linalg.h"
#include <algorithm>
#include <limits>
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

namespace {

// Eigen-decomposition of a real symmetric tridiagonal matrix (diagonal d, off-diagonal e with
// e[i] between rows i and i+1, e[n-1] unused) by implicit QL with Wilkinson-type shifts;
// the rotations are accumulated into Zt (row j = eigenvector j; starts as the identity), so
// each rotation touches two contiguous rows.
void tridiagonal_ql(int64_t n, std::vector<double>& d, std::vector<double>& e, Mat& Zt) {
  const double eps = std::numeric_limits<double>::epsilon();
  for (int64_t l = 0; l < n; ++l) {
    for (int iter = 0;; ++iter) {
      int64_t m = l;
      for (; m < n - 1; ++m)
        if (std::abs(e[m]) <= eps * (std::abs(d[m]) + std::abs(d[m + 1]))) break;
      if (m == l) break;
      if (iter == 100) fail("ERR_NUMERIC", ErrorKind::Plain, "eigen-decomposition: QL iteration did not converge");
      double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
      double r = std::hypot(g, 1.0);
      g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));
      double s = 1.0, c = 1.0, p = 0.0;
      bool deflated = false;
      for (int64_t i = m - 1; i >= l; --i) {
        double f = s * e[i], b = c * e[i];
        r = std::hypot(f, g);
        e[i + 1] = r;
        if (r == 0.0) {  // split: recover and restart this l
          d[i + 1] -= p;
          e[m] = 0.0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2.0 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        double* z0 = Zt.data() + i * n;
        double* z1 = Zt.data() + (i + 1) * n;
        for (int64_t k = 0; k < n; ++k) {
          const double zf = z1[k], zi = z0[k];
          z1[k] = s * zi + c * zf;
          z0[k] = c * zi - s * zf;
        }
      }
      if (deflated) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0.0;
    }
  }
}

}  // namespace

void skew_eig(int64_t n, const double* Kin, std::vector<double>& mu, CMat& V) {
  // 1. Householder reflections Q with Qᵀ K Q = T skew-symmetric tridiagonal (reflections
  //    keep skew-symmetry, so the same steps as for a symmetric matrix apply).
  Mat K(Kin, Kin + n * n), Q = identity(n);
  std::vector<double> v(n), w(n);
  for (int64_t k = 0; k + 2 < n; ++k) {
    double norm = 0.0;
    for (int64_t i = k + 1; i < n; ++i) norm += K[i * n + k] * K[i * n + k];
    norm = std::sqrt(norm);
    if (norm == 0.0) continue;
    const double alpha = K[(k + 1) * n + k] >= 0 ? -norm : norm;
    std::fill(v.begin(), v.end(), 0.0);
    for (int64_t i = k + 1; i < n; ++i) v[i] = K[i * n + k];
    v[k + 1] -= alpha;
    double vv = 0.0;
    for (int64_t i = k + 1; i < n; ++i) vv += v[i] * v[i];
    if (vv == 0.0) continue;
    const double beta = 2.0 / vv;
    // K <- (I − βvvᵀ) K (I − βvvᵀ); Q <- Q (I − βvvᵀ)
    for (int64_t j = 0; j < n; ++j) {  // rows: K <- K − βv (vᵀK)
      double s = 0.0;
      for (int64_t i = k + 1; i < n; ++i) s += v[i] * K[i * n + j];
      w[j] = beta * s;
    }
    for (int64_t i = k + 1; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) K[i * n + j] -= v[i] * w[j];
    for (int64_t i = 0; i < n; ++i) {  // columns: K <- K − β(Kv) vᵀ, Q likewise
      double s = 0.0, q = 0.0;
      for (int64_t j = k + 1; j < n; ++j) {
        s += K[i * n + j] * v[j];
        q += Q[i * n + j] * v[j];
      }
      for (int64_t j = k + 1; j < n; ++j) {
        K[i * n + j] -= beta * s * v[j];
        Q[i * n + j] -= beta * q * v[j];
      }
    }
  }
  // 2. With D = diag(i^k), Dᴴ (iT) D is real symmetric tridiagonal, zero diagonal and
  //    off-diagonal t_k = T[k+1][k]: iK = (Q D Z) diag(μ) (Q D Z)ᴴ for S = Z diag(μ) Zᵀ.
  std::vector<double> d(n, 0.0), e(n, 0.0);
  for (int64_t k = 0; k + 1 < n; ++k) e[k] = K[(k + 1) * n + k];
  Mat Zt = identity(n);
  tridiagonal_ql(n, d, e, Zt);
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return d[a] < d[b]; });
  mu.resize(n);
  V.assign(n * n, cd(0.0));
  for (int64_t c = 0; c < n; ++c) {
    const int64_t j = order[c];
    mu[c] = d[j];
    for (int64_t r = 0; r < n; ++r) {
      double re = 0.0, im = 0.0;  // Σ_k Q[r][k] i^k Z[k][j], split by k mod 4
      for (int64_t k = 0; k < n; k += 4) {
        re += Q[r * n + k] * Zt[j * n + k];
        if (k + 1 < n) im += Q[r * n + k + 1] * Zt[j * n + k + 1];
        if (k + 2 < n) re -= Q[r * n + k + 2] * Zt[j * n + k + 2];
        if (k + 3 < n) im -= Q[r * n + k + 3] * Zt[j * n + k + 3];
      }
      V[r * n + c] = cd(re, im);
    }
  }
}

}  // namespace ss::classical
