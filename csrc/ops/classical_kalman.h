// Kalman filter and Rauch–Tung–Striebel smoother for
//   x_0 ~ N(x0, P0),  x_{t+1} = A x_t + B u_t + w_t,  z_t = C x_t + v_t,
//   w_t ~ N(0, Q), v_t ~ N(0, R).
// Observations that are NaN are missing: a step with some components missing updates with
// the observed rows only; with all missing it skips the update. Covariance updates use the
// Joseph form (stays symmetric positive semi-definite); computed in float64.
#pragma once
#include "core/tensor.h"

namespace ss::classical {

struct KalmanParams {
  DType dtype;
  bool smooth;
  int64_t batch, T, n, m, p;        // m = 0 without inputs
  const void *A, *B, *C, *Q, *R;    // B null without inputs
  const void *x0, *P0;              // x0 (batch, n) or (n) (x0_stride 0); P0 (n, n)
  int64_t x0_stride;
  const void *u, *z;                // u (batch, T, m) or null; z (batch, T, p)
  void* means;                      // (batch, T, n): filtered, or smoothed with `smooth`
  void* covs;                       // (batch, T, n, n)
  void* loglik;                     // (batch)
};

void kalman_cpu(const KalmanParams& p);

struct KalmanResult { Tensor means, covs, loglik; };
// z (T, p) or (batch, T, p); u likewise with m; outputs drop the batch dimension when z has none.
KalmanResult kalman(const Tensor& A, const Tensor& B, const Tensor& C, const Tensor& Q, const Tensor& R, const Tensor& x0,
                    const Tensor& P0, const Tensor& u, const Tensor& z, bool smooth);

}  // namespace ss::classical
