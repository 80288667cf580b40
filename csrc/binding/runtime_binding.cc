// Devices, build information, memory accounting, synchronisation and timing helpers.
#include <chrono>
#include <cstring>
#include <vector>
#include "binding/async.h"
#include "binding/convert.h"
#include "binding/registry.h"
#include "core/thread_pool.h"
#include "ops/tensor_ops.h"
#ifdef STATESPACE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace ss::binding {
namespace {

Napi::Value build_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cpuThreads", cpu_threads());
#ifdef STATESPACE_WITH_CUDA
  o.Set("cuda", true);
  o.Set("cudaArchs", STATESPACE_CUDA_ARCHS);
  o.Set("cudaRuntime", cuda::runtime_version());
  o.Set("cudaDriver", cuda::driver_version());
  o.Set("cudaDevices", cuda::device_count());
  o.Set("cudaUnavailable", cuda::unavailable_reason());
#else
  o.Set("cuda", false);
  o.Set("cudaArchs", "");
  o.Set("cudaRuntime", 0);
  o.Set("cudaDriver", 0);
  o.Set("cudaDevices", 0);
  o.Set("cudaUnavailable", "statespace was built without CUDA");
#endif
#if defined(__AVX512F__)
  o.Set("cpuIsa", "avx512");
#elif defined(__AVX2__)
  o.Set("cpuIsa", "avx2");
#else
  o.Set("cpuIsa", "baseline");
#endif
  return o;
}

Napi::Value devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("device", "cpu");
  cpu.Set("name", "CPU");
  cpu.Set("threads", cpu_threads());
  out.Set(0u, cpu);
#ifdef STATESPACE_WITH_CUDA
  for (int i = 0; i < cuda::device_count(); ++i) {
    cuda::DeviceInfo d = cuda::device_info(i);
    Napi::Object g = Napi::Object::New(env);
    g.Set("device", "cuda:" + std::to_string(i));
    g.Set("name", d.name);
    g.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
    g.Set("totalMemory", static_cast<double>(d.total_memory));
    g.Set("freeMemory", static_cast<double>(d.free_memory));
    g.Set("multiprocessors", d.multiprocessors);
    g.Set("l2Bytes", static_cast<double>(d.l2_bytes));
    g.Set("sharedPerBlock", static_cast<double>(d.shared_per_block_optin));
    // theoretical DRAM bandwidth: 2 transfers per clock (DDR) x bus width
    g.Set("peakBandwidth", 2.0 * d.memory_clock_khz * 1e3 * d.memory_bus_bits / 8.0);
    out.Set(static_cast<uint32_t>(i + 1), g);
  }
#endif
  return out;
}

Napi::Value memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("inUse", static_cast<double>(cpu_bytes_in_use()));
  cpu.Set("cached", 0.0);
  o.Set("cpu", cpu);
#ifdef STATESPACE_WITH_CUDA
  for (int i = 0; i < cuda::device_count(); ++i) {
    cuda::MemoryStats m = cuda::memory_stats(i);
    Napi::Object g = Napi::Object::New(env);
    g.Set("inUse", static_cast<double>(m.in_use));
    g.Set("cached", static_cast<double>(m.reserved > m.in_use ? m.reserved - m.in_use : 0));
    o.Set("cuda:" + std::to_string(i), g);
  }
#endif
  return o;
}

Napi::Value empty_cache(const Napi::CallbackInfo& info) {
#ifdef STATESPACE_WITH_CUDA
  Device d = to_device(info[0], "device");
  if (d.is_cuda()) cuda::empty_cache(d.index);
#endif
  return info.Env().Undefined();
}

Napi::Value synchronize(const Napi::CallbackInfo& info) {
  Device d = to_device(info[0], "device");
  return run_async(info.Env(), [d](Done done) { synchronize_async(d, std::move(done)); },
                   [](Napi::Env env) { return env.Undefined(); });
}

Napi::Value synchronize_sync(const Napi::CallbackInfo& info) {
  Device d = to_device(info[0], "device");
  run_sync([d](Done done) { synchronize_async(d, std::move(done)); });
  return info.Env().Undefined();
}

// benchCopy(device, bytes, iters) -> ms per copy (device-to-device on CUDA, memcpy on the CPU)
Napi::Value bench_copy(const Napi::CallbackInfo& info) {
  Device d = to_device(info[0], "device");
  size_t bytes = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  int iters = info[2].As<Napi::Number>().Int32Value();
  if (d.is_cuda()) {
#ifdef STATESPACE_WITH_CUDA
    return Napi::Number::New(info.Env(), cuda::time_copy(d.index, bytes, iters));
#else
    fail("ERR_DEVICE", ErrorKind::Type, "device " + d.str() + " is not available: statespace was built without CUDA");
#endif
  }
  std::vector<char> a(bytes, 1), b(bytes);
  auto copy = [&](char* dst, const char* src) {
    parallel_for(static_cast<int64_t>(bytes), 1 << 20, [&](int64_t s, int64_t e) { std::memcpy(dst + s, src + s, e - s); });
  };
  copy(b.data(), a.data());
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) i & 1 ? copy(a.data(), b.data()) : copy(b.data(), a.data());
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return Napi::Number::New(info.Env(), ms / iters);
}

#ifdef STATESPACE_WITH_CUDA
// eventRecord(device) -> External; eventElapsed(a, b) -> ms. Finalizers destroy the events.
Napi::Value event_record(const Napi::CallbackInfo& info) {
  Device d = to_device(info[0], "device");
  void* ev = cuda::timing_event_record(d.index);
  return Napi::External<void>::New(info.Env(), ev, [](Napi::Env, void* e) { cuda::timing_event_destroy(e); });
}

Napi::Value event_elapsed(const Napi::CallbackInfo& info) {
  void* a = info[0].As<Napi::External<void>>().Data();
  void* b = info[1].As<Napi::External<void>>().Data();
  return Napi::Number::New(info.Env(), cuda::timing_event_elapsed_ms(a, b));
}
SS_EXPORT("eventRecord", event_record);
SS_EXPORT("eventElapsed", event_elapsed);
#endif

}  // namespace

Napi::Value set_poison_binding(const Napi::CallbackInfo& info) {
  set_poison(info[0].ToBoolean());
  return info.Env().Undefined();
}

SS_EXPORT("setPoison", set_poison_binding);
SS_EXPORT("buildInfo", build_info);
SS_EXPORT("devices", devices);
SS_EXPORT("memory", memory);
SS_EXPORT("emptyCache", empty_cache);
SS_EXPORT("synchronize", synchronize);
SS_EXPORT("synchronizeSync", synchronize_sync);
SS_EXPORT("benchCopy", bench_copy);

}  // namespace ss::binding
