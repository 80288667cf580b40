// ssdForward(opts) / ssdBackward(opts): argument conversion for the SSD chunked scan.
#include <cmath>
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
  Napi::Value lim = o.Get("dtLimit");
  if (!lim.IsUndefined() && !lim.IsNull()) {
    if (!lim.IsArray() || lim.As<Napi::Array>().Length() != 2)
      fail("ERR_INVALID_ARG", ErrorKind::Type, "dtLimit: expected [lo, hi]");
    Napi::Array a = lim.As<Napi::Array>();
    for (uint32_t i = 0; i < 2; ++i)
      if (!a.Get(i).IsNumber()) fail("ERR_INVALID_ARG", ErrorKind::Type, "dtLimit: expected two numbers [lo, hi]");
    in.dt_min = a.Get(0u).As<Napi::Number>().DoubleValue();
    in.dt_max = a.Get(1u).As<Napi::Number>().DoubleValue();
  }
  return in;
}

void set_if(Napi::Object o, const char* name, const Tensor& t) {
  if (t.defined()) o.Set(name, from_tensor(o.Env(), t));
}

Napi::Value ssd_forward_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = info[0].As<Napi::Object>();
  SsdForwardResult r = ssd_forward(inputs(o));
  Napi::Object out = Napi::Object::New(info.Env());
  set_if(out, "y", r.y);
  set_if(out, "finalStates", r.final_states);
  out.Set("workspaceBytes", Napi::Number::New(info.Env(), static_cast<double>(r.workspace_bytes)));
  return out;
}

Napi::Value ssd_backward_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = info[0].As<Napi::Object>();
  SsdInputs in = inputs(o);
  Tensor dy = required_tensor(o, "dy");
  Tensor dfin = optional_tensor(o, "dFinalStates");
  SsdBackwardResult r = ssd_backward(in, dy, dfin);
  Napi::Object out = Napi::Object::New(info.Env());
  set_if(out, "dx", r.dx);
  set_if(out, "ddt", r.ddt);
  set_if(out, "dA", r.dA);
  set_if(out, "dB", r.dB);
  set_if(out, "dC", r.dC);
  set_if(out, "dD", r.dD);
  set_if(out, "dz", r.dz);
  set_if(out, "ddtBias", r.ddt_bias);
  set_if(out, "dInitialStates", r.dinitial_states);
  out.Set("workspaceBytes", Napi::Number::New(info.Env(), static_cast<double>(r.workspace_bytes)));
  return out;
}

}  // namespace

SS_EXPORT("ssdForward", ssd_forward_binding);
SS_EXPORT("ssdBackward", ssd_backward_binding);

}  // namespace ss::binding
