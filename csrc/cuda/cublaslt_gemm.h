// cuBLASLt for the skinny products of batched decode (kGemvMaxM < M <= kLtMaxM), with the
// algorithm chosen by timing. cublasGemmEx takes the heuristic's first algorithm, which for these
// weight-bound shapes (64 x 192 x 5120: 2 MB in ~7 us) often leaves most SMs idle; cuBLASLt lists
// its candidates (tile shapes, split-K, stream-K) and the fastest one, timed once per (device,
// shape, dtype, layout, alignment) with the L2 flushed before each run (in a decode step the
// weights come from DRAM), is cached and used from then on. A first use inside a stream capture
// cannot time (no synchronisation there): it takes the heuristic's first and keeps it, so a shape
// always runs the same algorithm in a process (bit-identical results call to call).
// libcublasLt is loaded at run time like libcublas (cuda/cublas_loader.h): beside the libcublas
// found, $STATESPACE_CUBLASLT_PATH, or libcublasLt.so.13/.12 on the loader path.
// STATESPACE_CUBLASLT (read per call): 0 leaves these shapes to cublasGemmEx; wide also times
// every algorithm / tile / split-K configuration cuBLASLt accepts for the shape (up to 256 more).
// STATESPACE_CUBLASLT_LOG=1 prints each tuning (candidates, their times, the choice) to stderr.
#pragma once
#include <string>
#include "ops/dense.h"

namespace ss::cuda {

// Rows up to which linear layers go through cuBLASLt (decode batches); larger products (prefill)
// stay on cublasGemmEx: every new M would otherwise be timed once.
constexpr int64_t kLtMaxM = 256;

// Runs out = x · weightᵀ (no bias) on the stream through cuBLASLt when p is a decode-batch product
// it takes; false (nothing launched) otherwise, and the caller goes on to cublasGemmEx.
bool cublaslt_gemm(const GemmParams& p, void* stream, int device);

// "cublasLt (<library>)" or why it is not used.
std::string cublaslt_backend();

}  // namespace ss::cuda
