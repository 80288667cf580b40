// A decode step's projections with their neighbours fused: the block's RMSNorm (with the
// residual add) before in_proj and the causal conv step after it, or Mamba-2's gated RMSNorm
// before out_proj, so that on CUDA (<= 8 rows) one matrix-vector kernel replaces two or three.
//   r = x (+ residual) (· silu(z));  residual_out = r (in the residual's dtype)
//   h = r · rsqrt(mean(r²) + eps) · norm_weight, rounded to x's dtype
//   y = h · weightᵀ + bias, whose columns [conv_start, conv_start + channels) then take one
//       causal conv step over conv_state (updated in place), as linear_conv_update.
#pragma once
#include "core/tensor.h"
#include "ops/dense.h"

namespace ss {

// The norm prologue of the matrix-vector kernel: every block normalises the M rows of x (the
// raw input, p.x) into shared memory itself; block 0 writes residual_out.
struct GemvNorm {
  const void* residual = nullptr;  // (M, K) contiguous, or null
  DType residual_dtype = DType::Float32;
  void* residual_out = nullptr;    // (M, K) contiguous, written when residual is given
  const void* weight = nullptr;    // (K)
  DType weight_dtype = DType::Float32;
  float eps = 1e-5f;
  const void* z = nullptr;         // gate (M, K) in x's dtype, rows z_stride apart, or null
  int64_t z_stride = 0;
};
// Whether gemv_norm_cuda takes these operands (vector widths, alignment, sizes).
bool gemv_norm_fits(const GemmParams& p, const GemvNorm& nm);
void gemv_norm_cuda(const GemmParams& p, const GemvNorm& nm, const GemvConv* conv, void* stream);

struct DecodeProjArgs {
  Tensor x, residual, norm_weight;
  Tensor z;  // gate: r = (x + residual) · silu(z) before the norm (Mamba-2's gated norm, one group)
  double eps = 1e-5;
  Tensor weight, bias;
  Tensor conv_state, conv_weight, conv_bias;  // conv_state undefined: no conv
  int64_t conv_start = 0;
  bool silu = false;
};
struct DecodeProjResult {
  Tensor y, residual_out;  // residual_out defined when residual is
};
DecodeProjResult decode_projection(const DecodeProjArgs& a);

}  // namespace ss
