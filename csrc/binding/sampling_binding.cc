// argmax: argument conversion only.
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/sampling.h"

namespace ss::binding {
namespace {

Napi::Value argmax_binding(const Napi::CallbackInfo& info) {
  return from_tensor(info.Env(), argmax(to_tensor(info[0], "x")));
}

}  // namespace

SS_EXPORT("argmax", argmax_binding);

}  // namespace ss::binding
