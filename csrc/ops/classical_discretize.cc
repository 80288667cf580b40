#include "ops/classical_discretize.h"
#include <cmath>
#include "core/error.h"
#include "ops/classical_common.h"
#include "ops/dispatch.h"

namespace ss::classical {

Method parse_method(const std::string& s, bool allow_euler) {
  if (s == "zoh") return Method::Zoh;
  if (s == "bilinear") return Method::Bilinear;
  if (allow_euler && s == "euler") return Method::Euler;
  if (allow_euler && s == "backward-euler") return Method::BackwardEuler;
  fail_arg("method: expected " + std::string(allow_euler ? "'zoh', 'bilinear', 'euler' or 'backward-euler'" : "'zoh' or 'bilinear'") +
           ", got '" + s + "'");
}

Discretized discretize(const Tensor& Ain, const Tensor& Bin, double dt, Method method, bool diagonal, bool complex) {
  DType d = check_float_cpu("A", Ain);
  check_like("B", Bin, d);
  if (!std::isfinite(dt) || dt <= 0) fail_arg("dt: expected a positive finite number, got " + std::to_string(dt));
  DiscretizeParams p{};
  p.method = method;
  p.dtype = d;
  p.dt = dt;
  if (complex) {
    p.structure = Structure::ComplexDiagonal;
    if (Ain.ndim() != 2 || Ain.size(1) != 2) fail_shape("A", "(n, 2) for a complex diagonal (re, im)", Ain.shape);
  } else if (diagonal || Ain.ndim() == 1) {
    p.structure = Structure::Diagonal;
    if (Ain.ndim() != 1) fail_shape("A", "(n) for a real diagonal", Ain.shape);
  } else {
    p.structure = Structure::Dense;
    if (Ain.ndim() != 2 || Ain.size(0) != Ain.size(1)) fail_shape("A", "(n, n), (n) for a diagonal or (n, 2) with complex: true", Ain.shape);
  }
  p.n = Ain.size(0);
  if (p.n < 1) fail_range("A: the state size n must be at least 1");
  if (Bin.ndim() < 1 || Bin.size(0) != p.n) fail_shape("B", "(n, m) with n = " + std::to_string(p.n), Bin.shape);
  p.m = Bin.ndim() == 1 ? 1 : Bin.size(1);
  p.b_complex = complex && Bin.ndim() == 3;
  if (p.b_complex) expect_shape("B", Bin, {p.n, p.m, 2}, "(n, m, 2)");
  else if (Bin.ndim() > 2) fail_shape("B", complex ? "(n, m) real or (n, m, 2) complex" : "(n, m)", Bin.shape);
  Tensor A = dense(Ain), B = dense(Bin);
  Discretized out;
  out.Ad = empty(A.shape, d, Device{});
  out.Bd = empty(complex ? std::vector<int64_t>{p.n, p.m, 2} : std::vector<int64_t>{p.n, p.m}, d, Device{});
  p.A = A.data();
  p.B = B.data();
  p.Ad = out.Ad.data();
  p.Bd = out.Bd.data();
  run_cpu({A, B}, {out.Ad, out.Bd}, [p] { discretize_cpu(p); });
  return out;
}

}  // namespace ss::classical
