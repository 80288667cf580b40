// selectiveStateUpdate: argument conversion only.
#include <cmath>
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/state_update.h"

namespace ss::binding {
namespace {

Napi::Value state_update(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) fail("ERR_INVALID_ARG", ErrorKind::Type, "expected an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  StateUpdateArgs a;
  a.state = required_tensor(o, "state");
  a.x = required_tensor(o, "x");
  a.dt = required_tensor(o, "dt");
  a.A = required_tensor(o, "A");
  a.B = required_tensor(o, "B");
  a.C = required_tensor(o, "C");
  a.D = optional_tensor(o, "D");
  a.z = optional_tensor(o, "z");
  a.dt_bias = optional_tensor(o, "dtBias");
  a.state_indices = optional_tensor(o, "stateIndices");
  a.dt_softplus = optional_bool(o, "dtSoftplus", false);
  Napi::Value lim = o.Get("dtLimit");
  if (!lim.IsUndefined() && !lim.IsNull()) {
    // [min, max]; Infinity (or null) for an open end, as in transformers' time_step_limit.
    auto bound = [&](uint32_t i, double open) {
      Napi::Value v = lim.As<Napi::Array>().Get(i);
      if (v.IsNull() || v.IsUndefined()) return open;
      if (!v.IsNumber()) fail("ERR_INVALID_ARG", ErrorKind::Type, "dtLimit: expected [min, max] numbers");
      return v.As<Napi::Number>().DoubleValue();
    };
    if (!lim.IsArray() || lim.As<Napi::Array>().Length() != 2)
      fail("ERR_INVALID_ARG", ErrorKind::Type, "dtLimit: expected [min, max]");
    a.has_dt_limit = true;
    a.dt_min = bound(0, -INFINITY);
    a.dt_max = bound(1, INFINITY);
  }
  return from_tensor(info.Env(), selective_state_update(a));
}

}  // namespace

SS_EXPORT("selectiveStateUpdate", state_update);

}  // namespace ss::binding
