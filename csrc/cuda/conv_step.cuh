// The causal conv step of decode (causalConv1dUpdate semantics) applied by a GEMM epilogue to an
// output column as it is written (GemvConv): in_proj and the conv update in one kernel.
#pragma once
#include "cuda/load_any.cuh"
#include "ops/dense.h"

namespace ss::cuda {

// Row m, conv channel ch, on the kernel's unrounded output v: v is rounded to T as a separate
// linear layer would store it, then the same arithmetic, in the same order, as
// causalConv1dUpdate's kernel; the state (M, channels, width-1) is shifted in place.
template <typename T> __device__ float conv_step(const GemvConv& cv, int64_t m, int64_t ch, float v) {
  const float x = to_float(from_float<T>(v));
  const int64_t W = cv.width, base = (m * cv.channels + ch) * (W - 1);
  float acc = cv.bias ? load_any(cv.bias, cv.bias_dtype, ch) : 0.f;
  for (int64_t k = 0; k < W - 1; ++k) acc += load_any(cv.weight, cv.weight_dtype, ch * W + k) * load_any(cv.state, cv.state_dtype, base + k);
  acc += load_any(cv.weight, cv.weight_dtype, ch * W + W - 1) * x;
  for (int64_t k = 0; k + 1 < W - 1; ++k) store_any(cv.state, cv.state_dtype, base + k, load_any(cv.state, cv.state_dtype, base + k + 1));
  if (W > 1) store_any(cv.state, cv.state_dtype, base + W - 2, x);
  return cv.silu ? silu_f(acc) : acc;
}

}  // namespace ss::cuda
