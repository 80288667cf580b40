// Turns CUDA status codes into ss::Error (ERR_CUDA / ERR_CUDA_OOM).
#pragma once
#include <cuda_runtime.h>
#include <string>
#include "core/error.h"

namespace ss::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what) {
  cudaGetLastError();  // clear a non-sticky error so later calls work
  if (e == cudaErrorMemoryAllocation)
    fail("ERR_CUDA_OOM", ErrorKind::Range, std::string(what) + ": out of GPU memory (" + cudaGetErrorString(e) + ")");
  fail("ERR_CUDA", ErrorKind::Plain, std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_cuda(e, what);
}

}  // namespace ss::cuda
