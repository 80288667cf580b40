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

// conv_step for up to four consecutive channels ch + e (bit e of `mask`; channels outside the
// mask are never touched, so ch may lie before the first conv channel) of one or more rows, split
// so that a caller can issue every load before any store (a store to the state may alias later
// loads, so the compiler cannot hoist them itself): conv_taps4 reads the channels' weights and
// bias (shared by the rows), conv_window4 a row's state, conv_apply4 computes and shifts it.
// Widths up to 4 (every Mamba checkpoint); wider convs take conv_step.
struct ConvTaps4 {
  float w[4][3], wlast[4], b[4];  // (the newest tap's weight apart: indexing w by the run-time
                                  // width would put it in local memory)
};
__device__ __forceinline__ void conv_taps4(const GemvConv& cv, int64_t ch, unsigned mask, ConvTaps4& t) {
  const int W = static_cast<int>(cv.width);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if (!(mask >> e & 1)) continue;
#pragma unroll
    for (int k = 0; k < 3; ++k)
      if (k < W - 1) t.w[e][k] = load_any(cv.weight, cv.weight_dtype, (ch + e) * W + k);
    t.wlast[e] = load_any(cv.weight, cv.weight_dtype, (ch + e) * W + W - 1);
    t.b[e] = cv.bias ? load_any(cv.bias, cv.bias_dtype, ch + e) : 0.f;
  }
}
__device__ __forceinline__ void conv_window4(const GemvConv& cv, int64_t m, int64_t ch, unsigned mask, float (&st)[4][3]) {
  const int W = static_cast<int>(cv.width);
  const int64_t base = (m * cv.channels + ch) * (W - 1);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if (!(mask >> e & 1)) continue;
#pragma unroll
    for (int k = 0; k < 3; ++k)
      if (k < W - 1) st[e][k] = load_any(cv.state, cv.state_dtype, base + e * (W - 1) + k);
  }
}
template <typename T>
__device__ __forceinline__ void conv_apply4(const GemvConv& cv, int64_t m, int64_t ch, unsigned mask, const ConvTaps4& t, const float (&st)[4][3],
                                            float (&v)[4]) {
  const int W = static_cast<int>(cv.width);
  const int64_t base = (m * cv.channels + ch) * (W - 1);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if (!(mask >> e & 1)) continue;
    const float x = to_float(from_float<T>(v[e]));
    float acc = t.b[e];
#pragma unroll
    for (int k = 0; k < 3; ++k)
      if (k < W - 1) acc += t.w[e][k] * st[e][k];
    acc += t.wlast[e] * x;
#pragma unroll
    for (int k = 0; k + 1 < 3; ++k)
      if (k + 1 < W - 1) store_any(cv.state, cv.state_dtype, base + e * (W - 1) + k, st[e][k + 1]);
    if (W > 1) store_any(cv.state, cv.state_dtype, base + e * (W - 1) + W - 2, x);
    v[e] = cv.silu ? silu_f(acc) : acc;
  }
}

}  // namespace ss::cuda
