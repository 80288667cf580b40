// CUDA graph capture and replay (see cuda/runtime.h). Only compiled with CUDA.
#ifdef STATESPACE_WITH_CUDA
#include "binding/convert.h"
#include "binding/registry.h"
#include "cuda/runtime.h"

namespace ss::binding {
namespace {

struct Graph {
  void* exec;
  int device;
};

int cuda_index(const Napi::Value& v) {
  Device d = to_device(v, "device");
  if (!d.is_cuda()) fail("ERR_DEVICE", ErrorKind::Type, "captureGraph: expected a CUDA device, got " + d.str());
  return d.index;
}

Napi::Value graph_begin(const Napi::CallbackInfo& info) {
  cuda::begin_capture(cuda_index(info[0]));
  return info.Env().Undefined();
}

// graphEnd(device, discard) -> External<Graph> | undefined
Napi::Value graph_end(const Napi::CallbackInfo& info) {
  int device = cuda_index(info[0]);
  void* exec = cuda::end_capture(device, info[1].ToBoolean());
  if (!exec) return info.Env().Undefined();
  return Napi::External<Graph>::New(info.Env(), new Graph{exec, device}, [](Napi::Env, Graph* g) {
    if (g->exec) cuda::destroy_graph(g->exec);
    delete g;
  });
}

Napi::Value graph_replay(const Napi::CallbackInfo& info) {
  Graph* g = info[0].As<Napi::External<Graph>>().Data();
  if (!g->exec) fail("ERR_DISPOSED", ErrorKind::Plain, "CudaGraph: the graph has been disposed");
  cuda::replay_graph(g->exec, g->device);
  return info.Env().Undefined();
}

Napi::Value graph_destroy(const Napi::CallbackInfo& info) {
  Graph* g = info[0].As<Napi::External<Graph>>().Data();
  if (g->exec) cuda::destroy_graph(g->exec);
  g->exec = nullptr;
  return info.Env().Undefined();
}

}  // namespace

SS_EXPORT("graphBegin", graph_begin);
SS_EXPORT("graphEnd", graph_end);
SS_EXPORT("graphReplay", graph_replay);
SS_EXPORT("graphDestroy", graph_destroy);

}  // namespace ss::binding
#endif
