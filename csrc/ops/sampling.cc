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

Tensor sample_tokens(const Tensor& logits_in, const Tensor& temperature, const Tensor& top_k, const Tensor& top_p, const Tensor& uniform) {
  Device dev = logits_in.device();
  if (logits_in.ndim() < 1) fail_shape("logits", "(..., n)", logits_in.shape);
  checks::floating("logits", logits_in, false);
  const int64_t n = logits_in.size(-1);
  if (n < 1 || n > std::numeric_limits<int32_t>::max()) fail_shape("logits", "(..., n) with 1 <= n < 2^31", logits_in.shape);
  std::vector<int64_t> shape(logits_in.shape.begin(), logits_in.shape.end() - 1);
  const std::string desc = "logits.shape[:-1]";
  auto per_row = [&](const char* name, const Tensor& t, DType dt) -> Tensor {
    if (!t.defined()) return t;
    check_same_device(dev, {{name, &t}});
    checks::shape(name, t, shape, desc);
    checks::dtype(name, t, dt);
    return contiguous(t);
  };
  if (!temperature.defined()) fail("ERR_INVALID_ARG", ErrorKind::Type, "sampleTokens: temperature is required");
  if (!uniform.defined()) fail("ERR_INVALID_ARG", ErrorKind::Type, "sampleTokens: uniform is required");
  const Tensor T = per_row("temperature", temperature, DType::Float32), K = per_row("topK", top_k, DType::Int32),
               P = per_row("topP", top_p, DType::Float32), U = per_row("uniform", uniform, DType::Float32);
  Tensor x = contiguous(logits_in);
  Tensor out = empty(shape, DType::Int32, dev);
  SampleParams p;
  p.rows = x.numel() / n;
  p.n = n;
  p.dtype = x.dtype;
  p.x = x.data();
  p.temperature = T.ptr<float>();
  p.top_k = K.defined() ? K.ptr<int32_t>() : nullptr;
  p.top_p = P.defined() ? P.ptr<float>() : nullptr;
  p.uniform = U.ptr<float>();
  p.out = out.ptr<int32_t>();
  if (p.rows == 0) return out;
  std::vector<Tensor> ins{x, T, U};
  if (K.defined()) ins.push_back(K);
  if (P.defined()) ins.push_back(P);
  if (dev.is_cpu())
    run_cpu(ins, {out}, [p] { sample_cpu(p); });
  else
    sample_cuda(p, cuda_stream_for(dev));
  return out;
}

}  // namespace ss
