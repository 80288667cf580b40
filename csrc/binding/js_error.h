// The one place JS errors are made: TypeError / RangeError / Error with a stable `code`.
#pragma once
#include <napi.h>
#include "core/error.h"

namespace ss::binding {

Napi::Error make_js_error(Napi::Env env, const Error& e);
[[noreturn]] void throw_js(Napi::Env env, const Error& e);

}  // namespace ss::binding
