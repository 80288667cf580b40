// One causal conv1d decode step of width 4 over 8 consecutive channels of one batch entry, every
// operand 16-byte vectors of one 16-bit dtype: shared by the conv-update kernel (conv1d_cuda.cu)
// and the conv step fused into x_proj (skinny_gemm_cuda.cu), so that both round alike.
#pragma once
#include <cstdint>
#include "cuda/load_any.cuh"

namespace ss::cuda {

// x: the 8 new inputs; state: the 3 previous inputs of each channel (channel c's at 3c .. 3c + 2,
// oldest first), shifted in place; w: the 4 taps of each channel (c's at 4c .. 4c + 3); bias: the
// 8 biases (used when has_bias). Returns the 8 outputs silu'd when silu, rounded to T.
template <typename T>
__device__ __forceinline__ uint4 conv4_step8(const uint4& x, uint4 (&state)[3], const uint4 (&w)[4], const uint4& bias, bool has_bias, bool silu) {
  constexpr int V = 8, W = 4;
  const T* xs = reinterpret_cast<const T*>(&x);
  const T* ws = reinterpret_cast<const T*>(w);
  const T* bs = reinterpret_cast<const T*>(&bias);
  T* ss = reinterpret_cast<T*>(state);
  uint4 out;
  T* o = reinterpret_cast<T*>(&out);
#pragma unroll
  for (int c = 0; c < V; ++c) {
    float acc = has_bias ? to_float(bs[c]) : 0.f;
#pragma unroll
    for (int k = 0; k < W - 1; ++k) acc += to_float(ws[c * W + k]) * to_float(ss[c * (W - 1) + k]);
    acc += to_float(ws[c * W + W - 1]) * to_float(xs[c]);
    ss[c * (W - 1)] = ss[c * (W - 1) + 1];
    ss[c * (W - 1) + 1] = ss[c * (W - 1) + 2];
    ss[c * (W - 1) + 2] = xs[c];
    o[c] = from_float<T>(silu ? silu_f(acc) : acc);
  }
  return out;
}

}  // namespace ss::cuda
