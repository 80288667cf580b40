#include "ops/conv1d.h"
#include "ops/row_view.h"
#include "ops/dispatch.h"
#include "ops/model_checks.h"
#include "ops/tensor_ops.h"

namespace ss {
namespace {

// Validates the forward/backward inputs and fills the shared part of the params.
CausalConv1dParams validate(const Conv1dArgs& a, bool backward) {
  const Tensor& x = a.x;
  Device dev = x.device();
  bool cpu = dev.is_cpu();
  check_same_device(dev, {{"weight", &a.weight}, {"bias", &a.bias}, {"initialStates", &a.initial_states},
                          {"seqIdx", &a.seq_idx}, {"dy", &a.dy}, {"dFinalStates", &a.dfinal_states}});
  checks::rank("x", x, 3, "(batch, dim, seqlen)");
  checks::floating("x", x, cpu);
  CausalConv1dParams p;
  p.batch = x.size(0);
  p.dim = x.size(1);
  p.seqlen = x.size(2);
  checks::rank("weight", a.weight, 2, "(dim, width)");
  checks::floating("weight", a.weight, cpu);
  p.width = a.weight.size(1);
  if (a.weight.size(0) != p.dim || p.width < 1)
    fail_shape("weight", "(dim, width) with dim = " + std::to_string(p.dim) + " and width >= 1", a.weight.shape);
  p.dtype = x.dtype;
  p.weight_dtype = a.weight.dtype;
  if (a.bias.defined()) {
    checks::shape("bias", a.bias, {p.dim}, "(dim)");
    checks::floating("bias", a.bias, cpu);
    p.bias_dtype = a.bias.dtype;
  }
  std::vector<int64_t> sshape{p.batch, p.dim, p.width - 1};
  if (a.initial_states.defined()) {
    checks::shape("initialStates", a.initial_states, sshape, "(batch, dim, width-1)");
    checks::same_dtype("initialStates", a.initial_states, "x", x.dtype);
  }
  if (a.seq_idx.defined()) {
    checks::shape("seqIdx", a.seq_idx, {p.batch, p.seqlen}, "(batch, seqlen)");
    checks::dtype("seqIdx", a.seq_idx, DType::Int32);
  }
  if (backward) {
    checks::shape("dy", a.dy, x.shape, "(batch, dim, seqlen)");
    checks::same_dtype("dy", a.dy, "x", x.dtype);
    if (a.dfinal_states.defined()) {
      checks::shape("dFinalStates", a.dfinal_states, sshape, "(batch, dim, width-1)");
      checks::same_dtype("dFinalStates", a.dfinal_states, "x", x.dtype);
    }
  }
  p.silu = a.silu;
  return p;
}

}  // namespace

Conv1dResult causal_conv1d(const Conv1dArgs& a) {
  CausalConv1dParams p = validate(a, false);
  // On CUDA, a channels-last x (channel stride 1, e.g. the conv's slice of Mamba-2's in_proj
  // output) is read in place and y is returned channels-last too: a (batch, dim, seqlen) view of
  // (batch, seqlen, dim) memory, which the (batch, seqlen, ...) consumers slice without a copy.
  const Tensor& xa = a.x;
  p.channels_last = !xa.device().is_cpu() && p.dim > 1 && p.seqlen > 1 && xa.stride(1) == 1 && xa.stride(2) >= p.dim &&
                    (p.batch == 1 || xa.stride(0) >= xa.stride(2) * p.seqlen);
  Tensor x = p.channels_last ? xa : contiguous(xa), w = contiguous(a.weight);
  Tensor bias = a.bias.defined() ? contiguous(a.bias) : Tensor{};
  Tensor init = a.initial_states.defined() ? contiguous(a.initial_states) : Tensor{};
  Tensor sidx = a.seq_idx.defined() ? contiguous(a.seq_idx) : Tensor{};
  Conv1dResult r;
  if (p.channels_last) {
    p.x_stride_b = xa.stride(0);
    p.x_stride_t = xa.stride(2);
    r.y = empty({p.batch, p.seqlen, p.dim}, x.dtype, x.device());
    r.y.shape = x.shape;
    r.y.strides = {p.seqlen * p.dim, 1, p.dim};
  } else {
    r.y = empty(x.shape, x.dtype, x.device());
  }
  // written straight into final_states_out unless that shares memory with an input (the initial
  // states of the same cache slot, which the final-states kernel may read for short rows)
  const Tensor& fout = a.final_states_out;
  bool out_direct = false;
  if (fout.defined())
    out_direct = checks::direct_out("finalStatesOut", fout, x.device(), x.dtype, {p.batch, p.dim, p.width - 1}, "(batch, dim, width-1)",
                                    {x, w, bias, init, sidx});
  if (a.return_final_states || fout.defined())
    r.final_states = out_direct ? fout : empty({p.batch, p.dim, p.width - 1}, x.dtype, x.device());
  p.x = x.data();
  p.weight = w.data();
  p.bias = bias.defined() ? bias.data() : nullptr;
  p.initial_states = init.defined() ? init.data() : nullptr;
  p.seq_idx = sidx.defined() ? sidx.ptr<int32_t>() : nullptr;
  p.y = r.y.data();
  p.final_states = r.final_states.defined() ? r.final_states.data() : nullptr;
  if (r.y.numel() == 0 && !r.final_states.defined()) return r;
  if (x.device().is_cpu())
    run_cpu({x, w, bias, init, sidx}, {r.y, r.final_states}, [p] { causal_conv1d_fwd_cpu(p); });
  else
    causal_conv1d_fwd_cuda(p, cuda_stream_for(x.device()));
  if (fout.defined() && !out_direct) {
    copy_into(fout, r.final_states);
    r.final_states = fout;
  }
  return r;
}

Conv1dGrads causal_conv1d_backward(const Conv1dArgs& a) {
  CausalConv1dParams p = validate(a, true);
  Tensor x = contiguous(a.x), w = contiguous(a.weight), dy = contiguous(a.dy);
  Tensor bias = a.bias.defined() ? contiguous(a.bias) : Tensor{};
  Tensor init = a.initial_states.defined() ? contiguous(a.initial_states) : Tensor{};
  Tensor sidx = a.seq_idx.defined() ? contiguous(a.seq_idx) : Tensor{};
  Tensor dfin = a.dfinal_states.defined() ? contiguous(a.dfinal_states) : Tensor{};
  Device dev = x.device();
  Conv1dGrads g;
  g.dx = empty(x.shape, x.dtype, dev);
  g.dweight = empty(w.shape, w.dtype, dev);
  if (bias.defined()) g.dbias = empty(bias.shape, bias.dtype, dev);
  if (init.defined()) g.dinitial_states = empty(init.shape, init.dtype, dev);
  p.x = x.data();
  p.weight = w.data();
  p.bias = bias.defined() ? bias.data() : nullptr;
  p.initial_states = init.defined() ? init.data() : nullptr;
  p.seq_idx = sidx.defined() ? sidx.ptr<int32_t>() : nullptr;
  p.dy = dy.data();
  p.dfinal_states = dfin.defined() ? dfin.data() : nullptr;
  p.dx = g.dx.data();
  p.dweight = g.dweight.data();
  p.dbias = g.dbias.defined() ? g.dbias.data() : nullptr;
  p.dinitial_states = g.dinitial_states.defined() ? g.dinitial_states.data() : nullptr;
  if (dev.is_cpu()) {
    run_cpu({x, w, bias, init, sidx, dy, dfin}, {g.dx, g.dweight, g.dbias, g.dinitial_states},
            [p] { causal_conv1d_bwd_cpu(p); });
  } else {
    Tensor scratch = empty({causal_conv1d_bwd_scratch_floats(p)}, DType::Float32, dev);
    p.scratch = scratch.ptr<float>();
    causal_conv1d_bwd_cuda(p, cuda_stream_for(dev));
  }
  return g;
}

Tensor causal_conv1d_update(const Tensor& x_in, const Tensor& state, const Tensor& weight_in, const Tensor& bias_in,
                            bool silu, const Tensor& state_indices) {
  Device dev = x_in.device();
  bool cpu = dev.is_cpu();
  check_same_device(dev, {{"convState", &state}, {"weight", &weight_in}, {"bias", &bias_in}, {"convStateIndices", &state_indices}});
  checks::rank("x", x_in, 2, "(batch, dim)");
  checks::floating("x", x_in, cpu);
  CausalConv1dUpdateParams p;
  p.batch = x_in.size(0);
  p.dim = x_in.size(1);
  checks::rank("weight", weight_in, 2, "(dim, width)");
  checks::floating("weight", weight_in, cpu);
  p.width = weight_in.size(1);
  if (weight_in.size(0) != p.dim || p.width < 1)
    fail_shape("weight", "(dim, width) with dim = " + std::to_string(p.dim) + " and width >= 1", weight_in.shape);
  Tensor sidx;
  if (state_indices.defined()) {
    checks::shape("convStateIndices", state_indices, {p.batch}, "(batch)");
    checks::dtype("convStateIndices", state_indices, DType::Int32);
    if (state.ndim() != 3 || state.size(1) != p.dim || state.size(2) != p.width - 1)
      fail_shape("convState", "(slots, dim, width-1) with dim = " + std::to_string(p.dim) + ", width-1 = " + std::to_string(p.width - 1), state.shape);
    sidx = contiguous(state_indices);
    p.state_idx = sidx.ptr<int32_t>();
    p.slots = state.size(0);
  } else {
    checks::shape("convState", state, {p.batch, p.dim, p.width - 1}, "(batch, dim, width-1)");
    p.slots = p.batch;
  }
  checks::floating("convState", state, cpu);
  checks::contiguous("convState", state);
  if (bias_in.defined()) {
    checks::shape("bias", bias_in, {p.dim}, "(dim)");
    checks::floating("bias", bias_in, cpu);
    p.bias_dtype = bias_in.dtype;
  }
  // x is read in place when its rows are evenly strided (decode slices it out of in_proj's output).
  const int64_t xs = row_stride(x_in);
  Tensor x = xs >= 0 ? x_in : contiguous(x_in), w = contiguous(weight_in);
  p.x_stride = xs >= 0 ? xs : p.dim;
  p.y_stride = p.dim;
  Tensor bias = bias_in.defined() ? contiguous(bias_in) : Tensor{};
  Tensor y = empty(x.shape, x.dtype, dev);
  p.dtype = x.dtype;
  p.state_dtype = state.dtype;
  p.weight_dtype = w.dtype;
  p.silu = silu;
  p.x = x.data();
  p.state = state.data();
  p.weight = w.data();
  p.bias = bias.defined() ? bias.data() : nullptr;
  p.y = y.data();
  if (y.numel() == 0) return y;
  if (cpu)
    run_cpu({x, w, bias, sidx}, {y, state}, [p] { causal_conv1d_update_cpu(p); });
  else
    causal_conv1d_update_cuda(p, cuda_stream_for(dev));
  return y;
}

}  // namespace ss
