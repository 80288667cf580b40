// CUDA runtime services as a plain C++ interface (no CUDA headers), so csrc/ops and the
// binding can use them: devices, per-device streams, the stream-ordered allocator, copies.
// The runtime is linked statically; without a driver or a GPU every query answers
// "no devices" with a reason instead of failing to load.
#pragma once
#include <cstddef>
#include <string>

namespace ss::cuda {

int device_count();                 // 0 when CUDA can't be used
std::string unavailable_reason();   // empty when at least one device is usable
int runtime_version();
int driver_version();

struct DeviceInfo {
  std::string name;
  int major = 0, minor = 0;
  size_t total_memory = 0, free_memory = 0;
  int multiprocessors = 0;
  size_t l2_bytes = 0;
  size_t shared_per_block_optin = 0;
  double memory_clock_khz = 0;
  int memory_bus_bits = 0;
};
DeviceInfo device_info(int device);

void* stream(int device);  // makes `device` current on this thread; throws ERR_DEVICE if absent
void set_device(int device);

void copy_h2d(void* dst, const void* src, size_t bytes, int device);
void* record_event(int device);                  // an event recorded on the device's stream now
void wait_event(void* event, int device);        // blocks this thread; destroys the event
void wait_event_and_copy_d2h(void* dst, const void* src, size_t bytes, void* event, int device);

struct MemoryStats {
  size_t in_use = 0;    // bytes held by live tensors
  size_t reserved = 0;  // bytes the pool holds from the driver
};
MemoryStats memory_stats(int device);
void empty_cache(int device);

// Throws ERR_CUDA naming `what` if the last launch failed.
void check_launch(const char* what);

// Registers a function that touches an op family's kernels (cudaFuncGetAttributes on each); it
// runs once per device when the device is first used, so CUDA's lazy module loading (~1 ms and
// more on a kernel's first launch) happens there and not inside an op's first call. Call it from
// a static initializer.
void register_kernel_preload(void (*fn)());

// Multiprocessors of the current device (cached per device and thread; 1 when unknown): sizes
// grids that should fill the GPU.
int sm_count();

// Compute capability of the current device as major * 10 + minor (90 for the H100; cached per
// device and thread; 0 when unknown): picks the kernels a device can run.
int compute_capability();

// cudaMalloc in relaxed capture mode (cudaMalloc is no stream operation, but counts as unsafe
// inside a capture): for buffers a kernel keeps across calls and graph replays. Returns the error.
int malloc_relaxed(void** p, size_t bytes);

// Times `iters` device-to-device copies of `bytes` (after a warm-up); returns ms per copy.
double time_copy(int device, size_t bytes, int iters);

}  // namespace ss::cuda

namespace ss::cuda {
// Timing events on the device's stream, for benchmarks.
void* timing_event_record(int device);
double timing_event_elapsed_ms(void* start, void* end);  // waits for `end`; destroys neither
void timing_event_destroy(void* ev);
}  // namespace ss::cuda

namespace ss::cuda {
// CUDA graphs: capture the work enqueued on a device's stream by this thread, then replay it
// with one launch. Memory allocated during the capture must also be freed during it (graph
// outputs go into tensors that existed before); end_capture throws ERR_INVALID_ARG otherwise.
// While capturing, operations that wait on the GPU from the host are refused.
void begin_capture(int device);
void* end_capture(int device, bool discard);  // an executable graph (null when discarded)
void replay_graph(void* exec, int device);
void destroy_graph(void* exec);
bool capturing(int device);
}  // namespace ss::cuda
