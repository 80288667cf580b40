// One host thread per device that runs tasks in submission order, like a CUDA stream.
// CPU ops run here (off the JS thread); for CUDA devices it runs blocking copies and waits.
#pragma once
#include <functional>
#include "core/device.h"

namespace ss {

class WorkQueue;
WorkQueue& queue_for(Device d);
void enqueue(Device d, std::function<void()> task);
void wait_idle(Device d);  // blocks until everything queued on d has run
void wait_all_idle();      // every queue (process teardown)

}  // namespace ss
