#include "binding/convert.h"
#include <cmath>
#include <unordered_map>

namespace ss::binding {
namespace {

std::vector<int64_t> int_array(Napi::Value v, const std::string& name) {
  if (!v.IsArray()) fail("ERR_INVALID_ARG", ErrorKind::Type, name + ": expected an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d != std::floor(d))
      fail("ERR_INVALID_ARG", ErrorKind::Type, name + ": expected integers, got a non-integer at index " + std::to_string(i));
    out[i] = static_cast<int64_t>(d);
  }
  return out;
}

}  // namespace

Tensor to_tensor(Napi::Value v, const std::string& name) {
  if (!v.IsObject()) fail("ERR_INVALID_ARG", ErrorKind::Type, name + ": expected a Tensor");
  Napi::Value h = v.As<Napi::Object>().Get("_h");
  if (h.IsNull()) fail("ERR_DISPOSED", ErrorKind::Plain, name + ": the tensor has been disposed");
  if (!h.IsExternal()) fail("ERR_INVALID_ARG", ErrorKind::Type, name + ": expected a Tensor");
  const Tensor& t = h.As<Napi::External<Holder>>().Data()->tensor;
  if (!t.storage) fail("ERR_DISPOSED", ErrorKind::Plain, name + ": the tensor has been disposed");
  return t;
}

Tensor required_tensor(Napi::Object opts, const char* name) {
  Napi::Value v = opts.Get(name);
  if (v.IsUndefined() || v.IsNull()) fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": required");
  return to_tensor(v, name);
}

Tensor optional_tensor(Napi::Object opts, const char* name) {
  Napi::Value v = opts.Get(name);
  if (v.IsUndefined() || v.IsNull()) return Tensor{};
  return to_tensor(v, name);
}

double optional_number(Napi::Object opts, const char* name, double fallback) {
  Napi::Value v = opts.Get(name);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool optional_bool(Napi::Object opts, const char* name, bool fallback) {
  Napi::Value v = opts.Get(name);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

bool silu_activation(Napi::Object opts) {
  Napi::Value v = opts.Get("activation");
  if (v.IsUndefined() || v.IsNull()) return false;
  if (v.IsString() && v.As<Napi::String>().Utf8Value() == "silu") return true;
  fail("ERR_INVALID_ARG", ErrorKind::Type, "activation: expected 'silu' or null");
}

std::vector<int64_t> to_shape(Napi::Value v, const std::string& name) { return int_array(v, name); }

Napi::Object options_arg(const Napi::CallbackInfo& info, const char* op) {
  if (!info[0].IsObject()) fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(op) + ": expected an options object");
  return info[0].As<Napi::Object>();
}

bool optional_range(Napi::Object opts, const char* name, double* lo, double* hi) {
  Napi::Value v = opts.Get(name);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 2)
    fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": expected [min, max]");
  auto end = [&](uint32_t i, double open) {
    Napi::Value e = v.As<Napi::Array>().Get(i);
    if (e.IsNull() || e.IsUndefined()) return open;
    if (!e.IsNumber()) fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": expected [min, max] numbers");
    return e.As<Napi::Number>().DoubleValue();
  };
  *lo = end(0, -INFINITY);
  *hi = end(1, INFINITY);
  return true;
}

DType to_dtype(Napi::Value v, const std::string& name) {
  DType d;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (!parse_dtype(s, &d))
    fail("ERR_DTYPE", ErrorKind::Type, name + ": expected one of float32, float16, bfloat16, int32, float64, got '" + s + "'");
  return d;
}

Device to_device(Napi::Value v, const std::string& name) {
  if (!v.IsString()) fail("ERR_DEVICE", ErrorKind::Type, name + ": expected 'cpu', 'cuda' or 'cuda:N'");
  return parse_device(v.As<Napi::String>().Utf8Value());
}

Napi::External<Holder> tensor_handle(Napi::Env env, const Tensor& t) {
  // the GC learns of host memory so unreferenced CPU tensors get collected under pressure
  int64_t bytes = t.device().is_cpu() ? static_cast<int64_t>(t.storage->bytes()) : 0;
  if (bytes) Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return Napi::External<Holder>::New(env, new Holder{t}, [bytes](Napi::Env env, Holder* h) {
    if (bytes) Napi::MemoryManagement::AdjustExternalMemory(env, -bytes);
    delete h;
  });
}

namespace {

// The property names of a descriptor and its dtype / device strings, made once per environment:
// turning C strings into JS strings was most of a descriptor's ~4 µs (every op output has one).
// They live in a JS array (N-API 8 has no references to strings), read back by index. Never
// freed (a reference must not be deleted once its environment is gone); forgotten when the
// environment is torn down, so that another one on the same thread makes its own.
struct Names {
  enum : uint32_t { kH, kShape, kStrides, kOffset, kDType, kDevice, kFixed };
  Napi::Reference<Napi::Array> strings;
  std::unordered_map<int, uint32_t> dtypes, devices;  // index in `strings` by DType; by device index (-1: cpu)

  // The index in `a` (= strings) of the string that `key` names in m; made by text() on first use.
  template <typename Text> static uint32_t index(Napi::Array a, std::unordered_map<int, uint32_t>& m, int key, Text text) {
    auto it = m.find(key);
    if (it == m.end()) {
      it = m.emplace(key, a.Length()).first;
      a.Set(it->second, Napi::String::New(a.Env(), text()));
    }
    return it->second;
  }
};

thread_local Names* thread_names = nullptr;

Names& names(Napi::Env env) {
  Names*& n = thread_names;
  if (!n) {
    n = new Names;
    env.AddCleanupHook([] { thread_names = nullptr; });
    Napi::Array a = Napi::Array::New(env);
    const char* fixed[] = {"_h", "shape", "strides", "offset", "dtype", "device"};
    for (uint32_t i = 0; i < Names::kFixed; ++i) a.Set(i, Napi::String::New(env, fixed[i]));
    n->strings = Napi::Persistent(a);
  }
  return *n;
}

}  // namespace

Napi::Object from_tensor(Napi::Env env, const Tensor& t) {
  Names& k = names(env);
  const Napi::Array n = k.strings.Value();
  Napi::Object o = Napi::Object::New(env);
  o.Set(n.Get(Names::kH), tensor_handle(env, t));
  Napi::Array shape = Napi::Array::New(env, t.shape.size());
  for (size_t i = 0; i < t.shape.size(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.shape[i])));
  o.Set(n.Get(Names::kShape), shape);
  // (a contiguous tensor at offset 0, as every op output is, leaves its strides to the reader)
  if (t.offset != 0 || !t.is_contiguous()) {
    Napi::Array strides = Napi::Array::New(env, t.strides.size());
    for (size_t i = 0; i < t.strides.size(); ++i) strides.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.strides[i])));
    o.Set(n.Get(Names::kStrides), strides);
    o.Set(n.Get(Names::kOffset), Napi::Number::New(env, static_cast<double>(t.offset)));
  }
  o.Set(n.Get(Names::kDType), n.Get(Names::index(n, k.dtypes, static_cast<int>(t.dtype), [&] { return dtype_name(t.dtype); })));
  const Device d = t.device();
  o.Set(n.Get(Names::kDevice), n.Get(Names::index(n, k.devices, d.is_cpu() ? -1 : d.index, [&] { return d.str(); })));
  return o;
}

void set_tensor_if(Napi::Object o, const char* name, const Tensor& t) {
  if (t.defined()) o.Set(name, from_tensor(o.Env(), t));
}

}  // namespace ss::binding
