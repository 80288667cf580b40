#include "ops/state_update.h"
#include "ops/dispatch.h"
#include "ops/dense.h"
#include "ops/model_checks.h"
#include "ops/row_view.h"
#include "ops/tensor_ops.h"
#ifdef STATESPACE_WITH_CUDA
#include "cuda/side_stream.h"
#endif

namespace ss {

namespace {
Tensor state_update_impl(const StateUpdateArgs& a);

// dt projected by a linear layer first, then the update without dt_proj.
Tensor with_dt_projected(const StateUpdateArgs& a) {
  StateUpdateArgs b = a;
  b.dt = linear(a.dt, a.dt_proj, Tensor{});
  b.dt_proj = Tensor{};
  return state_update_impl(b);
}
}  // namespace

// With dt_proj: the dt projection runs inside the CUDA kernel when it can (Mamba-1, dstate 16),
// otherwise as a linear layer first (the same rounding either way).
Tensor selective_state_update(const StateUpdateArgs& a) {
#ifdef STATESPACE_WITH_CUDA
  // z may be the part of linear_conv_update's output left on the side stream (rest_on_side).
  if (a.z.defined() && a.state.defined() && !a.state.device().is_cpu())
    cuda::join_side_if_forked(cuda_stream_for(a.state.device()), a.state.device().index);
#endif
  if (!a.dt_proj.defined()) return state_update_impl(a);
  const Device dev = a.state.device();
  check_same_device(dev, {{"dtProj", &a.dt_proj}, {"dt", &a.dt}});
  if (a.state.ndim() != 3) fail("ERR_INVALID_ARG", ErrorKind::Type, "dtProj: only the Mamba-1 form (state (batch, dim, dstate)) takes it");
  checks::rank("dtProj", a.dt_proj, 2, "(dim, rank)");
  checks::rank("dt", a.dt, 2, "(batch, rank) with dtProj");
  if (a.dt_proj.size(0) != a.state.size(1) || a.dt_proj.size(1) != a.dt.size(1))
    fail_shape("dtProj", "(dim, rank) = (" + std::to_string(a.state.size(1)) + ", " + std::to_string(a.dt.size(1)) + ")", a.dt_proj.shape);
  checks::same_dtype("dtProj", a.dt_proj, "x", a.x.dtype);
  checks::same_dtype("dt", a.dt, "x", a.x.dtype);
#ifdef STATESPACE_WITH_CUDA
  if (!dev.is_cpu()) {
    StateUpdateArgs f = a;
    f.dt_proj = contiguous(a.dt_proj);
    return state_update_impl(f);  // (falls back below when the kernel cannot take it)
  }
#endif
  return with_dt_projected(a);
}

namespace {

Tensor state_update_impl(const StateUpdateArgs& a) {
  const Tensor& state = a.state;
  Device dev = state.device();
  bool cpu = dev.is_cpu();
  check_same_device(dev, {{"x", &a.x}, {"dt", &a.dt}, {"A", &a.A}, {"B", &a.B}, {"C", &a.C}, {"D", &a.D},
                          {"z", &a.z}, {"dtBias", &a.dt_bias}, {"stateIndices", &a.state_indices}});
  if (state.ndim() != 3 && state.ndim() != 4)
    fail_shape("state", "(batch, dim, dstate) (Mamba-1) or (batch, heads, headdim, dstate) (Mamba-2)", state.shape);
  const bool m1 = state.ndim() == 3;
  if (!(state.dtype == DType::Float32 || state.dtype == DType::BFloat16 || (cpu && state.dtype == DType::Float64)))
    fail_dtype("state", cpu ? "float32, bfloat16 or float64" : "float32 or bfloat16", dtype_name(state.dtype));
  checks::contiguous("state", state);
  StateUpdateParams p;
  // With stateIndices the batch comes from x and the state holds any number of slots.
  p.slots = state.size(0);
  p.batch = a.state_indices.defined() && a.x.ndim() >= 1 ? a.x.size(0) : state.size(0);
  p.heads = state.size(1);
  p.headdim = m1 ? 1 : state.size(2);
  p.dstate = state.size(-1);
  p.a_per_state = m1;
  p.dt_softplus = a.dt_softplus;
  if (a.has_dt_limit) {
    if (!(a.dt_min <= a.dt_max))
      fail("ERR_INVALID_ARG", ErrorKind::Type, "dtLimit: expected [min, max] with min <= max");
    p.has_dt_limit = true;
    p.dt_min = static_cast<float>(a.dt_min);
    p.dt_max = static_cast<float>(a.dt_max);
  }
  p.state_dtype = state.dtype;

  const std::string row_desc = m1 ? "(batch, dim)" : "(batch, heads, headdim)";
  std::vector<int64_t> row_shape = m1 ? std::vector<int64_t>{p.batch, p.heads} : std::vector<int64_t>{p.batch, p.heads, p.headdim};
  checks::shape("x", a.x, row_shape, row_desc);
  checks::floating("x", a.x, cpu);
  p.dtype = a.x.dtype;
  if (m1 && !a.dt_proj.defined()) {
    checks::shape("dt", a.dt, row_shape, row_desc);
  } else if (m1) {
    checks::shape("dt", a.dt, {p.batch, a.dt_proj.size(1)}, "(batch, rank)");
  } else {
    checks::shape("dt", a.dt, {p.batch, p.heads}, "(batch, heads)");
  }
  checks::same_dtype("dt", a.dt, "x", p.dtype);
  if (a.z.defined()) {
    checks::shape("z", a.z, row_shape, row_desc);
    checks::same_dtype("z", a.z, "x", p.dtype);
  }
  // Per-channel parameters in the compute type: float32 (float64 with float64 data on the CPU);
  // the kernels read them as such.
  const DType param_dtype = p.dtype == DType::Float64 ? DType::Float64 : DType::Float32;
  const char* hname = m1 ? "dim" : "heads";
  if (m1)
    checks::shape("A", a.A, {p.heads, p.dstate}, "(dim, dstate)");
  else
    checks::shape("A", a.A, {p.heads}, "(heads)");
  checks::dtype("A", a.A, param_dtype);
  if (a.D.defined()) {
    p.d_per_row = !m1 && a.D.ndim() == 2;
    if (p.d_per_row)
      checks::shape("D", a.D, {p.heads, p.headdim}, "(heads, headdim)");
    else
      checks::shape("D", a.D, {p.heads}, std::string("(") + hname + ")");
    checks::dtype("D", a.D, param_dtype);
  }
  if (a.dt_bias.defined()) {
    checks::shape("dtBias", a.dt_bias, {p.heads}, std::string("(") + hname + ")");
    checks::dtype("dtBias", a.dt_bias, param_dtype);
  }
  // B, C: (batch, dstate) (Mamba-1 only, one group) or (batch, groups, dstate).
  for (auto [name, t] : {std::pair<const char*, const Tensor*>{"B", &a.B}, {"C", &a.C}}) {
    if (m1 && t->ndim() == 2) {
      checks::shape(name, *t, {p.batch, p.dstate}, "(batch, dstate)");
    } else {
      if (t->ndim() != 3 || t->size(0) != p.batch || t->size(2) != p.dstate)
        fail_shape(name, "(batch, groups, dstate) with batch = " + std::to_string(p.batch) + ", dstate = " + std::to_string(p.dstate), t->shape);
    }
    checks::same_dtype(name, *t, "x", p.dtype);
  }
  p.groups = a.B.ndim() == 3 ? a.B.size(1) : 1;
  int64_t cgroups = a.C.ndim() == 3 ? a.C.size(1) : 1;
  if (cgroups != p.groups)
    fail_shape("C", "the groups of B (" + std::to_string(p.groups) + ")", a.C.shape);
  if (p.groups < 1 || p.heads % p.groups != 0)
    fail("ERR_SHAPE", ErrorKind::Range, std::string("B: groups (") + std::to_string(p.groups) + ") must divide " + hname + " (" + std::to_string(p.heads) + ")");

  Tensor sidx;
  if (a.state_indices.defined()) {
    checks::shape("stateIndices", a.state_indices, {p.batch}, "(batch)");
    checks::dtype("stateIndices", a.state_indices, DType::Int32);
    sidx = contiguous(a.state_indices);
    p.state_idx = sidx.ptr<int32_t>();
  }
  // x, z, dt, B, C are read in place when each batch entry is contiguous (views of the decode
  // step's projections); B and C must then share their stride.
  auto rows = [](const Tensor& t, int64_t* stride) {
    const int64_t s = batch_stride(t);
    if (s >= 0) {
      *stride = s;
      return t;
    }
    Tensor c = contiguous(t);
    *stride = batch_stride(c);
    return c;
  };
  Tensor x = rows(a.x, &p.x_stride), dt = rows(a.dt, &p.dt_stride), A = contiguous(a.A);
  int64_t b_stride = 0, c_stride = 0;
  Tensor B = rows(a.B, &b_stride), C = rows(a.C, &c_stride);
  if (b_stride != c_stride) {
    B = contiguous(B);
    C = contiguous(C);
    b_stride = batch_stride(B);
  }
  p.bc_stride = b_stride;
  Tensor D = a.D.defined() ? contiguous(a.D) : Tensor{};
  Tensor z = a.z.defined() ? rows(a.z, &p.z_stride) : Tensor{};
  Tensor bias = a.dt_bias.defined() ? contiguous(a.dt_bias) : Tensor{};
  Tensor y = empty(a.x.shape, x.dtype, dev);
  p.state = state.data();
  p.x = x.data();
  p.dt = dt.data();
  p.A = A.data();
  p.B = B.data();
  p.C = C.data();
  p.D = D.defined() ? D.data() : nullptr;
  p.z = z.defined() ? z.data() : nullptr;
  p.dt_bias = bias.defined() ? bias.data() : nullptr;
  p.y = y.data();
  if (a.dt_proj.defined()) {
    p.dt_proj = a.dt_proj.data();
    p.dt_rank = a.dt_proj.size(1);
  }
  p.state_early = a.read_state_early;
  if (y.numel() == 0) return y;
  bool fused = false;
#ifdef STATESPACE_WITH_CUDA
  fused = p.dt_proj && !cpu && state_update_cuda_fuses_dt_proj(p);
#endif
  if (p.dt_proj && !fused) return with_dt_projected(a);
  if (cpu)
    run_cpu({x, dt, A, B, C, D, z, bias, sidx}, {y, state}, [p] { state_update_cpu(p); });
  else
    state_update_cuda(p, cuda_stream_for(dev));
  return y;
}

}  // namespace

}  // namespace ss
