// Tensor creation, copies, reads and release.
#include <chrono>
#include "binding/async.h"
#include "binding/convert.h"
#include "binding/registry.h"
#include "ops/tensor_ops.h"

namespace ss::binding {
namespace {

// fromData(typedArray, shape, dtype, device)
Napi::Value from_data(const Napi::CallbackInfo& info) {
  Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
  auto shape = to_shape(info[1], "shape");
  DType dtype = to_dtype(info[2], "dtype");
  Device device = to_device(info[3], "device");
  HostFormat fmt;
  switch (arr.TypedArrayType()) {
    case napi_float32_array: fmt = HostFormat::F32; break;
    case napi_float64_array: fmt = HostFormat::F64; break;
    case napi_int32_array: fmt = HostFormat::I32; break;
    case napi_uint16_array: fmt = HostFormat::Bits16; break;
    default: fail("ERR_INVALID_ARG", ErrorKind::Type, "data: expected Float32Array, Float64Array, Int32Array or Uint16Array");
  }
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (static_cast<int64_t>(arr.ElementLength()) != n)
    fail("ERR_SHAPE", ErrorKind::Range, "data: " + std::to_string(arr.ElementLength()) + " elements do not fill shape " + shape_str(shape) + " (" + std::to_string(n) + ")");
  const void* p = static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  return from_tensor(info.Env(), from_host(p, fmt, shape, dtype, device));
}

// fill(shape, dtype, device, kind, seed, a, b)
Napi::Value fill_binding(const Napi::CallbackInfo& info) {
  auto shape = to_shape(info[0], "shape");
  DType dtype = to_dtype(info[1], "dtype");
  Device device = to_device(info[2], "device");
  auto kind = static_cast<FillKind>(info[3].As<Napi::Number>().Int32Value());
  double seed = info[4].As<Napi::Number>().DoubleValue();
  double a = info[5].As<Napi::Number>().DoubleValue(), b = info[6].As<Napi::Number>().DoubleValue();
  return from_tensor(info.Env(), fill(shape, dtype, device, kind, static_cast<uint64_t>(seed), a, b));
}

// copyTo(tensor, dtype, device): a fresh contiguous copy
Napi::Value copy_to_binding(const Napi::CallbackInfo& info) {
  Tensor t = to_tensor(info[0], "tensor");
  return from_tensor(info.Env(), copy_to(t, to_dtype(info[1], "dtype"), to_device(info[2], "device")));
}

// view(tensor, shape, strides, offset): the handle of another tensor over the same storage (the
// caller has its metadata: building a descriptor here cost more than the rest of a view, ~9 µs).
// Checked to stay inside the storage, so a view can never reach memory it does not own.
Napi::Value view(const Napi::CallbackInfo& info) {
  Tensor t = to_tensor(info[0], "tensor");
  t.shape = to_shape(info[1], "shape");
  t.strides = to_shape(info[2], "strides");
  t.offset = static_cast<int64_t>(info[3].As<Napi::Number>().DoubleValue());
  if (t.shape.size() != t.strides.size() || t.shape.size() > 8)
    fail("ERR_SHAPE", ErrorKind::Range, "view: shape and strides must have the same length (at most 8)");
  int64_t lo = t.offset, hi = t.offset, n = 1;
  for (size_t i = 0; i < t.shape.size(); ++i) {
    if (t.shape[i] < 0 || t.strides[i] < 0) fail("ERR_SHAPE", ErrorKind::Range, "view: negative size or stride");
    n *= t.shape[i];
    hi += (t.shape[i] - 1) * t.strides[i];
  }
  int64_t capacity = static_cast<int64_t>(t.storage->bytes() / dtype_size(t.dtype));
  if (n > 0 && (lo < 0 || hi >= capacity))
    fail("ERR_SHAPE", ErrorKind::Range, "view: " + shape_str(t.shape) + " reaches outside its storage");
  return tensor_handle(info.Env(), t);
}

// release(handle): drops this handle's reference now (memory goes once queued work is done)
Napi::Value release(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) info[0].As<Napi::External<Holder>>().Data()->tensor.storage.reset();
  return info.Env().Undefined();
}

// copyInto(dst, src): dst <- src in place (dst contiguous)
Napi::Value copy_into_binding(const Napi::CallbackInfo& info) {
  copy_into(to_tensor(info[0], "dst"), to_tensor(info[1], "src"));
  return info.Env().Undefined();
}

std::function<void(Done)> reader(const Tensor& t, void* dst, bool bits) {
  return [t, dst, bits](Done done) { read_async(t, dst, bits, std::move(done)); };
}

// read(tensor, bits) -> Promise<ArrayBuffer>
Napi::Value read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor t = to_tensor(info[0], "tensor");
  bool bits = info[1].ToBoolean();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, read_bytes(t, bits));
  auto ref = std::make_shared<Napi::Reference<Napi::ArrayBuffer>>(Napi::Persistent(buf));
  return run_async(env, reader(t, buf.Data(), bits), [ref](Napi::Env) { return ref->Value(); });
}

// readSync(tensor, bits) -> ArrayBuffer (blocks the JS thread)
Napi::Value read_sync(const Napi::CallbackInfo& info) {
  Tensor t = to_tensor(info[0], "tensor");
  bool bits = info[1].ToBoolean();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(info.Env(), read_bytes(t, bits));
  run_sync(reader(t, buf.Data(), bits));
  return buf;
}

}  // namespace

SS_EXPORT("fromData", from_data);
SS_EXPORT("fill", fill_binding);
SS_EXPORT("copyTo", copy_to_binding);
SS_EXPORT("view", view);
SS_EXPORT("copyInto", copy_into_binding);
SS_EXPORT("release", release);
SS_EXPORT("read", read);
SS_EXPORT("readSync", read_sync);

}  // namespace ss::binding
