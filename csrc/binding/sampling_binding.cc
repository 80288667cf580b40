// argmax and sampleTokens: argument conversion only.
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/sampling.h"

namespace ss::binding {
namespace {

Napi::Value argmax_binding(const Napi::CallbackInfo& info) {
  return from_tensor(info.Env(), argmax(to_tensor(info[0], "x")));
}

Napi::Value sample_tokens_binding(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "sampleTokens");
  return from_tensor(info.Env(), sample_tokens(required_tensor(o, "logits"), required_tensor(o, "temperature"), optional_tensor(o, "topK"),
                                               optional_tensor(o, "topP"), required_tensor(o, "uniform")));
}

}  // namespace

SS_EXPORT("argmax", argmax_binding);
SS_EXPORT("sampleTokens", sample_tokens_binding);

}  // namespace ss::binding
