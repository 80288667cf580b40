// SSD chunked scan: validation, dtype staging (or, for the CUDA forward, strided views read in
// place), output allocation and dispatch (CPU or CUDA).
#include "ops/ssd_op.h"
#include <cmath>
#include <cstdint>
#include <limits>
#include "ops/dispatch.h"
#include "ops/tensor_ops.h"

namespace ss {
namespace {

std::string dims(std::initializer_list<std::pair<const char*, int64_t>> ds) {
  std::string names = "(", vals = "(";
  bool first = true;
  for (auto& [n, v] : ds) {
    names += (first ? "" : ", ") + std::string(n);
    vals += (first ? "" : ", ") + std::to_string(v);
    first = false;
  }
  return names + ") = " + vals + ")";
}

void expect_shape(const char* name, const Tensor& t, const std::vector<int64_t>& want, const std::string& desc) {
  if (t.defined() && t.shape != want) fail_shape(name, desc, t.shape);
}

bool is_half(DType d) { return d == DType::Float16 || d == DType::BFloat16; }

void expect_float(const char* name, const Tensor& t, bool cpu) {
  if (!t.defined()) return;
  const bool ok = t.dtype == DType::Float32 || is_half(t.dtype) || (cpu && t.dtype == DType::Float64);
  if (!ok) fail_dtype(name, cpu ? "float32, float16, bfloat16 or float64" : "float32, float16 or bfloat16", dtype_name(t.dtype));
}

// Per-head parameters and states: float32 (float64 also allowed when x is float64).
void expect_param(const char* name, const Tensor& t, DType xdtype) {
  if (!t.defined()) return;
  if (t.dtype == DType::Float32 || (xdtype == DType::Float64 && t.dtype == DType::Float64)) return;
  fail_dtype(name, xdtype == DType::Float64 ? "float32 or float64" : "float32", dtype_name(t.dtype));
}

// t converted to `d`, contiguous (itself when already so); undefined stays undefined.
Tensor staged(const Tensor& t, DType d) {
  if (!t.defined()) return t;
  if (t.dtype == d) return contiguous(t);
  return copy_to(t, d, t.device());
}

// The (batch, token) strides of a (batch, seqlen, ...) tensor whose dims after the second are
// contiguous among themselves (a row of a token is one contiguous block), whose rows do not
// overlap and whose batch entries follow one another (token stride ≥ the row, batch stride ≥
// seqlen · token stride: the views mamba2's prefill slices out of wider buffers); false otherwise.
// Dims of size 1 are never stepped over: they take the strides of a contiguous tensor. Every
// contiguous tensor qualifies.
bool token_strides(const Tensor& t, SsdTokenStrides* out) {
  int64_t row = 1;
  for (int i = t.ndim() - 1; i >= 2; --i) {
    if (t.shape[i] != 1 && t.strides[i] != row) return false;
    row *= t.shape[i];
  }
  SsdTokenStrides s;
  s.token = t.shape[1] == 1 ? row : t.strides[1];
  s.batch = t.shape[0] == 1 ? t.shape[1] * s.token : t.strides[0];
  if (s.token < row || s.batch < t.shape[1] * s.token) return false;
  *out = s;
  return true;
}

// The operand the backend reads and its row strides: t itself where the CUDA forward reads it in
// place (`in_place` and t row-strided; for x, z, B, C (`aligned16`) also in the compute dtype and
// 16-byte aligned — the address and both strides: the tile copies move 16-byte pieces and the bulk
// tensor copies' maps (TMA) take only 16-byte aligned addresses and strides), else its staged copy
// (a contiguous tensor is its own, aligned or not), whose bytes go to *copied.
Tensor operand(const Tensor& t, DType d, bool in_place, bool aligned16, SsdTokenStrides* str, size_t* copied) {
  if (!t.defined()) return t;
  const int64_t es = int64_t(dtype_size(t.dtype));
  if (in_place && token_strides(t, str) &&
      (!aligned16 || (t.dtype == d && reinterpret_cast<uintptr_t>(t.data()) % 16 == 0 && (str->token * es) % 16 == 0 &&
                      (str->batch * es) % 16 == 0)))
    return t;
  Tensor u = staged(t, d);
  token_strides(u, str);  // (contiguous)
  if (u.data() != t.data()) *copied += u.nbytes();
  return u;
}

struct Checked {
  int64_t batch, seqlen, heads, headdim, dstate, groups;
  bool cpu;
  DType compute;  // CPU: f32 or f64; CUDA: x's dtype for activations, f32 for the rest
};

Checked validate(const SsdInputs& in, const Tensor* dout, const Tensor* dfinal) {
  const Tensor &x = in.x, &dt = in.dt, &A = in.A, &B = in.B, &C = in.C;
  const Device dev = x.device();
  check_same_device(dev, {{"dt", &dt}, {"A", &A}, {"B", &B}, {"C", &C}, {"D", &in.D}, {"z", &in.z},
                          {"dtBias", &in.dt_bias}, {"initialStates", &in.initial_states}, {"seqIdx", &in.seq_idx},
                          {"dy", dout}, {"dFinalStates", dfinal}});
  Checked c{};
  c.cpu = dev.is_cpu();
  if (x.ndim() != 4) fail_shape("x", "4 dimensions (batch, seqlen, heads, headdim)", x.shape);
  c.batch = x.shape[0], c.seqlen = x.shape[1], c.heads = x.shape[2], c.headdim = x.shape[3];
  if (B.ndim() != 4) fail_shape("B", "4 dimensions (batch, seqlen, groups, dstate)", B.shape);
  c.groups = B.shape[2], c.dstate = B.shape[3];
  for (auto [n, v] : {std::pair<const char*, int64_t>{"batch", c.batch}, {"seqlen", c.seqlen}, {"heads", c.heads},
                      {"headdim", c.headdim}, {"groups", c.groups}, {"dstate", c.dstate}})
    if (v < 1) fail("ERR_SHAPE", ErrorKind::Range, std::string(n) + ": must be at least 1, got " + std::to_string(v) + " (x " + shape_str(x.shape) + ", B " + shape_str(B.shape) + ")");
  if (c.heads % c.groups)
    fail("ERR_SHAPE", ErrorKind::Range, "B: groups (" + std::to_string(c.groups) + ") must divide heads (" + std::to_string(c.heads) + ")");
  const auto xs = dims({{"batch", c.batch}, {"seqlen", c.seqlen}, {"heads", c.heads}, {"headdim", c.headdim}});
  const auto bs = dims({{"batch", c.batch}, {"seqlen", c.seqlen}, {"groups", c.groups}, {"dstate", c.dstate}});
  const auto ss = dims({{"batch", c.batch}, {"heads", c.heads}, {"headdim", c.headdim}, {"dstate", c.dstate}});
  expect_shape("B", B, {c.batch, c.seqlen, c.groups, c.dstate}, bs);
  expect_shape("C", C, {c.batch, c.seqlen, c.groups, c.dstate}, bs);
  expect_shape("z", in.z, {c.batch, c.seqlen, c.heads, c.headdim}, xs);
  expect_shape("dt", dt, {c.batch, c.seqlen, c.heads}, dims({{"batch", c.batch}, {"seqlen", c.seqlen}, {"heads", c.heads}}));
  expect_shape("A", A, {c.heads}, dims({{"heads", c.heads}}));
  expect_shape("dtBias", in.dt_bias, {c.heads}, dims({{"heads", c.heads}}));
  if (in.D.defined() && in.D.shape != std::vector<int64_t>{c.heads} &&
      in.D.shape != std::vector<int64_t>{c.heads, c.headdim})
    fail_shape("D", "(heads) = (" + std::to_string(c.heads) + ") or (heads, headdim) = (" + std::to_string(c.heads) + ", " + std::to_string(c.headdim) + ")", in.D.shape);
  expect_shape("initialStates", in.initial_states, {c.batch, c.heads, c.headdim, c.dstate}, ss);
  expect_shape("seqIdx", in.seq_idx, {c.batch, c.seqlen}, dims({{"batch", c.batch}, {"seqlen", c.seqlen}}));
  if (dout) expect_shape("dy", *dout, {c.batch, c.seqlen, c.heads, c.headdim}, xs);
  if (dfinal) expect_shape("dFinalStates", *dfinal, {c.batch, c.heads, c.headdim, c.dstate}, ss);

  for (auto [n, t] : {std::pair<const char*, const Tensor*>{"x", &x}, {"dt", &dt}, {"B", &B}, {"C", &C}, {"z", &in.z}})
    expect_float(n, *t, c.cpu);
  if (dout) expect_float("dy", *dout, c.cpu);
  for (auto [n, t] : {std::pair<const char*, const Tensor*>{"A", &A}, {"D", &in.D}, {"dtBias", &in.dt_bias},
                      {"initialStates", &in.initial_states}})
    expect_param(n, *t, x.dtype);
  if (dfinal) expect_param("dFinalStates", *dfinal, x.dtype);
  if (in.seq_idx.defined() && in.seq_idx.dtype != DType::Int32) fail_dtype("seqIdx", "int32", dtype_name(in.seq_idx.dtype));
  if (x.dtype == DType::Float64)
    for (auto [n, t] : {std::pair<const char*, const Tensor*>{"dt", &dt}, {"B", &B}, {"C", &C}, {"z", &in.z}})
      if (t->defined() && t->dtype != DType::Float64) fail_dtype(n, "float64 (like x)", dtype_name(t->dtype));

  if (!(in.chunk_size >= 1) || in.chunk_size != std::floor(in.chunk_size) || in.chunk_size > (1 << 20))
    fail("ERR_INVALID_ARG", ErrorKind::Type, "chunkSize: expected a positive integer, got " + std::to_string(in.chunk_size));
  if (std::isnan(in.dt_min) || std::isnan(in.dt_max) || in.dt_min > in.dt_max)
    fail("ERR_INVALID_ARG", ErrorKind::Type, "dtLimit: expected [lo, hi] with lo <= hi, got [" + std::to_string(in.dt_min) + ", " + std::to_string(in.dt_max) + "]");
  if (!c.cpu) {
    if (c.headdim > kSsdCudaMaxHeaddim)
      fail("ERR_SHAPE", ErrorKind::Range, "x: headdim up to " + std::to_string(kSsdCudaMaxHeaddim) + " on CUDA, got " + std::to_string(c.headdim));
    if (c.dstate > kSsdCudaMaxDstate)
      fail("ERR_SHAPE", ErrorKind::Range, "B: dstate up to " + std::to_string(kSsdCudaMaxDstate) + " on CUDA, got " + std::to_string(c.dstate));
  }
  c.compute = c.cpu ? (x.dtype == DType::Float64 ? DType::Float64 : DType::Float32) : x.dtype;
  return c;
}

// The staged inputs (converted, contiguous; or the caller's own views, see stage) and the params
// pointing at them.
struct Staged {
  Tensor x, z, B, C, dt, A, D, dt_bias, h0, seq_idx, dout, dfinal;
  SsdParams p;
  size_t input_copy_bytes = 0;  // of x, z, B, C, dt: the copies operand() made of them
};

// The CUDA forward reads row-strided x, z, B, C, dt in place (operand), with their strides in the
// params; the CPU backends and the backward take contiguous copies.
Staged stage(const SsdInputs& in, const Checked& c, const Tensor* dout, const Tensor* dfinal) {
  Staged s;
  const DType act = c.compute;                                          // x, z, B, C, dy
  const DType par = c.cpu ? c.compute : DType::Float32;                 // dt, A, D, dtBias, states
  const bool in_place = !c.cpu && !dout;
  SsdParams& p = s.p;
  size_t* copied = &s.input_copy_bytes;
  s.x = operand(in.x, act, in_place, true, &p.x_str, copied), s.z = operand(in.z, act, in_place, true, &p.z_str, copied);
  s.B = operand(in.B, act, in_place, true, &p.B_str, copied), s.C = operand(in.C, act, in_place, true, &p.C_str, copied);
  s.dt = operand(in.dt, par, in_place, false, &p.dt_str, copied);
  s.A = staged(in.A, par), s.D = staged(in.D, par), s.dt_bias = staged(in.dt_bias, par);
  s.h0 = staged(in.initial_states, par);
  s.seq_idx = in.seq_idx.defined() ? contiguous(in.seq_idx) : Tensor{};
  if (dout) s.dout = staged(*dout, act);
  if (dfinal) s.dfinal = staged(*dfinal, par);
  p.batch = c.batch, p.seqlen = c.seqlen, p.heads = c.heads, p.headdim = c.headdim, p.dstate = c.dstate, p.groups = c.groups;
  p.chunk = static_cast<int64_t>(in.chunk_size);
  p.dtype = act;
  p.x = s.x.data(), p.B = s.B.data(), p.C = s.C.data(), p.dt = s.dt.data(), p.A = s.A.data();
  p.z = s.z.defined() ? s.z.data() : nullptr;
  p.dt_dtype = s.dt.dtype;
  p.D = s.D.defined() ? s.D.data() : nullptr;
  p.d_per_channel = s.D.defined() && s.D.ndim() == 2;
  p.dt_bias = s.dt_bias.defined() ? s.dt_bias.data() : nullptr;
  p.initial_states = s.h0.defined() ? s.h0.data() : nullptr;
  p.seq_idx = s.seq_idx.defined() ? s.seq_idx.ptr<int32_t>() : nullptr;
  p.dt_softplus = in.dt_softplus;
  p.dt_min = in.dt_min, p.dt_max = in.dt_max;
  p.clamp_dt = !(in.dt_min <= 0.0 && std::isinf(in.dt_max));
  p.dout = s.dout.defined() ? s.dout.data() : nullptr;
  p.dfinal_states = s.dfinal.defined() ? s.dfinal.data() : nullptr;
  return s;
}

std::vector<Tensor> inputs_of(const Staged& s) {
  return {s.x, s.z, s.B, s.C, s.dt, s.A, s.D, s.dt_bias, s.h0, s.seq_idx, s.dout, s.dfinal};
}

Tensor scratch_tensor(size_t bytes, Device dev) {
  return empty({static_cast<int64_t>((bytes + 3) / 4)}, DType::Float32, dev);
}

// out converted to the dtype the user gave for the matching input.
Tensor as_dtype(const Tensor& t, DType d) { return t.dtype == d ? t : copy_to(t, d, t.device()); }

}  // namespace

SsdForwardResult ssd_forward(const SsdInputs& in) {
  Checked c = validate(in, nullptr, nullptr);
  Staged s = stage(in, c, nullptr, nullptr);
  const Device dev = in.x.device();
  const DType par = c.cpu ? c.compute : DType::Float32;
  Tensor y = empty({c.batch, c.seqlen, c.heads, c.headdim}, c.compute, dev);
  Tensor fin = in.return_final_states ? empty({c.batch, c.heads, c.headdim, c.dstate}, par, dev) : Tensor{};
  s.p.y = y.data();
  s.p.final_states = fin.defined() ? fin.data() : nullptr;
  SsdForwardResult r;
  if (c.cpu) {
    SsdParams p = s.p;
    run_cpu(inputs_of(s), {y, fin}, [p] { ssd_forward_cpu(p); });
  } else {
    const size_t need = ssd_forward_cuda_scratch(s.p);
    Tensor scratch = need ? scratch_tensor(need, dev) : Tensor{};
    r.workspace_bytes = need ? scratch.nbytes() : 0;
    r.staged_input_bytes = s.input_copy_bytes;
    ssd_forward_cuda(s.p, need ? scratch.data() : nullptr, cuda_stream_for(dev));
  }
  r.y = as_dtype(y, in.x.dtype);
  r.final_states = fin;  // float32 (float64 on the CPU float64 path)
  return r;
}

SsdBackwardResult ssd_backward(const SsdInputs& in, const Tensor& dout, const Tensor& dfinal) {
  Checked c = validate(in, &dout, dfinal.defined() ? &dfinal : nullptr);
  Staged s = stage(in, c, &dout, dfinal.defined() ? &dfinal : nullptr);
  const Device dev = in.x.device();
  const DType act = c.compute, par = c.cpu ? c.compute : DType::Float32;
  const DType bc = c.cpu ? c.compute : DType::Float32;  // dB/dC as the backend writes them
  SsdBackwardResult r;
  Tensor dx = empty(in.x.shape, act, dev);
  Tensor dz = in.z.defined() ? empty(in.z.shape, act, dev) : Tensor{};
  Tensor dB = empty(in.B.shape, bc, dev), dC = empty(in.C.shape, bc, dev);
  Tensor ddt = empty(in.dt.shape, par, dev), dA = empty(in.A.shape, par, dev);
  Tensor dD = in.D.defined() ? empty(in.D.shape, par, dev) : Tensor{};
  Tensor dbias = in.dt_bias.defined() ? empty(in.dt_bias.shape, par, dev) : Tensor{};
  Tensor dh0 = in.initial_states.defined() ? empty(in.initial_states.shape, par, dev) : Tensor{};
  SsdParams& p = s.p;
  p.dx = dx.data(), p.dB = dB.data(), p.dC = dC.data(), p.ddt = ddt.data(), p.dA = dA.data();
  p.dz = dz.defined() ? dz.data() : nullptr;
  p.dD = dD.defined() ? dD.data() : nullptr;
  p.ddt_bias = dbias.defined() ? dbias.data() : nullptr;
  p.dinitial_states = dh0.defined() ? dh0.data() : nullptr;
  if (c.cpu) {
    SsdParams pc = p;
    run_cpu(inputs_of(s), {dx, dz, dB, dC, ddt, dA, dD, dbias, dh0}, [pc] { ssd_backward_cpu(pc); });
  } else {
    Tensor scratch = scratch_tensor(ssd_backward_cuda_scratch(p), dev);
    r.workspace_bytes = scratch.nbytes();
    ssd_backward_cuda(p, scratch.data(), cuda_stream_for(dev));
  }
  r.dx = as_dtype(dx, in.x.dtype);
  if (dz.defined()) r.dz = as_dtype(dz, in.z.dtype);
  r.dB = as_dtype(dB, in.B.dtype);
  r.dC = as_dtype(dC, in.C.dtype);
  r.ddt = as_dtype(ddt, in.dt.dtype);
  r.dA = as_dtype(dA, in.A.dtype);
  if (dD.defined()) r.dD = as_dtype(dD, in.D.dtype);
  if (dbias.defined()) r.ddt_bias = as_dtype(dbias, in.dt_bias.dtype);
  if (dh0.defined()) r.dinitial_states = as_dtype(dh0, in.initial_states.dtype);
  return r;
}

#ifndef STATESPACE_WITH_CUDA
size_t ssd_forward_cuda_scratch(const SsdParams&) { return 0; }
size_t ssd_backward_cuda_scratch(const SsdParams&) { return 0; }
void ssd_forward_cuda(const SsdParams&, void*, void*) { fail("ERR_DEVICE", ErrorKind::Type, "ssdChunkScan: built without CUDA"); }
void ssd_backward_cuda(const SsdParams&, void*, void*) { fail("ERR_DEVICE", ErrorKind::Type, "ssdChunkScanBackward: built without CUDA"); }
#endif

}  // namespace ss
