// embedding, linear, rmsNorm, gatedRmsNorm and elementwise ops: argument conversion only.
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/dense.h"

namespace ss::binding {
namespace {

Napi::Value embedding_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "dense op");
  return from_tensor(info.Env(), embedding(required_tensor(o, "ids"), required_tensor(o, "weight")));
}

// normWeight, normGate, normEps, residual, argmaxOut, streamWeights, restOnSide (ops/dense.h, LinearExtras).
LinearExtras linear_extras(Napi::Object o) {
  LinearExtras ex;
  ex.norm_weight = optional_tensor(o, "normWeight");
  ex.norm_gate = optional_tensor(o, "normGate");
  ex.norm_eps = optional_number(o, "normEps", 1e-5);
  ex.residual = optional_tensor(o, "residual");
  ex.argmax_out = optional_tensor(o, "argmaxOut");
  ex.stream_weights = optional_bool(o, "streamWeights", false);
  ex.rest_on_side = optional_bool(o, "restOnSide", false);
  return ex;
}

Napi::Value linear_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "dense op");
  return from_tensor(info.Env(), linear(required_tensor(o, "x"), required_tensor(o, "weight"), optional_tensor(o, "bias"), linear_extras(o)));
}

Napi::Value linear_conv_update_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "dense op");
  const double start = optional_number(o, "convStart", -1);
  if (start < 0 || start != static_cast<double>(static_cast<int64_t>(start)))
    fail("ERR_INVALID_ARG", ErrorKind::Type, "convStart: expected a non-negative integer");
  const bool silu = silu_activation(o);
  return from_tensor(info.Env(), linear_conv_update(required_tensor(o, "x"), required_tensor(o, "weight"), optional_tensor(o, "bias"),
                                                    required_tensor(o, "convState"), required_tensor(o, "convWeight"),
                                                    optional_tensor(o, "convBias"), static_cast<int64_t>(start), silu,
                                                    linear_extras(o)));
}

Napi::Value linear_conv_update_proj_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "dense op");
  const double start = optional_number(o, "convStart", -1);
  if (start < 0 || start != static_cast<double>(static_cast<int64_t>(start)))
    fail("ERR_INVALID_ARG", ErrorKind::Type, "convStart: expected a non-negative integer");
  const bool silu = silu_activation(o);
  LinearConvProj r = linear_conv_update_proj(required_tensor(o, "x"), required_tensor(o, "weight"), optional_tensor(o, "bias"),
                                             required_tensor(o, "convState"), required_tensor(o, "convWeight"),
                                             optional_tensor(o, "convBias"), static_cast<int64_t>(start), silu,
                                             required_tensor(o, "xProj"), linear_extras(o));
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, from_tensor(info.Env(), r.out));
  out.Set(1u, from_tensor(info.Env(), r.proj));
  return out;
}

int64_t group_size(Napi::Object o) {
  double g = optional_number(o, "groupSize", 0);
  if (g < 0 || g != static_cast<double>(static_cast<int64_t>(g)))
    fail("ERR_INVALID_ARG", ErrorKind::Type, "groupSize: expected a positive integer");
  return static_cast<int64_t>(g);
}

Napi::Value rms_norm_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "dense op");
  RmsNormResult r = rms_norm(required_tensor(o, "x"), required_tensor(o, "weight"), optional_number(o, "eps", 1e-5),
                             optional_tensor(o, "residual"), Tensor{}, 0);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("y", from_tensor(info.Env(), r.y));
  if (r.residual_out.defined()) out.Set("residualOut", from_tensor(info.Env(), r.residual_out));
  return out;
}

Napi::Value gated_rms_norm_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "dense op");
  RmsNormResult r = rms_norm(required_tensor(o, "x"), required_tensor(o, "weight"), optional_number(o, "eps", 1e-5),
                             Tensor{}, optional_tensor(o, "z"), group_size(o));
  return from_tensor(info.Env(), r.y);
}

template <EltwiseOp op> Napi::Value unary(const Napi::CallbackInfo& info) {
  return from_tensor(info.Env(), eltwise(op, to_tensor(info[0], "x"), Tensor{}));
}
template <EltwiseOp op> Napi::Value binary(const Napi::CallbackInfo& info) {
  return from_tensor(info.Env(), eltwise(op, to_tensor(info[0], "a"), to_tensor(info[1], "b")));
}

Napi::Value silu_binding(const Napi::CallbackInfo& info) { return unary<EltwiseOp::Silu>(info); }
Napi::Value softplus_binding(const Napi::CallbackInfo& info) { return unary<EltwiseOp::Softplus>(info); }
Napi::Value add_binding(const Napi::CallbackInfo& info) { return binary<EltwiseOp::Add>(info); }
Napi::Value mul_binding(const Napi::CallbackInfo& info) { return binary<EltwiseOp::Mul>(info); }

Napi::Value linear_backend_binding(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), linear_backend(to_device(info[0], "device")));
}

}  // namespace

SS_EXPORT("linearBackend", linear_backend_binding);
SS_EXPORT("embedding", embedding_binding);
SS_EXPORT("linear", linear_binding);
SS_EXPORT("linearConvUpdate", linear_conv_update_binding);
SS_EXPORT("linearConvUpdateProj", linear_conv_update_proj_binding);
SS_EXPORT("rmsNorm", rms_norm_binding);
SS_EXPORT("gatedRmsNorm", gated_rms_norm_binding);
SS_EXPORT("silu", silu_binding);
SS_EXPORT("softplus", softplus_binding);
SS_EXPORT("add", add_binding);
SS_EXPORT("mul", mul_binding);

}  // namespace ss::binding
