#include "ops/dense.h"
#include "ops/dispatch.h"
#include "ops/model_checks.h"
#include "ops/row_view.h"
#include "ops/tensor_ops.h"
#ifdef STATESPACE_WITH_CUDA
#include "cuda/cublas_loader.h"
#endif

namespace ss {

Tensor embedding(const Tensor& ids_in, const Tensor& weight_in) {
  Device dev = weight_in.device();
  check_same_device(dev, {{"ids", &ids_in}});
  checks::dtype("ids", ids_in, DType::Int32);
  checks::rank("weight", weight_in, 2, "(vocab, d)");
  checks::floating("weight", weight_in, dev.is_cpu());
  Tensor ids = contiguous(ids_in), w = contiguous(weight_in);
  std::vector<int64_t> shape = ids.shape;
  shape.push_back(w.size(1));
  Tensor out = empty(shape, w.dtype, dev);
  EmbeddingParams p{ids.numel(), w.size(0), w.size(1), w.dtype, ids.ptr<int32_t>(), w.data(), out.data()};
  if (out.numel() == 0) return out;
  if (dev.is_cpu())
    run_cpu({ids, w}, {out}, [p] { embedding_cpu(p); });
  else
    embedding_cuda(p, cuda_stream_for(dev));
  return out;
}

Tensor linear(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in) {
  Device dev = x_in.device();
  bool cpu = dev.is_cpu();
  check_same_device(dev, {{"weight", &weight_in}, {"bias", &bias_in}});
  if (x_in.ndim() < 1) fail_shape("x", "(..., in)", x_in.shape);
  checks::floating("x", x_in, cpu);
  checks::rank("weight", weight_in, 2, "(out, in)");
  checks::same_dtype("weight", weight_in, "x", x_in.dtype);
  const int64_t K = x_in.size(-1), N = weight_in.size(0);
  if (weight_in.size(1) != K)
    fail_shape("weight", "(out, in) with in = " + std::to_string(K) + " (the last dimension of x)", weight_in.shape);
  if (bias_in.defined()) {
    checks::shape("bias", bias_in, {N}, "(out)");
    checks::floating("bias", bias_in, cpu);
  }
  // A 2-D x with evenly strided rows (decode slices it out of a wider projection) is read in place
  // by the CUDA matrix-vector kernel and by cuBLAS; the other kernels take contiguous rows.
  int64_t ldx = 0;
#ifdef STATESPACE_WITH_CUDA
  if (!cpu && x_in.ndim() == 2 && x_in.size(0) > 1) {
    const int64_t s = row_stride(x_in);
    if (s > K && (x_in.size(0) <= kGemvMaxM || cuda::gemm_backend(dev.index).rfind("cublas", 0) == 0)) ldx = s;
  }
#endif
  Tensor x = ldx ? x_in : contiguous(x_in), w = contiguous(weight_in);
  Tensor bias = bias_in.defined() ? contiguous(bias_in) : Tensor{};
  std::vector<int64_t> shape = x.shape;
  shape.back() = N;
  Tensor out = empty(shape, x.dtype, dev);
  GemmParams p;
  p.M = 1;
  for (int i = 0; i + 1 < x.ndim(); ++i) p.M *= x.shape[i];
  p.N = N;
  p.K = K;
  p.ldx = ldx;
  p.dtype = x.dtype;
  p.bias_dtype = bias.defined() ? bias.dtype : DType::Float32;
  p.x = x.data();
  p.weight = w.data();
  p.bias = bias.defined() ? bias.data() : nullptr;
  p.out = out.data();
  if (out.numel() == 0) return out;
  if (cpu)
    run_cpu({x, w, bias}, {out}, [p] { gemm_cpu(p); });
  else
    gemm_cuda(p, cuda_stream_for(dev));
  return out;
}

RmsNormResult rms_norm(const Tensor& x_in, const Tensor& weight_in, double eps, const Tensor& residual_in,
                       const Tensor& z_in, int64_t group) {
  Device dev = x_in.device();
  bool cpu = dev.is_cpu();
  check_same_device(dev, {{"weight", &weight_in}, {"residual", &residual_in}, {"z", &z_in}});
  if (x_in.ndim() < 1) fail_shape("x", "(..., d)", x_in.shape);
  checks::floating("x", x_in, cpu);
  const int64_t D = x_in.size(-1);
  checks::shape("weight", weight_in, {D}, "(d) (the last dimension of x)");
  checks::floating("weight", weight_in, cpu);
  if (!(eps >= 0)) fail("ERR_INVALID_ARG", ErrorKind::Type, "eps: expected a non-negative number");
  if (group <= 0) group = D;
  if (D % group != 0)
    fail("ERR_SHAPE", ErrorKind::Range, "groupSize: " + std::to_string(group) + " must divide the last dimension of x (" + std::to_string(D) + ")");
  if (residual_in.defined()) {
    checks::shape("residual", residual_in, x_in.shape, "the shape of x");
    checks::floating("residual", residual_in, cpu);
  }
  if (z_in.defined()) {
    checks::shape("z", z_in, x_in.shape, "the shape of x");
    checks::same_dtype("z", z_in, "x", x_in.dtype);
  }
  Tensor x = contiguous(x_in), w = contiguous(weight_in);
  Tensor res = residual_in.defined() ? contiguous(residual_in) : Tensor{};
  // z is read in place when its rows are evenly strided (Mamba-2 slices it out of in_proj's output).
  Tensor z;
  int64_t z_stride = D;
  if (z_in.defined()) {
    const int64_t s = row_stride(z_in);
    z = s >= 0 ? z_in : contiguous(z_in);
    z_stride = s >= 0 ? s : D;
  }
  RmsNormResult r;
  r.y = empty(x.shape, x.dtype, dev);
  if (res.defined()) r.residual_out = empty(x.shape, res.dtype, dev);
  RmsNormParams p;
  p.rows = D ? x.numel() / D : 0;
  p.dim = D;
  p.group = group;
  p.z_stride = z_stride;
  p.eps = static_cast<float>(eps);
  p.dtype = x.dtype;
  p.weight_dtype = w.dtype;
  p.residual_dtype = res.defined() ? res.dtype : DType::Float32;
  p.x = x.data();
  p.z = z.defined() ? z.data() : nullptr;
  p.residual = res.defined() ? res.data() : nullptr;
  p.weight = w.data();
  p.residual_out = r.residual_out.defined() ? r.residual_out.data() : nullptr;
  p.y = r.y.data();
  if (r.y.numel() == 0) return r;
  if (cpu)
    run_cpu({x, w, res, z}, {r.y, r.residual_out}, [p] { rms_norm_cpu(p); });
  else
    rms_norm_cuda(p, cuda_stream_for(dev));
  return r;
}

Tensor eltwise(EltwiseOp op, const Tensor& a_in, const Tensor& b_in) {
  Device dev = a_in.device();
  bool cpu = dev.is_cpu();
  const bool binary = op == EltwiseOp::Add || op == EltwiseOp::Mul;
  checks::floating(binary ? "a" : "x", a_in, cpu);
  if (binary) {
    check_same_device(dev, {{"b", &b_in}});
    checks::shape("b", b_in, a_in.shape, "the shape of a");
    checks::same_dtype("b", b_in, "a", a_in.dtype);
  }
  Tensor a = contiguous(a_in);
  Tensor b = binary ? contiguous(b_in) : Tensor{};
  Tensor out = empty(a.shape, a.dtype, dev);
  EltwiseParams p{op, a.numel(), a.dtype, a.data(), binary ? b.data() : nullptr, out.data()};
  if (p.n == 0) return out;
  if (cpu)
    run_cpu({a, b}, {out}, [p] { eltwise_cpu(p); });
  else
    eltwise_cuda(p, cuda_stream_for(dev));
  return out;
}

std::string linear_backend(Device device) {
  if (device.is_cpu()) return "cpu";
#ifdef STATESPACE_WITH_CUDA
  cuda_stream_for(device);  // checks the device exists and makes it current
  return cuda::gemm_backend(device.index);
#else
  fail("ERR_DEVICE", ErrorKind::Type, "device " + device.str() + " is not available: statespace was built without CUDA");
#endif
}

}  // namespace ss
