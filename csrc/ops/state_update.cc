#include "ops/state_update.h"
#include "ops/dispatch.h"
#include "ops/dense.h"
#include "ops/model_checks.h"
#include "ops/row_view.h"
#include "ops/tensor_ops.h"

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

// Columns [lo, hi) of a (batch, n) tensor, as a view.
Tensor columns(const Tensor& t, int64_t lo, int64_t hi) {
  Tensor v = t;
  v.offset += lo * t.stride(1);
  v.shape = {t.size(0), hi - lo};
  return v;
}

// x_proj as a linear layer first; dt, B and C are views of its output.
Tensor with_x_projected(const StateUpdateArgs& a) {
  StateUpdateArgs b = a;
  const int64_t R = a.dt_proj.size(1), N = a.state.size(2);
  const Tensor dbc = linear(a.x, a.x_proj, Tensor{});
  b.dt = columns(dbc, 0, R);
  b.B = columns(dbc, R, R + N);
  b.C = columns(dbc, R + N, R + 2 * N);
  b.x_proj = Tensor{};
  return selective_state_update(b);
}
}  // namespace

// With dt_proj: the dt projection runs inside the CUDA kernel when it can (Mamba-1, dstate 16),
// otherwise as a linear layer first (the same rounding either way).
Tensor selective_state_update(const StateUpdateArgs& a) {
  if (a.x_proj.defined()) {
    // x_proj before dt_proj: inside the CUDA kernel at batch 1 when it can, otherwise as a
    // linear layer first (the same rounding either way).
    if (!a.dt_proj.defined()) fail("ERR_INVALID_ARG", ErrorKind::Type, "xProj: takes dtProj too");
    if (a.dt.defined() || a.B.defined() || a.C.defined()) fail("ERR_INVALID_ARG", ErrorKind::Type, "xProj: dt, B and C come from xProj; don't pass them");
    if (a.state.ndim() != 3) fail("ERR_INVALID_ARG", ErrorKind::Type, "xProj: only the Mamba-1 form (state (batch, dim, dstate)) takes it");
    check_same_device(a.state.device(), {{"xProj", &a.x_proj}, {"dtProj", &a.dt_proj}, {"x", &a.x}});
    checks::rank("xProj", a.x_proj, 2, "(rank + 2·dstate, dim)");
    checks::rank("dtProj", a.dt_proj, 2, "(dim, rank)");
    checks::rank("x", a.x, 2, "(batch, dim)");
    const int64_t R = a.dt_proj.size(1), N = a.state.size(2), dim = a.state.size(1);
    checks::shape("xProj", a.x_proj, {R + 2 * N, dim}, "(rank + 2·dstate, dim) with rank = dtProj's columns");
    checks::same_dtype("xProj", a.x_proj, "x", a.x.dtype);
#ifdef STATESPACE_WITH_CUDA
    if (!a.state.device().is_cpu() && a.x.size(0) == 1) {
      StateUpdateArgs f = a;
      f.x_proj = contiguous(a.x_proj);
      f.dt_proj = contiguous(a.dt_proj);
      return state_update_impl(f);  // (falls back below when the kernel cannot take it)
    }
#endif
    return with_x_projected(a);
  }
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
  const bool xp = a.x_proj.defined();  // dt, B and C come from x_proj (batch 1, CUDA)
  if (!xp) {
    if (m1 && !a.dt_proj.defined())
      checks::shape("dt", a.dt, row_shape, row_desc);
    else if (m1)
      checks::shape("dt", a.dt, {p.batch, a.dt_proj.size(1)}, "(batch, rank)");
    else
      checks::shape("dt", a.dt, {p.batch, p.heads}, "(batch, heads)");
    checks::same_dtype("dt", a.dt, "x", p.dtype);
  }
  if (a.z.defined()) {
    checks::shape("z", a.z, row_shape, row_desc);
    checks::same_dtype("z", a.z, "x", p.dtype);
  }
  // Per-channel parameters: float32 (float64 with float64 data on the CPU).
  p.param_dtype = p.dtype == DType::Float64 ? DType::Float64 : DType::Float32;
  const char* hname = m1 ? "dim" : "heads";
  if (m1)
    checks::shape("A", a.A, {p.heads, p.dstate}, "(dim, dstate)");
  else
    checks::shape("A", a.A, {p.heads}, "(heads)");
  checks::dtype("A", a.A, p.param_dtype);
  if (a.D.defined()) {
    p.d_per_row = !m1 && a.D.ndim() == 2;
    if (p.d_per_row)
      checks::shape("D", a.D, {p.heads, p.headdim}, "(heads, headdim)");
    else
      checks::shape("D", a.D, {p.heads}, std::string("(") + hname + ")");
    checks::dtype("D", a.D, p.param_dtype);
  }
  if (a.dt_bias.defined()) {
    checks::shape("dtBias", a.dt_bias, {p.heads}, std::string("(") + hname + ")");
    checks::dtype("dtBias", a.dt_bias, p.param_dtype);
  }
  // B, C: (batch, dstate) (Mamba-1 only, one group) or (batch, groups, dstate).
  for (auto [name, t] : {std::pair<const char*, const Tensor*>{"B", &a.B}, {"C", &a.C}}) {
    if (xp) break;
    if (m1 && t->ndim() == 2) {
      checks::shape(name, *t, {p.batch, p.dstate}, "(batch, dstate)");
    } else {
      if (t->ndim() != 3 || t->size(0) != p.batch || t->size(2) != p.dstate)
        fail_shape(name, "(batch, groups, dstate) with batch = " + std::to_string(p.batch) + ", dstate = " + std::to_string(p.dstate), t->shape);
    }
    checks::same_dtype(name, *t, "x", p.dtype);
  }
  p.groups = !xp && a.B.ndim() == 3 ? a.B.size(1) : 1;
  int64_t cgroups = !xp && a.C.ndim() == 3 ? a.C.size(1) : 1;
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
  Tensor x = rows(a.x, &p.x_stride), dt = xp ? Tensor{} : rows(a.dt, &p.dt_stride), A = contiguous(a.A);
  int64_t b_stride = 0, c_stride = 0;
  Tensor B = xp ? Tensor{} : rows(a.B, &b_stride), C = xp ? Tensor{} : rows(a.C, &c_stride);
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
  p.dt = xp ? nullptr : dt.data();
  p.A = A.data();
  p.B = xp ? nullptr : B.data();
  p.C = xp ? nullptr : C.data();
  p.D = D.defined() ? D.data() : nullptr;
  p.z = z.defined() ? z.data() : nullptr;
  p.dt_bias = bias.defined() ? bias.data() : nullptr;
  p.y = y.data();
  if (a.dt_proj.defined()) {
    p.dt_proj = a.dt_proj.data();
    p.dt_rank = a.dt_proj.size(1);
  }
  if (xp) p.x_proj = a.x_proj.data();
  if (y.numel() == 0) return y;
  bool fused = false;
#ifdef STATESPACE_WITH_CUDA
  if (xp) {
    if (!state_update_cuda_fuses_x_proj(p)) return with_x_projected(a);
    state_update_cuda(p, cuda_stream_for(dev));
    return y;
  }
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
