// Small dense linear algebra for the classical toolkit, in float64 (row-major std::vectors).
// The matrices here are state-sized (tens to a few hundred), so plain loops in a good order
// beat anything clever; what matters is numerical care: pivoted LU, Cholesky with a failure
// report, a Padé-13 matrix exponential with scaling and squaring, and a
// skew-symmetric eigen-solver (used to diagonalise the normal part of HiPPO matrices).
#pragma once
#include <cmath>
#include <complex>
#include <cstdint>
#include <vector>

namespace ss::classical {

using cd = std::complex<double>;
using Mat = std::vector<double>;   // n x m row-major
using CMat = std::vector<cd>;      // n x m row-major

// Complex product without the NaN/Inf recovery of operator* (which is a libcall in C++).
template <typename T>
inline std::complex<T> cmul(std::complex<T> a, std::complex<T> b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}
// a / b by Smith's algorithm (no overflow for large |b|, no libcall).
inline cd cdiv(cd a, cd b) {
  double br = b.real(), bi = b.imag();
  if (std::abs(br) >= std::abs(bi)) {
    double r = bi / br, den = br + bi * r;
    return {(a.real() + a.imag() * r) / den, (a.imag() - a.real() * r) / den};
  }
  double r = br / bi, den = bi + br * r;
  return {(a.real() * r + a.imag()) / den, (a.imag() * r - a.real()) / den};
}

// e^z − 1 without cancellation for small |z|.
inline cd expm1c(cd z) {
  double x = z.real(), y = z.imag(), s = std::sin(y / 2);
  return {std::expm1(x) * std::cos(y) - 2 * s * s, std::exp(x) * std::sin(y)};
}

Mat identity(int64_t n);
// C (n x m) = A (n x k) * B (k x m).
void matmul(int64_t n, int64_t k, int64_t m, const double* A, const double* B, double* C);
void cmatmul(int64_t n, int64_t k, int64_t m, const cd* A, const cd* B, cd* C);

// Solves A X = B in place (A n x n is overwritten by its LU factors, B n x m by X), partial
// pivoting. Throws ERR_NUMERIC naming `what` when A is singular to working precision.
void lu_solve(int64_t n, int64_t m, double* A, double* B, const char* what);

// Lower Cholesky factor of a symmetric positive definite n x n matrix, in place (upper part
// zeroed). Returns false when a pivot is not positive.
bool cholesky(int64_t n, double* A);
// Solves L Lᵀ X = B in place (B n x m) given the Cholesky factor L.
void cholesky_solve(int64_t n, int64_t m, const double* L, double* B);

// e^A for a real n x n matrix: Padé degree 13 with scaling and squaring (Higham 2005).
Mat expm(int64_t n, const double* A);

// Eigen-decomposition of i·K for a real skew-symmetric n x n matrix K (i·K is Hermitian):
// i·K = V diag(μ) Vᴴ, μ ascending, V unitary (columns are eigenvectors), row-major. Householder
// reduction to skew-tridiagonal form, a diagonal phase that makes it real symmetric
// tridiagonal, then implicit QL: O(n³) once rather than per sweep.
void skew_eig(int64_t n, const double* K, std::vector<double>& mu, CMat& V);

}  // namespace ss::classical
