// The classical toolkit's functions: argument conversion and result objects only.
#include <cmath>
#include <string>
#include "binding/convert.h"
#include "binding/registry.h"
#include "core/error.h"
#include "ops/classical_discretize.h"
#include "ops/classical_hippo.h"
#include "ops/classical_kalman.h"
#include "ops/classical_lti.h"
#include "ops/classical_s4.h"

namespace ss::binding {
namespace {

std::string string_arg(Napi::Value v, const char* name, const char* fallback = nullptr) {
  if ((v.IsUndefined() || v.IsNull()) && fallback) return fallback;
  if (!v.IsString()) fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": expected a string");
  return v.As<Napi::String>().Utf8Value();
}

int64_t int_arg(Napi::Value v, const char* name) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(d) || d != std::floor(d)) fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": expected an integer");
  return static_cast<int64_t>(d);
}

// dt as a number, or as a per-channel tensor (returned; *value set to NaN).
Tensor dt_arg(Napi::Object o, double* value) {
  Napi::Value v = o.Get("dt");
  *value = NAN;
  if (v.IsNumber()) {
    *value = v.As<Napi::Number>().DoubleValue();
    return Tensor{};
  }
  if (v.IsUndefined() || v.IsNull()) fail("ERR_INVALID_ARG", ErrorKind::Type, "dt: required");
  return to_tensor(v, "dt");
}

Napi::Object result(Napi::Env env, std::initializer_list<std::pair<const char*, const Tensor*>> items) {
  Napi::Object r = Napi::Object::New(env);
  for (auto& [k, t] : items) r.Set(k, from_tensor(env, *t));
  return r;
}

// classicalDiscretize({A, B, dt, method, diagonal?, complex?}) -> {Ad, Bd}
Napi::Value discretize_b(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "classical");
  Tensor A = required_tensor(o, "A"), B = required_tensor(o, "B");
  Napi::Value dt = o.Get("dt");
  if (!dt.IsNumber()) fail("ERR_INVALID_ARG", ErrorKind::Type, "dt: expected a number");
  auto method = classical::parse_method(string_arg(o.Get("method"), "method", "zoh"));
  auto r = classical::discretize(A, B, dt.As<Napi::Number>().DoubleValue(), method, optional_bool(o, "diagonal", false),
                                 optional_bool(o, "complex", false));
  return result(info.Env(), {{"Ad", &r.Ad}, {"Bd", &r.Bd}});
}

// classicalHippo(kind, N, dtype) -> {A, B}
Napi::Value hippo_b(const Napi::CallbackInfo& info) {
  auto r = classical::hippo(string_arg(info[0], "kind"), int_arg(info[1], "N"), to_dtype(info[2], "dtype"));
  return result(info.Env(), {{"A", &r.A}, {"B", &r.B}});
}

// classicalNplr(kind, N, dtype) -> {Lambda, P, B, V}
Napi::Value nplr_b(const Napi::CallbackInfo& info) {
  auto r = classical::nplr(string_arg(info[0], "kind"), int_arg(info[1], "N"), to_dtype(info[2], "dtype"));
  return result(info.Env(), {{"Lambda", &r.lambda}, {"P", &r.P}, {"B", &r.B}, {"V", &r.V}});
}

// classicalS4dInit(kind, N, dtype) -> {Lambda, B}
Napi::Value s4d_init_b(const Napi::CallbackInfo& info) {
  auto r = classical::s4d_init(string_arg(info[0], "kind"), int_arg(info[1], "N"), to_dtype(info[2], "dtype"));
  return result(info.Env(), {{"Lambda", &r.lambda}, {"B", &r.B}});
}

// classicalSimulate({A, B, C, D?, u, x0?}) -> {y, state}
Napi::Value simulate_b(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "classical");
  auto r = classical::simulate(required_tensor(o, "A"), required_tensor(o, "B"), required_tensor(o, "C"), optional_tensor(o, "D"),
                               required_tensor(o, "u"), optional_tensor(o, "x0"));
  return result(info.Env(), {{"y", &r.y}, {"state", &r.x_last}});
}

// classicalKernel({A, B, C, L}) -> K
Napi::Value kernel_b(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "classical");
  Tensor K = classical::kernel(required_tensor(o, "A"), required_tensor(o, "B"), required_tensor(o, "C"), int_arg(o.Get("L"), "L"));
  return from_tensor(info.Env(), K);
}

// classicalConvolve({u, K, D?}) -> y
Napi::Value convolve_b(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "classical");
  return from_tensor(info.Env(), classical::convolve(required_tensor(o, "u"), required_tensor(o, "K"), optional_tensor(o, "D")));
}

// classicalS4dKernel({Lambda, B?, C, dt, L, method, conjugate}) -> K (h, L)
Napi::Value s4d_kernel_b(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "classical");
  double dtv;
  Tensor dt = dt_arg(o, &dtv);
  auto method = classical::parse_method(string_arg(o.Get("method"), "method", "zoh"), false);
  Tensor K = classical::s4d_kernel(required_tensor(o, "Lambda"), optional_tensor(o, "B"), required_tensor(o, "C"), dt, dtv,
                                   int_arg(o.Get("L"), "L"), method, optional_bool(o, "conjugate", false));
  return from_tensor(info.Env(), K);
}

// classicalS4Kernel({Lambda, P, B, C, dt, L, conjugate}) -> K (h, L)
Napi::Value s4_kernel_b(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "classical");
  double dtv;
  Tensor dt = dt_arg(o, &dtv);
  Tensor K = classical::s4_kernel(required_tensor(o, "Lambda"), required_tensor(o, "P"), required_tensor(o, "B"),
                                  required_tensor(o, "C"), dt, dtv, int_arg(o.Get("L"), "L"), optional_bool(o, "conjugate", false));
  return from_tensor(info.Env(), K);
}

// classicalKalman({A, B?, C, Q, R, x0, P0, u?, z}, smooth) -> {means, covs, logLik}
Napi::Value kalman_b(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "classical");
  auto r = classical::kalman(required_tensor(o, "A"), optional_tensor(o, "B"), required_tensor(o, "C"), required_tensor(o, "Q"),
                             required_tensor(o, "R"), required_tensor(o, "x0"), required_tensor(o, "P0"), optional_tensor(o, "u"),
                             required_tensor(o, "z"), info[1].ToBoolean());
  return result(info.Env(), {{"means", &r.means}, {"covs", &r.covs}, {"logLik", &r.loglik}});
}

}  // namespace

SS_EXPORT("classicalDiscretize", discretize_b);
SS_EXPORT("classicalHippo", hippo_b);
SS_EXPORT("classicalNplr", nplr_b);
SS_EXPORT("classicalS4dInit", s4d_init_b);
SS_EXPORT("classicalSimulate", simulate_b);
SS_EXPORT("classicalKernel", kernel_b);
SS_EXPORT("classicalConvolve", convolve_b);
SS_EXPORT("classicalS4dKernel", s4d_kernel_b);
SS_EXPORT("classicalS4Kernel", s4_kernel_b);
SS_EXPORT("classicalKalman", kalman_b);

}  // namespace ss::binding
