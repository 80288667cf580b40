#include "binding/async.h"
#include <future>
#include "binding/js_error.h"
#include "core/work_queue.h"

namespace ss::binding {
namespace {

struct Job {
  Napi::Promise::Deferred deferred;
  std::function<Napi::Value(Napi::Env)> on_ok;
  std::shared_ptr<const Error> error;
};

struct AsyncState {
  Napi::ThreadSafeFunction tsfn;
  int pending = 0;  // touched on the JS thread only
};

AsyncState* state(Napi::Env env) { return env.GetInstanceData<AsyncState>(); }

void settle(Napi::Env env, Napi::Function, Job* job) {
  std::unique_ptr<Job> owned(job);
  AsyncState* s = env ? state(env) : nullptr;
  if (!env || !s) return;  // environment is shutting down
  if (--s->pending == 0) s->tsfn.Unref(env);
  Napi::HandleScope scope(env);
  if (job->error) {
    job->deferred.Reject(make_js_error(env, *job->error).Value());
    return;
  }
  try {
    job->deferred.Resolve(job->on_ok(env));
  } catch (const Napi::Error& e) {
    job->deferred.Reject(e.Value());
  } catch (const Error& e) {
    job->deferred.Reject(make_js_error(env, e).Value());
  }
}

}  // namespace

void init_async(Napi::Env env) {
  auto* s = new AsyncState();
  s->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                          "statespace", 0, 1);
  s->tsfn.Unref(env);
  env.SetInstanceData<AsyncState>(s);
  // On teardown, let queued work finish so no worker touches freed memory.
  env.AddCleanupHook([s] {
    wait_all_idle();
    s->tsfn.Release();
  });
}

Napi::Promise run_async(Napi::Env env, const std::function<void(Done)>& start,
                        std::function<Napi::Value(Napi::Env)> on_ok) {
  AsyncState* s = state(env);
  auto* job = new Job{Napi::Promise::Deferred::New(env), std::move(on_ok), nullptr};
  Napi::Promise promise = job->deferred.Promise();
  if (s->pending++ == 0) s->tsfn.Ref(env);
  Napi::ThreadSafeFunction tsfn = s->tsfn;
  try {
    start([job, tsfn](std::shared_ptr<const Error> err) mutable {
      job->error = std::move(err);
      tsfn.BlockingCall(job, settle);
    });
  } catch (...) {
    // start failed before queueing anything: undo and let the trampoline report it
    if (--s->pending == 0) s->tsfn.Unref(env);
    delete job;
    throw;
  }
  return promise;
}

void run_sync(const std::function<void(Done)>& start) {
  std::promise<std::shared_ptr<const Error>> p;
  auto f = p.get_future();
  start([&p](std::shared_ptr<const Error> err) { p.set_value(std::move(err)); });
  if (auto err = f.get()) throw *err;
}

}  // namespace ss::binding
