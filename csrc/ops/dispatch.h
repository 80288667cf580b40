// How an op runs its backend. On the CPU, work is queued on the device's host queue (off the
// JS thread, in order); inputs and outputs stay alive until it has run, and a failure
// (from the work or carried in by an input) is recorded on the outputs, which then report it
// when read. On CUDA, work is enqueued on the device's stream at once.
#pragma once
#include <functional>
#include <memory>
#include <vector>
#include "core/tensor.h"

namespace ss {

void run_cpu(std::vector<Tensor> inputs, std::vector<Tensor> outputs, std::function<void()> fn);

// Throws ERR_DEVICE unless every defined tensor in `ts` lives on `d`; `names` label them.
void check_same_device(Device d, const std::vector<std::pair<const char*, const Tensor*>>& ts);

// Current stream of CUDA device d (after making d current on this thread). Throws when CUDA
// is not compiled in or d does not exist.
void* cuda_stream_for(Device d);

}  // namespace ss
