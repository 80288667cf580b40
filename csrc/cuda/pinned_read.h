// Small device -> host reads (a decode step's tokens, a scalar): the bytes are copied in stream
// order, right behind the work that produces them, into a pinned staging block, so the thread
// that waits finds them already on the host (no snapshot kernel, no synchronous pageable copy
// after the wait). finish() blocks until they have landed and copies them out; dropping a read
// unfinished still waits for its copy before the block is reused. Implemented in runtime.cu.
#pragma once
#include <cstddef>
#include <memory>

namespace ss::cuda {

constexpr size_t kPinnedReadBytes = 64 * 1024;

class PendingRead {
 public:
  virtual ~PendingRead() = default;
  virtual void finish(void* dst) = 0;
};

// bytes <= kPinnedReadBytes; throws while the device's stream is being captured into a graph.
std::shared_ptr<PendingRead> start_read_d2h(const void* src, size_t bytes, int device);

}  // namespace ss::cuda
