// Promises settled from worker threads. `start` receives a `done(error)` callback that may be
// called from any thread exactly once; the promise then resolves with `on_ok(env)` or rejects
// with the coded error, on the JS thread. Pending promises keep the event loop alive.
#pragma once
#include <napi.h>
#include <functional>
#include <memory>
#include "core/error.h"

namespace ss::binding {

using Done = std::function<void(std::shared_ptr<const Error>)>;

void init_async(Napi::Env env);
Napi::Promise run_async(Napi::Env env, const std::function<void(Done)>& start,
                        std::function<Napi::Value(Napi::Env)> on_ok);

// Blocks the JS thread until `start`'s done() is called; throws the error if any.
void run_sync(const std::function<void(Done)>& start);

}  // namespace ss::binding
