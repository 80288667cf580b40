#include "binding/registry.h"
#include <string>
#include <utility>
#include <vector>
#include "binding/async.h"
#include "binding/js_error.h"

namespace ss::binding {
namespace {

std::vector<std::pair<const char*, BindingFn>>& exports_list() {
  static std::vector<std::pair<const char*, BindingFn>> v;
  return v;
}

Napi::Value trampoline(const Napi::CallbackInfo& info) {
  auto fn = reinterpret_cast<BindingFn>(info.Data());
  try {
    return fn(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    throw_js(info.Env(), e);
  } catch (const std::bad_alloc&) {
    throw_js(info.Env(), Error("ERR_OOM", ErrorKind::Range, "out of host memory"));
  } catch (const std::exception& e) {
    throw_js(info.Env(), Error("ERR_INTERNAL", ErrorKind::Plain, e.what()));
  }
}

}  // namespace

Export::Export(const char* name, BindingFn fn) { exports_list().emplace_back(name, fn); }

}  // namespace ss::binding

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  for (auto& [name, fn] : ss::binding::exports_list())
    exports.Set(name, Napi::Function::New(env, ss::binding::trampoline, name, reinterpret_cast<void*>(fn)));
  ss::binding::init_async(env);
  return exports;
}

NODE_API_MODULE(statespace, init)
