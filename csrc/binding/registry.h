// Each *_binding.cc file registers its functions with SS_EXPORT; the module init exports them
// all. The trampoline turns ss::Error (and any C++ exception) into a coded JS error, so a
// binding function never lets an exception escape into Node.
#pragma once
#include <napi.h>

namespace ss::binding {

using BindingFn = Napi::Value (*)(const Napi::CallbackInfo&);

struct Export {
  Export(const char* name, BindingFn fn);
};

}  // namespace ss::binding

#define SS_EXPORT(name, fn) static ::ss::binding::Export ss_export_##fn(name, fn)
