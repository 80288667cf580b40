// mambaDecodeStack (internal: the Mamba-1 batch-1 decode megakernel): argument conversion only.
#include <string>
#include <vector>
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/mamba_decode.h"

namespace ss::binding {
namespace {

// opts[name] as one tensor per layer; an absent optional list is empty.
std::vector<Tensor> tensor_list(Napi::Object o, const char* name, bool optional = false) {
  std::vector<Tensor> out;
  Napi::Value v = o.Get(name);
  if (optional && (v.IsUndefined() || v.IsNull())) return out;
  if (!v.IsArray()) fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": expected an array of tensors (one per layer)");
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(to_tensor(arr.Get(i), std::string(name) + "[" + std::to_string(i) + "]"));
  return out;
}

// -> true when the megakernel ran (h and the states updated), false when it does not take these
// inputs (nothing done).
Napi::Value mamba_decode(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "mambaDecodeStack");
  MambaDecodeArgs a;
  a.h = required_tensor(o, "h");
  a.norm_w = tensor_list(o, "normWeight");
  a.in_proj = tensor_list(o, "inProj");
  a.conv_w = tensor_list(o, "convWeight");
  a.conv_b = tensor_list(o, "convBias", true);
  a.conv_state = tensor_list(o, "convState");
  a.x_proj = tensor_list(o, "xProj");
  a.dt_proj = tensor_list(o, "dtProj");
  a.dt_bias = tensor_list(o, "dtBias");
  a.A = tensor_list(o, "A");
  a.D = tensor_list(o, "D", true);
  a.ssm_state = tensor_list(o, "ssmState");
  a.out_proj = tensor_list(o, "outProj");
  a.eps = optional_number(o, "eps", 1e-5);
  return Napi::Boolean::New(info.Env(), mamba_decode_stack(a));
}

}  // namespace

SS_EXPORT("mambaDecodeStack", mamba_decode);

}  // namespace ss::binding
