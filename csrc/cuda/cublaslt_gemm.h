// cuBLASLt for the skinny products of batched decode (kGemvMaxM < M <= kLtMaxM = 64), with the
// algorithm chosen by timing. cublasGemmEx takes the heuristic's first algorithm, which for these
// weight-bound shapes (64 x 192 x 5120: 2 MB in ~7 us) often leaves most SMs idle; cuBLASLt lists
// its candidates (tile shapes, split-K, stream-K) and the fastest one, timed once per (device,
// shape, dtype, layout, alignment, SM target) with the L2 flushed before each run (in a decode step the
// weights come from DRAM), is cached and used from then on. A first use inside a stream capture
// cannot time (no synchronisation there): it takes the heuristic's first and keeps it, so a shape
// always runs the same algorithm in a process (bit-identical results call to call). A product
// marked LtOptions::untimed takes the first too.
// libcublasLt is loaded at run time like libcublas (cuda/cublas_loader.h): beside the libcublas
// found, $STATESPACE_CUBLASLT_PATH, or libcublasLt.so.13/.12 on the loader path.
// (Measured on the H100, bench/NOTES.md, b64x7 run 1: the heuristic's first is the fastest or
// within ~2% for these shapes; timing them still took 0.03 ms off a b64 step of both 2.7B-class
// models, and cuBLASLt's host cost per call is lower than cublasGemmEx's. Every other algorithm,
// tile and split-K configuration cuBLASLt accepts was slower, by 20% and more.)
// STATESPACE_CUBLASLT=0 (read per call) leaves these shapes to cublasGemmEx;
// STATESPACE_CUBLASLT_LOG=1 prints each tuning (candidates, their times, the choice) to stderr.
#pragma once
#include <string>
#include "ops/dense.h"

namespace ss::cuda {

// Rows up to which linear layers go through cuBLASLt (decode batches); larger products stay on
// cublasGemmEx: every new M is timed once (~10 ms with the L2 flushes), which prefills of many
// lengths would keep paying.
constexpr int64_t kLtMaxM = 64;

// Where the product goes: out's rows lie ldo elements apart (0: N), e.g. a column range of a
// wider projection; slot picks the workspace (0: the device's stream, 1: its side stream,
// cuda/side_stream.h), so that products running at once on both streams never share one.
struct LtOptions {
  int64_t ldo = 0;
  int slot = 0;
  // > 0: the product runs beside other work that needs the rest of the SMs; cuBLASLt plans it for
  // this many (CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET).
  int sm_target = 0;
  // The heuristic's first candidate, untimed: for a product whose speed depends on what runs beside
  // it, which timing it alone on an idle GPU does not see. Mamba-1's forked in_proj at batch 64
  // (ops/dense.cc): timed alone, the candidates of each product came within 1% of each other and
  // the pick changed from process to process, while in the step they did not tie (H100,
  // mamba-2.8b-bf16state, ms a step): the side product's first 3.653-3.658 against 3.67-4.18 for
  // the others; with it, the conv columns' product timed 3.649-3.763 (its #1 3.65, #3 3.76, #2
  // 3.73) against 3.686-3.689 for its first in every process (bench/NOTES.md, seventeenth session).
  bool untimed = false;
};

// Runs out = x · weightᵀ (no bias) on the stream through cuBLASLt when p is a decode-batch product
// it takes; false (nothing launched) otherwise, and the caller goes on to cublasGemmEx.
bool cublaslt_gemm(const GemmParams& p, void* stream, int device, const LtOptions& opt = {});

// "cublasLt (<library>)" or why it is not used.
std::string cublaslt_backend();

}  // namespace ss::cuda
