// Conversion between JS values and core types. A JS tensor is an object whose `_h` is an
// External holding the whole native Tensor (storage reference, shape, strides, offset, dtype);
// `_h` is null once disposed. Every JS tensor (a view too) has its own handle, and its metadata
// never changes, so reading a tensor argument is one property lookup.
#pragma once
#include <napi.h>
#include <string>
#include <vector>
#include "core/tensor.h"

namespace ss::binding {

struct Holder {
  Tensor tensor;  // tensor.storage is reset by release()
};

Tensor to_tensor(Napi::Value v, const std::string& name);
Tensor required_tensor(Napi::Object opts, const char* name);
Tensor optional_tensor(Napi::Object opts, const char* name);  // undefined/null -> !defined()
double optional_number(Napi::Object opts, const char* name, double fallback);
bool optional_bool(Napi::Object opts, const char* name, bool fallback);
// The `activation` option: true for 'silu', false when absent or null (ERR_INVALID_ARG otherwise).
bool silu_activation(Napi::Object opts);
std::vector<int64_t> to_shape(Napi::Value v, const std::string& name);
DType to_dtype(Napi::Value v, const std::string& name);
Device to_device(Napi::Value v, const std::string& name);

// The options object an op takes as its first argument (ERR_INVALID_ARG naming `op` otherwise).
Napi::Object options_arg(const Napi::CallbackInfo& info, const char* op);
// An optional [lo, hi] pair; a null/undefined end is open (-Infinity / +Infinity). False when absent.
bool optional_range(Napi::Object opts, const char* name, double* lo, double* hi);

// A new handle (the `_h` External) that owns a reference to t's storage.
Napi::External<Holder> tensor_handle(Napi::Env env, const Tensor& t);
// A new JS tensor descriptor (its handle and metadata; no strides or offset when contiguous from
// offset 0) that owns a reference to t's storage.
Napi::Object from_tensor(Napi::Env env, const Tensor& t);
// o[name] = t as a JS tensor, when t is defined (optional outputs and gradients).
void set_tensor_if(Napi::Object o, const char* name, const Tensor& t);

}  // namespace ss::binding
