// GPU time of each stage of the SSD launches, printed to stderr when STATESPACE_SSD_STAGES=1
// (the benchmark sets it for one extra call). Off: no events, no cost.
#pragma once
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ss::cuda::ssd {

class StageTimer {
 public:
  StageTimer(const char* what, cudaStream_t stream) : what_(what), stream_(stream) {
    const char* e = std::getenv("STATESPACE_SSD_STAGES");
    on_ = e && std::strcmp(e, "1") == 0;
    mark(nullptr);
  }
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;

  // Ends `stage`: the work queued since the previous mark.
  void mark(const char* stage) {
    if (!on_) return;
    cudaEvent_t e;
    if (cudaEventCreate(&e) != cudaSuccess) return;
    cudaEventRecord(e, stream_);
    events_.push_back(e);
    names_.push_back(stage);
  }

  ~StageTimer() {
    if (!on_ || events_.empty()) return;
    cudaEventSynchronize(events_.back());
    std::fprintf(stderr, "ssd stages, %s:", what_);
    for (size_t i = 1; i < events_.size(); ++i) {
      float ms = 0.f;
      cudaEventElapsedTime(&ms, events_[i - 1], events_[i]);
      std::fprintf(stderr, " %s %.3f ms;", names_[i], ms);
    }
    std::fprintf(stderr, "\n");
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }

 private:
  const char* what_;
  cudaStream_t stream_;
  bool on_ = false;
  std::vector<cudaEvent_t> events_;
  std::vector<const char*> names_;
};

}  // namespace ss::cuda::ssd
