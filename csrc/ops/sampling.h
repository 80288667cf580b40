// Token choice on the device: the index of the largest logit of each row (greedy decoding), or a
// token sampled from each row's softmax (temperature, top-k, top-p), so that a decode step returns
// token ids instead of copying whole rows of logits back to the host.
#pragma once
#include <cstdint>
#include "core/tensor.h"

namespace ss {

// out[r] = the first i with x[r, i] = max_i x[r, i] over rows of length n; NaN counts as larger
// than any number (as torch.argmax), so a row holding NaN gives the first NaN's index.
struct ArgmaxParams {
  int64_t rows = 0, n = 0;
  DType dtype = DType::Float32;
  const void* x = nullptr;  // (rows, n), contiguous
  int32_t* out = nullptr;   // (rows)
};

void argmax_cpu(const ArgmaxParams& p);
void argmax_cuda(const ArgmaxParams& p, void* stream);

// int32 indices over the last dimension of x: shape x.shape[:-1].
Tensor argmax(const Tensor& x);

// Sampling, per row r of logits x (rows, n), with T = temperature[r], k = top_k[r], P = top_p[r]
// and u = uniform[r] in [0, 1) (the caller's random number, so that a seeded generator on the host
// reproduces a completion on either device):
// - T <= 0 (or NaN), or a row whose largest logit is not finite: argmax's choice;
// - otherwise the tokens are ranked by logit, ties by lower index. The kept set is the first k of
//   that ranking when 0 < k < n, then the shortest prefix of those whose weight reaches P of
//   theirs when P < 1 (weight w_i = exp((x_i - max) / T) in 2^-40 fixed point, so that every sum
//   is exact and independent of the order it is taken in);
// - the token is the first kept index (ascending) whose running weight exceeds floor(u · M), M the
//   kept weight: each kept token with probability w_i / M.
// CPU and CUDA compute exp in float32 with different roundings, so in rare rows where u falls
// within a rounding of a boundary they may choose neighbouring tokens.
struct SampleParams {
  int64_t rows = 0, n = 0;
  DType dtype = DType::Float32;
  const void* x = nullptr;             // (rows, n), contiguous
  const float* temperature = nullptr;  // (rows)
  const int32_t* top_k = nullptr;      // (rows) or null: every token
  const float* top_p = nullptr;        // (rows) or null: 1
  const float* uniform = nullptr;      // (rows)
  int32_t* out = nullptr;              // (rows)
};

void sample_cpu(const SampleParams& p);
void sample_cuda(const SampleParams& p, void* stream);

// int32 tokens of shape logits.shape[:-1]; the per-row tensors have that shape (float32 except
// top_k int32), on the logits' device; top_k and top_p may be undefined.
Tensor sample_tokens(const Tensor& logits, const Tensor& temperature, const Tensor& top_k, const Tensor& top_p, const Tensor& uniform);

}  // namespace ss
