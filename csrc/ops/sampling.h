// Token choice on the device: the index of the largest logit of each row (greedy decoding), so a
// decode step returns token ids instead of copying whole rows of logits back to the host.
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

}  // namespace ss
