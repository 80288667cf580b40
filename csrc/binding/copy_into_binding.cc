// copyInto(dst, src): argument conversion only.
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/copy_into.h"

namespace ss::binding {
namespace {

Napi::Value copy_into_binding(const Napi::CallbackInfo& info) {
  copy_into(to_tensor(info[0], "dst"), to_tensor(info[1], "src"));
  return info.Env().Undefined();
}

}  // namespace

SS_EXPORT("copyInto", copy_into_binding);

}  // namespace ss::binding
