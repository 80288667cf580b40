// Selective scan: validation of every argument, output allocation, params, backend dispatch.
#include <string>
#include "ops/dispatch.h"
#include "ops/model_checks.h"
#include "ops/selective_scan.h"
#include "ops/selective_scan_api.h"
#include "ops/tensor_ops.h"

namespace ss {
namespace {

constexpr int64_t kMaxDstate = 256;

std::string dims(std::initializer_list<std::pair<const char*, int64_t>> ds) {
  std::string names = "(", vals = " = (";
  bool first = true;
  for (auto& [n, v] : ds) {
    if (!first) names += ", ", vals += ", ";
    names += n;
    vals += std::to_string(v);
    first = false;
  }
  return names + ")" + vals + ")";
}

void need_shape(const char* name, const Tensor& t, const std::vector<int64_t>& want, const std::string& expected) {
  if (t.shape != want) fail_shape(name, expected, t.shape);
}
void need_dtype(const char* name, const Tensor& t, DType want) {
  if (t.dtype != want) fail_dtype(name, dtype_name(want), dtype_name(t.dtype));
}

// Validates B or C and describes its form: (dim, dstate), (batch, dstate, seqlen) or
// (batch, groups, dstate, seqlen).
void check_bc(const char* name, const Tensor& t, int64_t batch, int64_t dim, int64_t seqlen, int64_t dstate, DType dtype,
              ScanBCForm* form, int64_t* groups) {
  const std::string forms = dims({{"dim", dim}, {"dstate", dstate}}) + ", " +
                            dims({{"batch", batch}, {"dstate", dstate}, {"seqlen", seqlen}}) + " or (batch, groups, dstate, seqlen)";
  *groups = 1;
  if (t.ndim() == 2) {
    need_shape(name, t, {dim, dstate}, forms);
    *form = ScanBCForm::TimeInvariant;
  } else if (t.ndim() == 3) {
    need_shape(name, t, {batch, dstate, seqlen}, forms);
    *form = ScanBCForm::PerStep;
  } else if (t.ndim() == 4) {
    const int64_t g = t.shape[1];
    need_shape(name, t, {batch, g, dstate, seqlen}, forms);
    if (g < 1 || dim % g != 0)
      fail("ERR_SHAPE", ErrorKind::Range,
           std::string(name) + ": groups (" + std::to_string(g) + ") must divide dim (" + std::to_string(dim) + ")");
    *form = ScanBCForm::PerStep;
    *groups = g;
  } else {
    fail_shape(name, forms, t.shape);
  }
  need_dtype(name, t, dtype);
}

struct Checked {
  SelectiveScanParams p;
  SelectiveScanInputs in;  // contiguous versions
};

Checked check(const SelectiveScanInputs& raw) {
  const Tensor& u = raw.u;
  if (u.ndim() != 3) fail_shape("u", "(batch, dim, seqlen)", u.shape);
  const int64_t batch = u.shape[0], dim = u.shape[1], seqlen = u.shape[2];
  if (batch < 1 || dim < 1 || seqlen < 1)
    fail("ERR_SHAPE", ErrorKind::Range, "u: batch, dim and seqlen must be at least 1, got " + shape_str(u.shape));
  const Device dev = u.device();
  if (dev.is_cuda() && batch > 65535)  // one grid row per batch entry
    fail("ERR_SHAPE", ErrorKind::Range, "u: batch must be at most 65535 on CUDA, got " + std::to_string(batch));
  check_same_device(dev, {{"delta", &raw.delta}, {"A", &raw.A}, {"B", &raw.B}, {"C", &raw.C}, {"D", &raw.D},
                          {"z", &raw.z}, {"deltaBias", &raw.delta_bias}, {"initialState", &raw.initial_state},
                          {"seqIdx", &raw.seq_idx}});
  const DType dt = u.dtype;
  if (dt != DType::Float32 && dt != DType::Float16 && dt != DType::BFloat16 && dt != DType::Float64)
    fail_dtype("u", "float32, float16 or bfloat16 (float64 on the CPU)", dtype_name(dt));
  // A, D, deltaBias and states are f32, or f64 on the float64 path.
  const DType wt = dt == DType::Float64 ? DType::Float64 : DType::Float32;
  const std::string bds = dims({{"batch", batch}, {"dim", dim}, {"seqlen", seqlen}});
  need_shape("delta", raw.delta, u.shape, bds);
  need_dtype("delta", raw.delta, dt);
  if (raw.z.defined()) {
    need_shape("z", raw.z, u.shape, bds);
    need_dtype("z", raw.z, dt);
  }
  if (raw.A.ndim() != 2 || raw.A.shape[0] != dim) fail_shape("A", "(dim, dstate) with dim = " + std::to_string(dim), raw.A.shape);
  const int64_t dstate = raw.A.shape[1];
  if (dstate < 1 || dstate > kMaxDstate)
    fail("ERR_SHAPE", ErrorKind::Range, "A: dstate must be in [1, 256], got " + std::to_string(dstate));
  need_dtype("A", raw.A, wt);

  Checked c;
  SelectiveScanParams& p = c.p;
  p.batch = batch, p.dim = dim, p.seqlen = seqlen, p.dstate = dstate, p.dtype = dt;
  p.delta_softplus = raw.delta_softplus;
  check_bc("B", raw.B, batch, dim, seqlen, dstate, dt, &p.b_form, &p.b_groups);
  check_bc("C", raw.C, batch, dim, seqlen, dstate, dt, &p.c_form, &p.c_groups);
  for (auto [name, t] : {std::pair<const char*, const Tensor*>{"D", &raw.D}, {"deltaBias", &raw.delta_bias}}) {
    if (!t->defined()) continue;
    need_shape(name, *t, {dim}, dims({{"dim", dim}}));
    need_dtype(name, *t, wt);
  }
  if (raw.initial_state.defined()) {
    need_shape("initialState", raw.initial_state, {batch, dim, dstate}, dims({{"batch", batch}, {"dim", dim}, {"dstate", dstate}}));
    need_dtype("initialState", raw.initial_state, wt);
  }
  if (raw.seq_idx.defined()) {
    need_shape("seqIdx", raw.seq_idx, {batch, seqlen}, dims({{"batch", batch}, {"seqlen", seqlen}}));
    need_dtype("seqIdx", raw.seq_idx, DType::Int32);
  }

  auto cont = [](const Tensor& t) { return t.defined() ? contiguous(t) : t; };
  SelectiveScanInputs& in = c.in;
  in = {cont(raw.u), cont(raw.delta), cont(raw.A), cont(raw.B), cont(raw.C), cont(raw.D),
        cont(raw.z), cont(raw.delta_bias), cont(raw.initial_state), cont(raw.seq_idx), raw.delta_softplus};
  auto ptr = [](const Tensor& t) -> const void* { return t.defined() ? t.data() : nullptr; };
  p.u = ptr(in.u), p.delta = ptr(in.delta), p.z = ptr(in.z), p.A = ptr(in.A), p.B = ptr(in.B), p.C = ptr(in.C);
  p.D = ptr(in.D), p.delta_bias = ptr(in.delta_bias), p.initial_state = ptr(in.initial_state);
  p.seq_idx = static_cast<const int32_t*>(ptr(in.seq_idx));
  return c;
}

std::vector<Tensor> inputs_of(const SelectiveScanInputs& in) {
  return {in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias, in.initial_state, in.seq_idx};
}

#ifdef STATESPACE_WITH_CUDA
// Sets p.n_chunks: how many state checkpoints the forward writes per row (one every chunk of steps).
void set_cuda_chunks(SelectiveScanParams& p) {
  const int64_t chunk = selective_scan_cuda_chunk(p);
  p.n_chunks = (p.seqlen + chunk - 1) / chunk;
}

// Allocates the forward's state checkpoints on the device, for the backward.
Tensor cuda_checkpoints(SelectiveScanParams& p, Device dev) {
  set_cuda_chunks(p);
  Tensor ck = empty({p.batch, p.dim, p.n_chunks, p.dstate}, DType::Float32, dev);
  p.checkpoints = ck.ptr<float>();
  return ck;
}
#endif

}  // namespace

SelectiveScanOutputs selective_scan(const SelectiveScanInputs& raw, bool return_last_state, bool return_checkpoints,
                                    const Tensor& last_state_out) {
  Checked c = check(raw);
  SelectiveScanParams& p = c.p;
  const Device dev = c.in.u.device();
  const DType wt = p.dtype == DType::Float64 ? DType::Float64 : DType::Float32;
  SelectiveScanOutputs out;
  out.y = empty(c.in.u.shape, p.dtype, dev);
  p.y = out.y.data();
  // written straight into last_state_out unless that shares memory with an input (the initial state
  // of the same cache slot: segment 0 may read it after the last segment wrote)
  bool out_direct = false;
  if (last_state_out.defined())
    out_direct = checks::direct_out("lastStateOut", last_state_out, dev, wt, {p.batch, p.dim, p.dstate},
                                    dims({{"batch", p.batch}, {"dim", p.dim}, {"dstate", p.dstate}}), inputs_of(c.in));
  if (return_last_state || last_state_out.defined()) {
    out.last_state = out_direct ? last_state_out : empty({p.batch, p.dim, p.dstate}, wt, dev);
    p.last_state = out.last_state.data();
  }
  if (dev.is_cpu()) {
    run_cpu(inputs_of(c.in), {out.y, out.last_state}, [p] { selective_scan_fwd_cpu(p); });
  } else {
#ifdef STATESPACE_WITH_CUDA
    void* stream = cuda_stream_for(dev);
    // the state every chunk for a later backward (which then skips its own forward pass)
    if (return_checkpoints) out.checkpoints = cuda_checkpoints(p, dev);
    // few rows: time segments, their end states in a buffer freed in stream order after the call
    Tensor ends;
    p.n_seg = selective_scan_cuda_segments(p, &p.seg_len);
    if (p.n_seg > 1) {
      ends = empty({p.batch, p.dim, p.n_seg - 1, p.dstate + 2}, DType::Float32, dev);
      p.seg_ends = ends.ptr<float>();
    }
    selective_scan_fwd_cuda(p, stream);
#else
    cuda_stream_for(dev);  // throws: built without CUDA
#endif
  }
  if (last_state_out.defined() && !out_direct) {
    copy_into(last_state_out, out.last_state);
    out.last_state = last_state_out;
  }
  return out;
}

SelectiveScanGrads selective_scan_backward(const SelectiveScanInputs& raw, const Tensor& dy_raw,
                                           const Tensor& d_last_raw, const Tensor& ck_raw) {
  Checked c = check(raw);
  SelectiveScanParams& p = c.p;
  const SelectiveScanInputs& in = c.in;
  const Device dev = in.u.device();
  const DType wt = p.dtype == DType::Float64 ? DType::Float64 : DType::Float32;
  check_same_device(dev, {{"dy", &dy_raw}, {"dLastState", &d_last_raw}, {"checkpoints", &ck_raw}});
  need_shape("dy", dy_raw, in.u.shape, dims({{"batch", p.batch}, {"dim", p.dim}, {"seqlen", p.seqlen}}));
  need_dtype("dy", dy_raw, p.dtype);
  if (d_last_raw.defined()) {
    need_shape("dLastState", d_last_raw, {p.batch, p.dim, p.dstate}, dims({{"batch", p.batch}, {"dim", p.dim}, {"dstate", p.dstate}}));
    need_dtype("dLastState", d_last_raw, wt);
  }
  const Tensor dy = contiguous(dy_raw);
  const Tensor d_last = d_last_raw.defined() ? contiguous(d_last_raw) : d_last_raw;
  p.dy = dy.data();
  p.d_last_state = d_last.defined() ? d_last.data() : nullptr;

  SelectiveScanGrads g;
  g.du = empty(in.u.shape, p.dtype, dev);
  g.ddelta = empty(in.u.shape, p.dtype, dev);
  g.dA = empty(in.A.shape, wt, dev);
  g.dB = empty(in.B.shape, p.dtype, dev);
  g.dC = empty(in.C.shape, p.dtype, dev);
  if (in.z.defined()) g.dz = empty(in.u.shape, p.dtype, dev);
  if (in.D.defined()) g.dD = empty({p.dim}, wt, dev);
  if (in.delta_bias.defined()) g.d_delta_bias = empty({p.dim}, wt, dev);
  if (in.initial_state.defined()) g.d_initial_state = empty(in.initial_state.shape, wt, dev);
  auto ptr = [](const Tensor& t) -> void* { return t.defined() ? t.data() : nullptr; };
  p.du = ptr(g.du), p.ddelta = ptr(g.ddelta), p.dA = ptr(g.dA), p.dB = ptr(g.dB), p.dC = ptr(g.dC);
  p.dz = ptr(g.dz), p.dD = ptr(g.dD), p.d_delta_bias = ptr(g.d_delta_bias), p.d_initial_state = ptr(g.d_initial_state);
  std::vector<Tensor> outs = {g.du, g.ddelta, g.dA, g.dB, g.dC, g.dz, g.dD, g.d_delta_bias, g.d_initial_state};

  if (dev.is_cpu()) {
    std::vector<Tensor> ins = inputs_of(in);
    ins.push_back(dy);
    ins.push_back(d_last);
    run_cpu(std::move(ins), std::move(outs), [p] { selective_scan_bwd_cpu(p); });
  } else {
#ifdef STATESPACE_WITH_CUDA
    void* stream = cuda_stream_for(dev);
    // The backward recomputes from state checkpoints: the forward's, when given, else a forward
    // pass that writes only those, then the reverse pass. Tensors allocated here are freed in
    // stream order when they go out of scope.
    Tensor ck;
    if (ck_raw.defined()) {
      set_cuda_chunks(p);
      need_shape("checkpoints", ck_raw, {p.batch, p.dim, p.n_chunks, p.dstate},
                 dims({{"batch", p.batch}, {"dim", p.dim}, {"chunks", p.n_chunks}, {"dstate", p.dstate}}) +
                     " as selectiveScan returns with returnCheckpoints");
      need_dtype("checkpoints", ck_raw, DType::Float32);
      ck = contiguous(ck_raw);
      p.checkpoints = ck.ptr<float>();
    } else {
      ck = cuda_checkpoints(p, dev);
    }
    Tensor scratch = empty({selective_scan_cuda_bwd_scratch_floats(p)}, DType::Float32, dev);
    p.scratch = scratch.ptr<float>();
    p.scratch_floats = scratch.numel();
    if (!ck_raw.defined()) {
      SelectiveScanParams fp = p;
      fp.y = nullptr;
      fp.last_state = nullptr;
      selective_scan_fwd_cuda(fp, stream);
    }
    selective_scan_bwd_cuda(p, stream);
#else
    cuda_stream_for(dev);
#endif
  }
  return g;
}

}  // namespace ss
