// Conversion between JS values and core types. A JS tensor is an object with
// `_h` (External holding a StoragePtr; null once disposed), `shape`, `strides`, `offset`, `dtype`.
#pragma once
#include <napi.h>
#include <string>
#include <vector>
#include "core/tensor.h"

namespace ss::binding {

struct Holder {
  StoragePtr storage;
};

Tensor to_tensor(Napi::Value v, const std::string& name);
Tensor required_tensor(Napi::Object opts, const char* name);
Tensor optional_tensor(Napi::Object opts, const char* name);  // undefined/null -> !defined()
double optional_number(Napi::Object opts, const char* name, double fallback);
bool optional_bool(Napi::Object opts, const char* name, bool fallback);
std::vector<int64_t> to_shape(Napi::Value v, const std::string& name);
DType to_dtype(Napi::Value v, const std::string& name);
Device to_device(Napi::Value v, const std::string& name);

// A new JS tensor descriptor that owns a reference to t's storage.
Napi::Object from_tensor(Napi::Env env, const Tensor& t);
Napi::External<Holder> new_handle(Napi::Env env, StoragePtr s);

}  // namespace ss::binding
