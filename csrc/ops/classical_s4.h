// Convolution kernels of structured SSMs, one row per channel h:
//   S4D (diagonal):  K_l = Σ_n C_n B̄_n λ̄_n^l  (Vandermonde; ZOH or bilinear λ̄, B̄)
//   S4 (DPLR):       K_l = C Ā^l B̄ with A = Λ − P Pᴴ, bilinear, from the truncated generating
//                    function at the L-th roots of unity (Cauchy kernel + Woodbury) and an
//                    inverse DFT of length L.
// Λ, P, B, C are complex (..., n, 2); each may be shared (n, 2) or per channel (h, n, 2).
// The output is Re(K), times 2 with `conjugate` (the modes stand for conjugate pairs).
#pragma once
#include "core/tensor.h"
#include "ops/classical_discretize.h"

namespace ss::classical {

struct S4KernelParams {
  DType dtype;
  bool dplr;        // S4 (DPLR) rather than S4D
  Method method;    // S4D: Zoh or Bilinear; S4: Bilinear
  bool conjugate;
  int64_t h, n, L;
  const void *lambda, *P, *B, *C;  // P: S4 only; B may be null for S4D (ones)
  int64_t lambda_stride, P_stride, B_stride, C_stride;  // complex elements per channel (0: shared)
  const void* dt;   // (h) tensor, or null to use dt_value
  double dt_value;
  void* K;          // (h, L)
};

void s4_kernel_cpu(const S4KernelParams& p);

// dt: a (h) tensor, or undefined to use dt_value.
Tensor s4d_kernel(const Tensor& lambda, const Tensor& B, const Tensor& C, const Tensor& dt, double dt_value, int64_t L,
                  Method method, bool conjugate);
Tensor s4_kernel(const Tensor& lambda, const Tensor& P, const Tensor& B, const Tensor& C, const Tensor& dt, double dt_value,
                 int64_t L, bool conjugate);

}  // namespace ss::classical
