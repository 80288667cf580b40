#include "ops/classical_kalman.h"
#include <string>
#include "core/error.h"
#include "ops/classical_common.h"
#include "ops/dispatch.h"

namespace ss::classical {

KalmanResult kalman(const Tensor& A, const Tensor& B, const Tensor& C, const Tensor& Q, const Tensor& R, const Tensor& x0,
                    const Tensor& P0, const Tensor& u, const Tensor& z, bool smooth) {
  DType d = check_float_cpu("A", A);
  KalmanParams p{};
  p.dtype = d;
  p.smooth = smooth;
  if (A.ndim() != 2 || A.size(0) != A.size(1) || A.size(0) < 1) fail_shape("A", "(n, n) with n >= 1", A.shape);
  p.n = A.size(0);
  const std::string n = std::to_string(p.n);
  for (auto [name, t] : {std::pair<const char*, const Tensor*>{"C", &C}, {"Q", &Q}, {"R", &R}, {"x0", &x0}, {"P0", &P0}, {"z", &z}})
    check_like(name, *t, d);
  if (C.ndim() != 2 || C.size(1) != p.n || C.size(0) < 1) fail_shape("C", "(p, n) with n = " + n, C.shape);
  p.p = C.size(0);
  expect_shape("Q", Q, {p.n, p.n}, "(n, n)");
  expect_shape("R", R, {p.p, p.p}, "(p, p)");
  expect_shape("P0", P0, {p.n, p.n}, "(n, n)");
  const bool batched = z.ndim() == 3;
  if ((z.ndim() != 2 && z.ndim() != 3) || z.size(-1) != p.p)
    fail_shape("z", "(T, p) or (batch, T, p) with p = " + std::to_string(p.p), z.shape);
  p.batch = batched ? z.size(0) : 1;
  p.T = z.size(-2);
  if (p.T < 1) fail_range("z: at least one time step is needed");
  if (x0.ndim() == 1) {
    expect_shape("x0", x0, {p.n}, "(n)");
    p.x0_stride = 0;
  } else {
    expect_shape("x0", x0, {p.batch, p.n}, "(batch, n)");
    p.x0_stride = p.n;
  }
  if (B.defined() != u.defined()) fail_arg(B.defined() ? "u: required when B is given" : "B: required when u is given");
  if (B.defined()) {
    check_like("B", B, d);
    check_like("u", u, d);
    if (B.ndim() != 2 || B.size(0) != p.n) fail_shape("B", "(n, m) with n = " + n, B.shape);
    p.m = B.size(1);
    std::vector<int64_t> want = batched ? std::vector<int64_t>{p.batch, p.T, p.m} : std::vector<int64_t>{p.T, p.m};
    expect_shape("u", u, want, batched ? "(batch, T, m)" : "(T, m)");
  }
  Tensor a = dense(A), b = B.defined() ? dense(B) : Tensor{}, c = dense(C), q = dense(Q), r = dense(R), xx = dense(x0),
         p0 = dense(P0), uu = u.defined() ? dense(u) : Tensor{}, zz = dense(z);
  std::vector<int64_t> lead = batched ? std::vector<int64_t>{p.batch} : std::vector<int64_t>{};
  auto with = [&](std::vector<int64_t> tail) {
    std::vector<int64_t> s = lead;
    s.insert(s.end(), tail.begin(), tail.end());
    return s;
  };
  KalmanResult out{empty(with({p.T, p.n}), d, Device{}), empty(with({p.T, p.n, p.n}), d, Device{}), empty(lead, d, Device{})};
  p.A = a.data();
  p.B = b.defined() ? b.data() : nullptr;
  p.C = c.data();
  p.Q = q.data();
  p.R = r.data();
  p.x0 = xx.data();
  p.P0 = p0.data();
  p.u = uu.defined() ? uu.data() : nullptr;
  p.z = zz.data();
  p.means = out.means.data();
  p.covs = out.covs.data();
  p.loglik = out.loglik.data();
  run_cpu({a, b, c, q, r, xx, p0, uu, zz}, {out.means, out.covs, out.loglik}, [p] { kalman_cpu(p); });
  return out;
}

}  // namespace ss::classical
