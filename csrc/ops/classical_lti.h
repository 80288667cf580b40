// Linear time-invariant systems in discrete time:
//   x_t = A x_{t-1} + B u_t,  y_t = C x_t + D u_t,  x_{-1} = x0
// run recurrently (simulate), as the impulse-response kernel K_l = C A^l B (kernel), or as a
// causal convolution y = K * u + D u computed with FFTs (convolve).
#pragma once
#include "core/tensor.h"

namespace ss::classical {

struct SimulateParams {
  DType dtype;
  int64_t batch, n, m, p, L;
  const void *A, *B, *C, *D, *x0;  // D, x0 may be null
  const void* u;                    // (batch, m, L)
  void* y;                          // (batch, p, L)
  void* x_last;                     // (batch, n)
};

struct KernelParams {
  DType dtype;
  int64_t n, m, p, L;
  const void *A, *B, *C;
  void* K;  // (p, m, L)
};

// Depthwise: K (h, Lk), u (batch, h, L), D (h).  MIMO: K (p, m, Lk), u (batch, m, L), D (p, m).
struct ConvolveParams {
  DType dtype;
  bool mimo;
  int64_t batch, m, p, L, Lk;  // depthwise: m = p = channels
  const void *u, *K, *D;       // D may be null
  void* y;                     // (batch, p, L)
};

void simulate_cpu(const SimulateParams& p);
void kernel_cpu(const KernelParams& p);
void convolve_cpu(const ConvolveParams& p);

struct Simulated { Tensor y, x_last; };
Simulated simulate(const Tensor& A, const Tensor& B, const Tensor& C, const Tensor& D, const Tensor& u, const Tensor& x0);
Tensor kernel(const Tensor& A, const Tensor& B, const Tensor& C, int64_t L);
Tensor convolve(const Tensor& u, const Tensor& K, const Tensor& D);

}  // namespace ss::classical
