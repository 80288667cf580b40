// selectiveScanForward(opts) / selectiveScanBackward(opts): argument conversion only.
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/selective_scan_api.h"

namespace ss::binding {
namespace {

SelectiveScanInputs scan_inputs(Napi::Object o) {
  SelectiveScanInputs in;
  in.u = required_tensor(o, "u");
  in.delta = required_tensor(o, "delta");
  in.A = required_tensor(o, "A");
  in.B = required_tensor(o, "B");
  in.C = required_tensor(o, "C");
  in.D = optional_tensor(o, "D");
  in.z = optional_tensor(o, "z");
  in.delta_bias = optional_tensor(o, "deltaBias");
  in.initial_state = optional_tensor(o, "initialState");
  in.seq_idx = optional_tensor(o, "seqIdx");
  in.delta_softplus = optional_bool(o, "deltaSoftplus", false);
  return in;
}

Napi::Value forward(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "selectiveScan");
  SelectiveScanOutputs r = selective_scan(scan_inputs(o), optional_bool(o, "returnLastState", false),
                                          optional_bool(o, "returnCheckpoints", false), optional_tensor(o, "lastStateOut"));
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("y", from_tensor(info.Env(), r.y));
  set_tensor_if(out, "lastState", r.last_state);
  set_tensor_if(out, "checkpoints", r.checkpoints);
  return out;
}

Napi::Value backward(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "selectiveScan");
  SelectiveScanGrads g = selective_scan_backward(scan_inputs(o), required_tensor(o, "dy"), optional_tensor(o, "dLastState"),
                                                 optional_tensor(o, "checkpoints"));
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  set_tensor_if(out, "du", g.du);
  set_tensor_if(out, "ddelta", g.ddelta);
  set_tensor_if(out, "dA", g.dA);
  set_tensor_if(out, "dB", g.dB);
  set_tensor_if(out, "dC", g.dC);
  set_tensor_if(out, "dD", g.dD);
  set_tensor_if(out, "dz", g.dz);
  set_tensor_if(out, "dDeltaBias", g.d_delta_bias);
  set_tensor_if(out, "dInitialState", g.d_initial_state);
  return out;
}

}  // namespace

SS_EXPORT("selectiveScanForward", forward);
SS_EXPORT("selectiveScanBackward", backward);

}  // namespace ss::binding
