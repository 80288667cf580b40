// selectiveStateUpdate: argument conversion only.
#include <vector>
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/state_update.h"
#ifdef STATESPACE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace ss::binding {
namespace {

StateUpdateArgs parse(const Napi::CallbackInfo& info) {
  Napi::Object o = options_arg(info, "selectiveStateUpdate");
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
  a.dt_proj = optional_tensor(o, "dtProj");
  a.state_indices = optional_tensor(o, "stateIndices");
  a.dt_softplus = optional_bool(o, "dtSoftplus", false);
  a.read_state_early = optional_bool(o, "readStateEarly", false);
  // [min, max]; Infinity (or null) for an open end, as in transformers' time_step_limit.
  a.has_dt_limit = optional_range(o, "dtLimit", &a.dt_min, &a.dt_max);
  return a;
}

Napi::Value state_update(const Napi::CallbackInfo& info) { return from_tensor(info.Env(), selective_state_update(parse(info))); }

// benchSelectiveStateUpdate(opts, states, iters) -> device ms per step, for benchmarks: the
// steps are issued from a C++ loop (rotating over `states`), so the time is the kernel's, not
// the pace at which JS can issue calls.
Napi::Value bench_state_update(const Napi::CallbackInfo& info) {
  StateUpdateArgs a = parse(info);
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<Tensor> states;
  for (uint32_t i = 0; i < arr.Length(); ++i) states.push_back(to_tensor(arr.Get(i), "states"));
  const int iters = info[2].As<Napi::Number>().Int32Value();
  Device d = a.state.device();
  if (d.is_cpu() || states.empty() || iters < 1) fail("ERR_INVALID_ARG", ErrorKind::Type, "benchSelectiveStateUpdate: CUDA states and iters >= 1");
#ifdef STATESPACE_WITH_CUDA
  auto step = [&](int i) {
    a.state = states[i % states.size()];
    selective_state_update(a);
  };
  for (int i = 0; i < 3; ++i) step(i);  // warm-up
  void* e0 = cuda::timing_event_record(d.index);
  for (int i = 0; i < iters; ++i) step(i);
  void* e1 = cuda::timing_event_record(d.index);
  double ms = cuda::timing_event_elapsed_ms(e0, e1) / iters;
  cuda::timing_event_destroy(e0);
  cuda::timing_event_destroy(e1);
  return Napi::Number::New(info.Env(), ms);
#else
  fail("ERR_DEVICE", ErrorKind::Type, "benchSelectiveStateUpdate: statespace was built without CUDA");
#endif
}

}  // namespace

SS_EXPORT("selectiveStateUpdate", state_update);
SS_EXPORT("benchSelectiveStateUpdate", bench_state_update);

}  // namespace ss::binding
