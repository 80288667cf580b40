#include "ops/classical_lti.h"
#include <string>
#include "core/error.h"
#include "ops/classical_common.h"
#include "ops/dispatch.h"

namespace ss::classical {
namespace {

std::string dims(int64_t a, int64_t b) { return "(" + std::to_string(a) + ", " + std::to_string(b) + ")"; }

// Checks the dense system (A, B, C, D?) and returns (n, m, p).
void check_system(const Tensor& A, const Tensor& B, const Tensor& C, const Tensor& D, DType d, int64_t* n, int64_t* m, int64_t* p) {
  if (A.ndim() != 2 || A.size(0) != A.size(1) || A.size(0) < 1) fail_shape("A", "(n, n) with n >= 1", A.shape);
  *n = A.size(0);
  check_like("B", B, d);
  check_like("C", C, d);
  if (B.ndim() != 2 || B.size(0) != *n) fail_shape("B", "(n, m) with n = " + std::to_string(*n), B.shape);
  if (C.ndim() != 2 || C.size(1) != *n) fail_shape("C", "(p, n) with n = " + std::to_string(*n), C.shape);
  *m = B.size(1);
  *p = C.size(0);
  if (*m < 1 || *p < 1) fail_range("B, C: the input and output sizes m, p must be at least 1");
  if (D.defined()) {
    check_like("D", D, d);
    expect_shape("D", D, {*p, *m}, "(p, m)");
  }
}

}  // namespace

Simulated simulate(const Tensor& A, const Tensor& B, const Tensor& C, const Tensor& D, const Tensor& u, const Tensor& x0) {
  DType d = check_float_cpu("A", A);
  SimulateParams p{};
  check_system(A, B, C, D, d, &p.n, &p.m, &p.p);
  check_like("u", u, d);
  if (u.ndim() != 3 || u.size(1) != p.m) fail_shape("u", "(batch, m, L) with m = " + std::to_string(p.m), u.shape);
  p.batch = u.size(0);
  p.L = u.size(2);
  if (x0.defined()) {
    check_like("x0", x0, d);
    expect_shape("x0", x0, {p.batch, p.n}, "(batch, n)");
  }
  p.dtype = d;
  Tensor a = dense(A), b = dense(B), c = dense(C), dd = D.defined() ? dense(D) : Tensor{}, uu = dense(u),
         x = x0.defined() ? dense(x0) : Tensor{};
  Simulated out{empty({p.batch, p.p, p.L}, d, Device{}), empty({p.batch, p.n}, d, Device{})};
  p.A = a.data();
  p.B = b.data();
  p.C = c.data();
  p.D = dd.defined() ? dd.data() : nullptr;
  p.x0 = x.defined() ? x.data() : nullptr;
  p.u = uu.data();
  p.y = out.y.data();
  p.x_last = out.x_last.data();
  run_cpu({a, b, c, dd, uu, x}, {out.y, out.x_last}, [p] { simulate_cpu(p); });
  return out;
}

Tensor kernel(const Tensor& A, const Tensor& B, const Tensor& C, int64_t L) {
  DType d = check_float_cpu("A", A);
  KernelParams p{};
  check_system(A, B, C, Tensor{}, d, &p.n, &p.m, &p.p);
  if (L < 1) fail_range("L: expected a positive kernel length, got " + std::to_string(L));
  p.dtype = d;
  p.L = L;
  Tensor a = dense(A), b = dense(B), c = dense(C);
  Tensor K = empty({p.p, p.m, L}, d, Device{});
  p.A = a.data();
  p.B = b.data();
  p.C = c.data();
  p.K = K.data();
  run_cpu({a, b, c}, {K}, [p] { kernel_cpu(p); });
  return K;
}

Tensor convolve(const Tensor& u, const Tensor& K, const Tensor& D) {
  DType d = check_float_cpu("u", u);
  check_like("K", K, d);
  ConvolveParams p{};
  p.dtype = d;
  if (u.ndim() != 3) fail_shape("u", "(batch, channels, L)", u.shape);
  p.batch = u.size(0);
  p.L = u.size(2);
  if (K.ndim() == 2) {
    p.mimo = false;
    p.m = p.p = K.size(0);
    p.Lk = K.size(1);
    if (u.size(1) != p.m) fail_shape("u", "(batch, channels, L) with channels = " + std::to_string(p.m) + " (K is (channels, Lk))", u.shape);
    if (D.defined()) {
      check_like("D", D, d);
      expect_shape("D", D, {p.m}, "(channels)");
    }
  } else if (K.ndim() == 3) {
    p.mimo = true;
    p.p = K.size(0);
    p.m = K.size(1);
    p.Lk = K.size(2);
    if (u.size(1) != p.m) fail_shape("u", "(batch, m, L) with m = " + std::to_string(p.m) + " (K is (p, m, Lk))", u.shape);
    if (D.defined()) {
      check_like("D", D, d);
      expect_shape("D", D, {p.p, p.m}, "(p, m) = " + dims(p.p, p.m));
    }
  } else {
    fail_shape("K", "(channels, Lk) depthwise or (p, m, Lk)", K.shape);
  }
  if (p.Lk < 1) fail_range("K: the kernel needs at least one tap");
  Tensor uu = dense(u), k = dense(K), dd = D.defined() ? dense(D) : Tensor{};
  Tensor y = empty({p.batch, p.p, p.L}, d, Device{});
  p.u = uu.data();
  p.K = k.data();
  p.D = dd.defined() ? dd.data() : nullptr;
  p.y = y.data();
  if (y.numel() == 0) return y;
  run_cpu({uu, k, dd}, {y}, [p] { convolve_cpu(p); });
  return y;
}

}  // namespace ss::classical
