#include "ops/decode_proj.h"
#include <cstdlib>
#include <string>
#include "ops/dispatch.h"
#include "ops/model_checks.h"
#include "ops/row_view.h"
#include "ops/tensor_ops.h"

namespace ss {

DecodeProjResult decode_projection(const DecodeProjArgs& a) {
  const Device dev = a.x.device();
  const bool cpu = dev.is_cpu();
  check_same_device(dev, {{"normWeight", &a.norm_weight}, {"residual", &a.residual}, {"weight", &a.weight}});
  checks::rank("x", a.x, 2, "(batch, hidden)");
  checks::floating("x", a.x, cpu);
  const int64_t M = a.x.size(0), K = a.x.size(1);
  checks::shape("normWeight", a.norm_weight, {K}, "(hidden)");
  checks::floating("normWeight", a.norm_weight, cpu);
  if (a.residual.defined()) {
    checks::shape("residual", a.residual, a.x.shape, "the shape of x");
    checks::floating("residual", a.residual, cpu);
  }
  if (!(a.eps >= 0)) fail("ERR_INVALID_ARG", ErrorKind::Type, "eps: expected a non-negative number");
  int64_t z_stride = K;
  if (a.z.defined()) {
    check_same_device(dev, {{"z", &a.z}});
    checks::shape("z", a.z, a.x.shape, "the shape of x");
    checks::same_dtype("z", a.z, "x", a.x.dtype);
    z_stride = row_stride(a.z);
  }
  DecodeProjResult r;
#ifdef STATESPACE_WITH_CUDA
  // STATESPACE_DECODE_FUSION=0 runs the ops in turn (to measure what the fusion buys).
  const char* fusion = std::getenv("STATESPACE_DECODE_FUSION");
  const bool fuse = !(fusion && std::string(fusion) == "0");
  if (fuse && !cpu && M <= kGemvMaxM && M > 0 && a.x.is_contiguous() && (!a.residual.defined() || a.residual.is_contiguous())) {
    // The fused kernel: validate the projection and the conv as their own ops do, on a
    // placeholder of the normalised input's shape.
    checks::rank("weight", a.weight, 2, "(out, in)");
    checks::same_dtype("weight", a.weight, "x", a.x.dtype);
    if (a.weight.size(1) != K) fail_shape("weight", "(out, in) with in = " + std::to_string(K) + " (the hidden size)", a.weight.shape);
    const int64_t N = a.weight.size(0);
    if (a.bias.defined()) {
      check_same_device(dev, {{"bias", &a.bias}});
      checks::shape("bias", a.bias, {N}, "(out)");
      checks::floating("bias", a.bias, cpu);
    }
    Tensor w = contiguous(a.weight), nw = contiguous(a.norm_weight);
    Tensor bias = a.bias.defined() ? contiguous(a.bias) : Tensor{};
    GemmParams p;
    p.M = M;
    p.N = N;
    p.K = K;
    p.dtype = a.x.dtype;
    p.bias_dtype = bias.defined() ? bias.dtype : DType::Float32;
    p.x = a.x.data();
    p.weight = w.data();
    p.bias = bias.defined() ? bias.data() : nullptr;
    GemvNorm nm;
    nm.residual = a.residual.defined() ? a.residual.data() : nullptr;
    nm.residual_dtype = a.residual.defined() ? a.residual.dtype : DType::Float32;
    nm.weight = nw.data();
    nm.weight_dtype = nw.dtype;
    nm.eps = static_cast<float>(a.eps);
    if (a.z.defined() && z_stride >= 0) {
      nm.z = a.z.data();
      nm.z_stride = z_stride;
    }
    const bool z_ok = !a.z.defined() || z_stride >= 0;
    GemvConv c;
    Tensor cw, cb;
    if (a.conv_state.defined()) {
      check_same_device(dev, {{"convState", &a.conv_state}, {"convWeight", &a.conv_weight}, {"convBias", &a.conv_bias}});
      checks::rank("convWeight", a.conv_weight, 2, "(channels, width)");
      checks::floating("convWeight", a.conv_weight, cpu);
      const int64_t Cc = a.conv_weight.size(0), W = a.conv_weight.size(1);
      if (W < 1) fail_shape("convWeight", "(channels, width) with width >= 1", a.conv_weight.shape);
      if (a.conv_start < 0 || a.conv_start + Cc > N)
        fail("ERR_SHAPE", ErrorKind::Range, "convStart: the conv's columns lie outside the " + std::to_string(N) + " outputs");
      checks::shape("convState", a.conv_state, {M, Cc, W - 1}, "(batch, channels, width-1)");
      checks::floating("convState", a.conv_state, cpu);
      checks::contiguous("convState", a.conv_state);
      if (a.conv_bias.defined()) {
        checks::shape("convBias", a.conv_bias, {Cc}, "(channels)");
        checks::floating("convBias", a.conv_bias, cpu);
      }
      cw = contiguous(a.conv_weight);
      cb = a.conv_bias.defined() ? contiguous(a.conv_bias) : Tensor{};
      c.state = a.conv_state.data();
      c.state_dtype = a.conv_state.dtype;
      c.weight = cw.data();
      c.weight_dtype = cw.dtype;
      c.bias = cb.defined() ? cb.data() : nullptr;
      c.bias_dtype = cb.defined() ? cb.dtype : DType::Float32;
      c.lo = a.conv_start;
      c.channels = Cc;
      c.width = W;
      c.silu = a.silu;
    }
    if (z_ok && gemv_norm_fits(p, nm)) {
      r.y = empty({M, N}, a.x.dtype, dev);
      p.out = r.y.data();
      if (a.residual.defined()) {
        r.residual_out = empty(a.x.shape, a.residual.dtype, dev);
        nm.residual_out = r.residual_out.data();
      }
      gemv_norm_cuda(p, nm, a.conv_state.defined() ? &c : nullptr, cuda_stream_for(dev));
      return r;
    }
  }
#endif
  // The ops in turn: RMSNorm (+ residual), then the projection (+ conv).
  RmsNormResult n = rms_norm(a.x, a.norm_weight, a.eps, a.residual, a.z, 0);
  r.residual_out = n.residual_out;
  r.y = a.conv_state.defined()
            ? linear_conv_update(n.y, a.weight, a.bias, a.conv_state, a.conv_weight, a.conv_bias, a.conv_start, a.silu)
            : linear(n.y, a.weight, a.bias);
  return r;
}

}  // namespace ss
