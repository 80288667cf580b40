#include "ops/classical_hippo.h"
#include "core/error.h"
#include "ops/classical_common.h"
#include "ops/dispatch.h"

namespace ss::classical {
namespace {

HippoKind parse_hippo(const std::string& s) {
  if (s == "legs") return HippoKind::LegS;
  if (s == "legt") return HippoKind::LegT;
  if (s == "lagt") return HippoKind::LagT;
  if (s == "fourier") return HippoKind::Fourier;
  fail_arg("kind: expected 'legs', 'legt', 'lagt' or 'fourier', got '" + s + "'");
}

void check_n(int64_t n, int64_t max) {
  if (n < 1 || n > max) fail_range("N: expected an integer in [1, " + std::to_string(max) + "], got " + std::to_string(n));
}

void check_dtype(DType d) {
  if (d != DType::Float32 && d != DType::Float64) fail_dtype("dtype", "float32 or float64", dtype_name(d));
}

}  // namespace

HippoResult hippo(const std::string& kind, int64_t n, DType dtype) {
  HippoKind k = parse_hippo(kind);
  check_n(n, 1 << 14);
  check_dtype(dtype);
  if (k == HippoKind::Fourier && n % 2) fail_range("N: the 'fourier' measure needs an even N (cos/sin pairs), got " + std::to_string(n));
  HippoResult r{empty({n, n}, dtype, Device{}), empty({n, 1}, dtype, Device{})};
  HippoParams p{k, n, dtype, r.A.data(), r.B.data()};
  run_cpu({}, {r.A, r.B}, [p] { hippo_cpu(p); });
  return r;
}

// The dense eigen-decomposition is O(n³), so n is capped where it stays quick (~1 s).
NplrResult nplr(const std::string& kind, int64_t n, DType dtype) {
  HippoKind k = parse_hippo(kind);
  if (k != HippoKind::LegS && k != HippoKind::Fourier)
    fail_arg("kind: nplr supports 'legs' and 'fourier' (rank-1 corrections), got '" + kind + "'");
  check_n(n, 1024);
  check_dtype(dtype);
  if (k == HippoKind::Fourier && n % 2) fail_range("N: the 'fourier' measure needs an even N (cos/sin pairs), got " + std::to_string(n));
  NplrResult r{empty({n, 2}, dtype, Device{}), empty({n, 2}, dtype, Device{}), empty({n, 2}, dtype, Device{}),
               empty({n, n, 2}, dtype, Device{})};
  NplrParams p{k, n, dtype, r.lambda.data(), r.P.data(), r.B.data(), r.V.data()};
  run_cpu({}, {r.lambda, r.P, r.B, r.V}, [p] { nplr_cpu(p); });
  return r;
}

S4dInitResult s4d_init(const std::string& kind, int64_t n, DType dtype) {
  S4dKind k;
  if (kind == "legs") k = S4dKind::LegS;
  else if (kind == "lin") k = S4dKind::Lin;
  else if (kind == "inv") k = S4dKind::Inv;
  else if (kind == "real") k = S4dKind::Real;
  else fail_arg("kind: expected 'legs', 'lin', 'inv' or 'real', got '" + kind + "'");
  check_n(n, k == S4dKind::LegS ? 512 : 1 << 20);
  check_dtype(dtype);
  S4dInitResult r{empty({n, 2}, dtype, Device{}), empty({n, 2}, dtype, Device{})};
  S4dInitParams p{k, n, dtype, r.lambda.data(), r.B.data()};
  run_cpu({}, {r.lambda, r.B}, [p] { s4d_init_cpu(p); });
  return r;
}

}  // namespace ss::classical
