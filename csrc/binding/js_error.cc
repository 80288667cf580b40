#include "binding/js_error.h"

namespace ss::binding {

Napi::Error make_js_error(Napi::Env env, const Error& e) {
  Napi::Error err = e.kind() == ErrorKind::Type    ? Napi::TypeError::New(env, e.what())
                    : e.kind() == ErrorKind::Range ? Napi::RangeError::New(env, e.what())
                                                   : Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, e.code()));
  return err;
}

void throw_js(Napi::Env env, const Error& e) { throw make_js_error(env, e); }

}  // namespace ss::binding
