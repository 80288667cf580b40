#include "ops/mamba_decode.h"
#include <cstdint>
#include <string>
#include "ops/dispatch.h"
#include "ops/model_checks.h"

namespace ss {

namespace {

// Layer l's tensor of a per-layer list: present (or absent for optional lists), on dev, `shape`,
// dtype `dt`, contiguous.
const Tensor* layer_tensor(const std::vector<Tensor>& v, const char* name, size_t l, Device dev, const std::vector<int64_t>& shape,
                           const std::string& desc, DType dt, bool optional = false) {
  const std::string label = std::string(name) + "[" + std::to_string(l) + "]";
  if (optional && v.empty()) return nullptr;
  if (l >= v.size() || !v[l].defined()) {
    if (optional) return nullptr;
    fail("ERR_INVALID_ARG", ErrorKind::Type, label + ": missing (one tensor per layer)");
  }
  const Tensor& t = v[l];
  if (!(t.device() == dev)) fail("ERR_DEVICE", ErrorKind::Type, label + ": expected device " + dev.str() + ", got " + t.device().str());
  checks::shape(label.c_str(), t, shape, desc);
  checks::dtype(label.c_str(), t, dt);
  checks::contiguous(label.c_str(), t);
  return &t;
}

}  // namespace

bool mamba_decode_stack(const MambaDecodeArgs& a) {
  const Tensor& h = a.h;
  const Device dev = h.device();
  const size_t L = a.in_proj.size();
  if (L == 0) fail("ERR_INVALID_ARG", ErrorKind::Type, "mambaDecodeStack: inProj: expected one tensor per layer, got none");
  for (const auto* v : {&a.norm_w, &a.conv_w, &a.conv_state, &a.x_proj, &a.dt_proj, &a.dt_bias, &a.A, &a.ssm_state, &a.out_proj})
    if (v->size() != L) fail("ERR_INVALID_ARG", ErrorKind::Type, "mambaDecodeStack: every per-layer list must hold " + std::to_string(L) + " tensors");
  if ((!a.conv_b.empty() && a.conv_b.size() != L) || (!a.D.empty() && a.D.size() != L))
    fail("ERR_INVALID_ARG", ErrorKind::Type, "mambaDecodeStack: convBias and D: one tensor per layer or none");
  checks::rank("h", h, 2, "(1, hidden)");
  checks::dtype("h", h, DType::Float32);
  checks::contiguous("h", h);
  if (h.size(0) != 1) fail_shape("h", "(1, hidden): one sequence", h.shape);
  const Tensor& w0 = a.in_proj[0];
  checks::rank("inProj[0]", w0, 2, "(2 · intermediate, hidden)");
  const int64_t H = h.size(1), I = w0.size(0) / 2;
  const Tensor& xp0 = a.x_proj[0];
  const Tensor& dp0 = a.dt_proj[0];
  const Tensor& cs0 = a.conv_state[0];
  const Tensor& ss0 = a.ssm_state[0];
  checks::rank("xProj[0]", xp0, 2, "(rank + 2 · dstate, intermediate)");
  checks::rank("dtProj[0]", dp0, 2, "(intermediate, rank)");
  checks::rank("convState[0]", cs0, 3, "(1, intermediate, width - 1)");
  checks::rank("ssmState[0]", ss0, 3, "(1, intermediate, dstate)");
  const int64_t R = dp0.size(1), N = ss0.size(2), W = cs0.size(2) + 1;
  const DType T = w0.dtype;
  checks::floating("inProj[0]", w0, false);
  if (R + 2 * N != xp0.size(0)) fail_shape("xProj[0]", "(rank + 2 · dstate, intermediate) = (" + std::to_string(R + 2 * N) + ", " + std::to_string(I) + ")", xp0.shape);
  MambaDecodeParams p;
  p.H = H, p.I = I, p.N = N, p.R = R, p.W = W;
  p.layers = static_cast<int>(L);
  p.eps = static_cast<float>(a.eps);
  p.dtype = T;
  p.conv_dtype = cs0.dtype;
  p.state_dtype = ss0.dtype;
  p.h = h.ptr<float>();
  std::vector<MambaDecodeLayer> layers(L);
  for (size_t l = 0; l < L; ++l) {
    MambaDecodeLayer& y = layers[l];
    y.norm_w = layer_tensor(a.norm_w, "normWeight", l, dev, {H}, "(hidden)", T)->data();
    y.in_proj = layer_tensor(a.in_proj, "inProj", l, dev, {2 * I, H}, "(2 · intermediate, hidden)", T)->data();
    y.conv_w = layer_tensor(a.conv_w, "convWeight", l, dev, {I, W}, "(intermediate, width)", T)->data();
    const Tensor* cb = layer_tensor(a.conv_b, "convBias", l, dev, {I}, "(intermediate)", T, true);
    y.conv_b = cb ? cb->data() : nullptr;
    y.conv_state = layer_tensor(a.conv_state, "convState", l, dev, {1, I, W - 1}, "(1, intermediate, width - 1)", p.conv_dtype)->data();
    y.x_proj = layer_tensor(a.x_proj, "xProj", l, dev, {R + 2 * N, I}, "(rank + 2 · dstate, intermediate)", T)->data();
    y.dt_proj = layer_tensor(a.dt_proj, "dtProj", l, dev, {I, R}, "(intermediate, rank)", T)->data();
    y.dt_bias = static_cast<const float*>(layer_tensor(a.dt_bias, "dtBias", l, dev, {I}, "(intermediate)", DType::Float32)->data());
    y.A = static_cast<const float*>(layer_tensor(a.A, "A", l, dev, {I, N}, "(intermediate, dstate)", DType::Float32)->data());
    const Tensor* D = layer_tensor(a.D, "D", l, dev, {I}, "(intermediate)", DType::Float32, true);
    y.D = D ? static_cast<const float*>(D->data()) : nullptr;
    y.ssm_state = layer_tensor(a.ssm_state, "ssmState", l, dev, {1, I, N}, "(1, intermediate, dstate)", p.state_dtype)->data();
    y.out_proj = layer_tensor(a.out_proj, "outProj", l, dev, {H, I}, "(hidden, intermediate)", T)->data();
  }
  p.layer = layers.data();
  if (dev.is_cpu()) return false;  // CUDA only: the CPU runs the layers op by op
  // 16-byte vectors and bulk copies: every matrix and h start on a 16-byte boundary.
  auto a16 = [](const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  if (!a16(p.h)) return false;
  for (const MambaDecodeLayer& y : layers)
    if (!a16(y.norm_w) || !a16(y.in_proj) || !a16(y.x_proj) || !a16(y.dt_proj) || !a16(y.out_proj)) return false;
#ifdef STATESPACE_WITH_CUDA
  void* stream = cuda_stream_for(dev);
  if (!mamba_decode_cuda_fits(p)) return false;
  // Scratch (u, z, y, partial sums) from the stream-ordered pool, released in stream order.
  Tensor scratch = empty({static_cast<int64_t>((mamba_decode_scratch_bytes(p) + 3) / 4)}, DType::Int32, dev);
  p.scratch = scratch.data();
  mamba_decode_cuda(p, stream);
  return true;
#else
  return false;
#endif
}

}  // namespace ss
