// causalConv1d / causalConv1dBackward / causalConv1dUpdate: argument conversion only.
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/conv1d.h"

namespace ss::binding {
namespace {

Conv1dArgs conv_args(Napi::Object o, bool backward) {
  Conv1dArgs a;
  a.x = required_tensor(o, "x");
  a.weight = required_tensor(o, "weight");
  a.bias = optional_tensor(o, "bias");
  a.initial_states = optional_tensor(o, "initialStates");
  a.seq_idx = optional_tensor(o, "seqIdx");
  a.silu = silu_activation(o);
  a.return_final_states = optional_bool(o, "returnFinalStates", false);
  if (!backward) a.final_states_out = optional_tensor(o, "finalStatesOut");
  if (backward) {
    a.dy = required_tensor(o, "dy");
    a.dfinal_states = optional_tensor(o, "dFinalStates");
  }
  return a;
}

Napi::Value conv_fwd(const Napi::CallbackInfo& info) {
  Conv1dResult r = causal_conv1d(conv_args(options_arg(info, "causalConv1d"), false));
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("y", from_tensor(info.Env(), r.y));
  if (r.final_states.defined()) out.Set("finalStates", from_tensor(info.Env(), r.final_states));
  return out;
}

Napi::Value conv_bwd(const Napi::CallbackInfo& info) {
  Conv1dGrads g = causal_conv1d_backward(conv_args(options_arg(info, "causalConv1d"), true));
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("dx", from_tensor(env, g.dx));
  out.Set("dweight", from_tensor(env, g.dweight));
  if (g.dbias.defined()) out.Set("dbias", from_tensor(env, g.dbias));
  if (g.dinitial_states.defined()) out.Set("dInitialStates", from_tensor(env, g.dinitial_states));
  return out;
}

Napi::Value conv_update(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "causalConv1d");
  Tensor y = causal_conv1d_update(required_tensor(o, "x"), required_tensor(o, "convState"), required_tensor(o, "weight"),
                                  optional_tensor(o, "bias"), silu_activation(o), optional_tensor(o, "convStateIndices"));
  return from_tensor(info.Env(), y);
}

}  // namespace

SS_EXPORT("causalConv1d", conv_fwd);
SS_EXPORT("causalConv1dBackward", conv_bwd);
SS_EXPORT("causalConv1dUpdate", conv_update);

}  // namespace ss::binding
