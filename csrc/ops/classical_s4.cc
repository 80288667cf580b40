#include "ops/classical_s4.h"
#include <cmath>
#include <string>
#include "core/error.h"
#include "ops/classical_common.h"
#include "ops/dispatch.h"

namespace ss::classical {
namespace {

// A complex (n, 2) or (h, n, 2) argument: fixes n on first use and h when per channel.
// Returns its per-channel stride in complex elements (0 when shared).
int64_t complex_arg(const char* name, const Tensor& t, DType d, int64_t* n, int64_t* h) {
  check_like(name, t, d);
  if ((t.ndim() != 2 && t.ndim() != 3) || t.size(-1) != 2)
    fail_shape(name, "(n, 2) shared or (h, n, 2) per channel, complex as (re, im)", t.shape);
  int64_t tn = t.size(-2);
  if (*n < 0) *n = tn;
  if (tn != *n) fail_shape(name, "n = " + std::to_string(*n) + " modes (like Lambda)", t.shape);
  if (t.ndim() == 2) return 0;
  if (*h < 0) *h = t.size(0);
  if (t.size(0) != *h) fail_shape(name, "h = " + std::to_string(*h) + " channels", t.shape);
  return *n;
}

Tensor build(S4KernelParams p, const Tensor& lambda, const Tensor& P, const Tensor& B, const Tensor& C, const Tensor& dt) {
  DType d = check_float_cpu("Lambda", lambda);
  int64_t n = -1, h = -1;
  p.dtype = d;
  p.lambda_stride = complex_arg("Lambda", lambda, d, &n, &h);
  p.C_stride = complex_arg("C", C, d, &n, &h);
  p.P_stride = P.defined() ? complex_arg("P", P, d, &n, &h) : 0;
  p.B_stride = B.defined() ? complex_arg("B", B, d, &n, &h) : 0;
  if (dt.defined()) {
    check_like("dt", dt, d);
    if (dt.ndim() != 1) fail_shape("dt", "(h) per channel, or a number", dt.shape);
    if (h < 0) h = dt.size(0);
    if (dt.size(0) != h) fail_shape("dt", "(h) with h = " + std::to_string(h), dt.shape);
  } else if (!std::isfinite(p.dt_value) || p.dt_value <= 0) {
    fail_arg("dt: expected a positive finite number or a (h) tensor, got " + std::to_string(p.dt_value));
  }
  if (h < 0) h = 1;
  if (n < 1) fail_range("Lambda: at least one mode is needed");
  if (p.L < 1) fail_range("L: expected a positive kernel length, got " + std::to_string(p.L));
  p.h = h;
  p.n = n;
  Tensor l = dense(lambda), pp = P.defined() ? dense(P) : Tensor{}, b = B.defined() ? dense(B) : Tensor{}, c = dense(C),
         t = dt.defined() ? dense(dt) : Tensor{};
  Tensor K = empty({h, p.L}, d, Device{});
  p.lambda = l.data();
  p.P = pp.defined() ? pp.data() : nullptr;
  p.B = b.defined() ? b.data() : nullptr;
  p.C = c.data();
  p.dt = t.defined() ? t.data() : nullptr;
  p.K = K.data();
  run_cpu({l, pp, b, c, t}, {K}, [p] { s4_kernel_cpu(p); });
  return K;
}

}  // namespace

Tensor s4d_kernel(const Tensor& lambda, const Tensor& B, const Tensor& C, const Tensor& dt, double dt_value, int64_t L,
                  Method method, bool conjugate) {
  if (method != Method::Zoh && method != Method::Bilinear) fail_arg("method: s4dKernel supports 'zoh' and 'bilinear'");
  S4KernelParams p{};
  p.dplr = false;
  p.method = method;
  p.conjugate = conjugate;
  p.L = L;
  p.dt_value = dt_value;
  return build(p, lambda, Tensor{}, B, C, dt);
}

Tensor s4_kernel(const Tensor& lambda, const Tensor& P, const Tensor& B, const Tensor& C, const Tensor& dt, double dt_value,
                 int64_t L, bool conjugate) {
  if (!P.defined()) fail_arg("P: required");
  if (!B.defined()) fail_arg("B: required");
  S4KernelParams p{};
  p.dplr = true;
  p.method = Method::Bilinear;
  p.conjugate = conjugate;
  p.L = L;
  p.dt_value = dt_value;
  return build(p, lambda, P, B, C, dt);
}

}  // namespace ss::classical
