#include "ops/dispatch.h"
#include "core/work_queue.h"
#ifdef STATESPACE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace ss {

void run_cpu(std::vector<Tensor> inputs, std::vector<Tensor> outputs, std::function<void()> fn) {
  enqueue(Device{}, [inputs = std::move(inputs), outputs = std::move(outputs), fn = std::move(fn)] {
    std::shared_ptr<const Error> err;
    for (const Tensor& t : inputs)
      if (t.defined() && (err = t.storage->error())) break;
    if (!err) {
      try {
        fn();
      } catch (const Error& e) {
        err = std::make_shared<Error>(e);
      } catch (const std::exception& e) {
        err = std::make_shared<Error>("ERR_INTERNAL", ErrorKind::Plain, e.what());
      }
    }
    if (err)
      for (const Tensor& t : outputs)
        if (t.defined()) t.storage->set_error(err);
  });
}

void check_same_device(Device d, const std::vector<std::pair<const char*, const Tensor*>>& ts) {
  for (auto& [name, t] : ts)
    if (t && t->defined() && t->device() != d) fail_device(name, d.str(), t->device().str());
}

void* cuda_stream_for(Device d) {
#ifdef STATESPACE_WITH_CUDA
  return cuda::stream(d.index);
#else
  fail("ERR_DEVICE", ErrorKind::Type, "device " + d.str() + " is not available: statespace was built without CUDA");
#endif
}

}  // namespace ss
