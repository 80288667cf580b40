#include "ops/sampling.h"
#include <limits>
#include "ops/dispatch.h"
#include "ops/model_checks.h"
#include "ops/tensor_ops.h"

namespace ss {

Tensor argmax(const Tensor& x_in) {
  Device dev = x_in.device();
  if (x_in.ndim() < 1) fail_shape("x", "(..., n)", x_in.shape);
  checks::floating("x", x_in, dev.is_cpu());
  const int64_t n = x_in.size(-1);
  if (n < 1) fail_shape("x", "(..., n) with n >= 1", x_in.shape);
  if (n > std::numeric_limits<int32_t>::max()) fail_shape("x", "(..., n) with n < 2^31 (int32 indices)", x_in.shape);
  Tensor x = contiguous(x_in);
  std::vector<int64_t> shape(x.shape.begin(), x.shape.end() - 1);
  Tensor out = empty(shape, DType::Int32, dev);
  ArgmaxParams p{x.numel() / n, n, x.dtype, x.data(), out.ptr<int32_t>()};
  if (p.rows == 0) return out;
  if (dev.is_cpu())
    run_cpu({x}, {out}, [p] { argmax_cpu(p); });
  else
    argmax_cuda(p, cuda_stream_for(dev));
  return out;
}

}  // namespace ss
