// ssdForward(opts) / ssdBackward(opts): argument conversion for the SSD chunked scan.
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/ssd_op.h"

namespace ss::binding {
namespace {

SsdInputs inputs(Napi::Object o) {
  SsdInputs in;
  in.x = required_tensor(o, "x");
  in.dt = required_tensor(o, "dt");
  in.A = required_tensor(o, "A");
  in.B = required_tensor(o, "B");
  in.C = required_tensor(o, "C");
  in.D = optional_tensor(o, "D");
  in.z = optional_tensor(o, "z");
  in.dt_bias = optional_tensor(o, "dtBias");
  in.initial_states = optional_tensor(o, "initialStates");
  in.seq_idx = optional_tensor(o, "seqIdx");
  in.chunk_size = optional_number(o, "chunkSize", 256);
  in.dt_softplus = optional_bool(o, "dtSoftplus", false);
  in.return_final_states = optional_bool(o, "returnFinalStates", false);
  optional_range(o, "dtLimit", &in.dt_min, &in.dt_max);
  return in;
}

Napi::Value ssd_forward_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "ssdChunkScan");
  SsdForwardResult r = ssd_forward(inputs(o));
  Napi::Object out = Napi::Object::New(info.Env());
  set_tensor_if(out, "y", r.y);
  set_tensor_if(out, "finalStates", r.final_states);
  out.Set("workspaceBytes", Napi::Number::New(info.Env(), static_cast<double>(r.workspace_bytes)));
  out.Set("stagedInputBytes", Napi::Number::New(info.Env(), static_cast<double>(r.staged_input_bytes)));
  return out;
}

Napi::Value ssd_backward_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "ssdChunkScan");
  SsdInputs in = inputs(o);
  Tensor dy = required_tensor(o, "dy");
  Tensor dfin = optional_tensor(o, "dFinalStates");
  SsdBackwardResult r = ssd_backward(in, dy, dfin);
  Napi::Object out = Napi::Object::New(info.Env());
  set_tensor_if(out, "dx", r.dx);
  set_tensor_if(out, "ddt", r.ddt);
  set_tensor_if(out, "dA", r.dA);
  set_tensor_if(out, "dB", r.dB);
  set_tensor_if(out, "dC", r.dC);
  set_tensor_if(out, "dD", r.dD);
  set_tensor_if(out, "dz", r.dz);
  set_tensor_if(out, "ddtBias", r.ddt_bias);
  set_tensor_if(out, "dInitialStates", r.dinitial_states);
  out.Set("workspaceBytes", Napi::Number::New(info.Env(), static_cast<double>(r.workspace_bytes)));
  return out;
}

}  // namespace

SS_EXPORT("ssdForward", ssd_forward_binding);
SS_EXPORT("ssdBackward", ssd_backward_binding);

}  // namespace ss::binding
