#include "cuda/side_stream.h"
#include <cuda_runtime.h>
#include <atomic>
#include <map>
#include <mutex>
#include "cuda/check.cuh"

namespace ss::cuda {
namespace {

struct Side {
  cudaStream_t stream = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
};

// Bit d: device d's side stream is forked and not joined since (read on every host read of a
// tensor, so without the lock or creating the stream).
std::atomic<uint64_t> g_forked{0};
uint64_t bit(int device) { return uint64_t{1} << (device & 63); }

Side& side(int device) {
  static std::mutex mu;
  static std::map<int, Side>* sides = new std::map<int, Side>();  // never destroyed: used until exit
  std::lock_guard<std::mutex> lock(mu);
  Side& s = (*sides)[device];
  if (!s.stream) {
    check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "side stream");
    check(cudaEventCreateWithFlags(&s.fork, cudaEventDisableTiming), "side stream events");
    check(cudaEventCreateWithFlags(&s.join, cudaEventDisableTiming), "side stream events");
  }
  return s;
}

}  // namespace

void* side_stream(int device) { return side(device).stream; }

void fork_side(void* main_stream, int device) {
  Side& s = side(device);
  check(cudaEventRecord(s.fork, static_cast<cudaStream_t>(main_stream)), "fork to the side stream");
  check(cudaStreamWaitEvent(s.stream, s.fork, 0), "fork to the side stream");
  g_forked |= bit(device);
}

void join_side(void* main_stream, int device) {
  Side& s = side(device);
  check(cudaEventRecord(s.join, s.stream), "join the side stream");
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(main_stream), s.join, 0), "join the side stream");
  g_forked &= ~bit(device);
}

void join_side_if_forked(void* main_stream, int device) {
  if (g_forked.load() & bit(device)) join_side(main_stream, device);
}

}  // namespace ss::cuda
