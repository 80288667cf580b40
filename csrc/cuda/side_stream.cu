#include "cuda/side_stream.h"
#include <cuda_runtime.h>
#include <map>
#include <mutex>
#include "cuda/check.cuh"

namespace ss::cuda {
namespace {

struct Side {
  cudaStream_t stream = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
};

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
}

void join_side(void* main_stream, int device) {
  Side& s = side(device);
  check(cudaEventRecord(s.join, s.stream), "join the side stream");
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(main_stream), s.join, 0), "join the side stream");
}

}  // namespace ss::cuda
