// rmsNormLinear: argument conversion only.
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/decode_proj.h"

namespace ss::binding {
namespace {

Napi::Value rms_norm_linear_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "rmsNormLinear");
  DecodeProjArgs a;
  a.x = required_tensor(o, "x");
  a.residual = optional_tensor(o, "residual");
  a.norm_weight = required_tensor(o, "normWeight");
  a.z = optional_tensor(o, "z");
  a.eps = optional_number(o, "eps", 1e-5);
  a.weight = required_tensor(o, "weight");
  a.bias = optional_tensor(o, "bias");
  a.conv_state = optional_tensor(o, "convState");
  if (a.conv_state.defined()) {
    a.conv_weight = required_tensor(o, "convWeight");
    a.conv_bias = optional_tensor(o, "convBias");
    const double start = optional_number(o, "convStart", -1);
    if (start < 0 || start != static_cast<double>(static_cast<int64_t>(start)))
      fail("ERR_INVALID_ARG", ErrorKind::Type, "convStart: expected a non-negative integer");
    a.conv_start = static_cast<int64_t>(start);
    Napi::Value act = o.Get("activation");
    a.silu = act.IsString() && act.As<Napi::String>().Utf8Value() == "silu";
    if (!a.silu && !act.IsUndefined() && !act.IsNull()) fail("ERR_INVALID_ARG", ErrorKind::Type, "activation: expected 'silu' or null");
  }
  DecodeProjResult r = decode_projection(a);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("y", from_tensor(info.Env(), r.y));
  if (r.residual_out.defined()) out.Set("residualOut", from_tensor(info.Env(), r.residual_out));
  return out;
}

}  // namespace

SS_EXPORT("rmsNormLinear", rms_norm_linear_binding);

}  // namespace ss::binding
