#include "ops/dense.h"
#include "ops/conv1d.h"
#include "ops/dispatch.h"
#include "ops/model_checks.h"
#include "ops/row_view.h"
#include "ops/sampling.h"
#include "ops/tensor_ops.h"
#ifdef STATESPACE_WITH_CUDA
#include <algorithm>
#include <cstdlib>
#include "cuda/cublas_loader.h"
#include "cuda/cublaslt_gemm.h"
#include "cuda/runtime.h"
#include "cuda/side_stream.h"
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

namespace {

// t (..., cols) as a matrix (rows = the leading dimensions' product, cols) stored row-major with a
// row stride ld >= cols, or column-major (a transposed view) with a column stride ld >= rows.
struct MatrixLayout {
  bool ok = false, col_major = false;
  int64_t ld = 0;
};

MatrixLayout matrix_layout(const Tensor& t) {
  const int64_t rs = row_stride(t);
  if (rs >= 0) return {true, false, rs};
  // Column-major: the leading dimensions collapse into one row index of stride 1, the last
  // dimension steps over all rows.
  int64_t rows = 1, expect = 1;
  for (int d = t.ndim() - 2; d >= 0; --d) {
    if (t.shape[d] == 1) continue;
    if (t.strides[d] != expect) return {};
    expect *= t.shape[d];
    rows *= t.shape[d];
  }
  const int64_t cs = t.ndim() ? t.stride(-1) : 0;
  if (t.ndim() >= 2 && cs >= rows && cs > 0) return {true, true, cs};
  return {};
}

// A validated linear layer: contiguous (or strided) operands kept alive, the output
// allocated, the kernel parameters filled.
struct LinearPlan {
  Tensor x, w, bias, out;
  GemmParams p;
};

// Checks the norm and residual extras of a linear layer x (..., K) · weight (N, K)ᵀ.
void check_extras(const Tensor& x, const Tensor& weight, const LinearExtras& ex) {
  Device dev = x.device();
  const bool cpu = dev.is_cpu();
  check_same_device(dev, {{"normWeight", &ex.norm_weight}, {"normGate", &ex.norm_gate}, {"residual", &ex.residual}});
  if (ex.norm_gate.defined() && !ex.norm_weight.defined())
    fail("ERR_INVALID_ARG", ErrorKind::Type, "normGate: needs normWeight (the gate belongs to the norm)");
  if (ex.norm_weight.defined()) {
    if (x.ndim() < 1) fail_shape("x", "(..., in)", x.shape);
    checks::shape("normWeight", ex.norm_weight, {x.size(-1)}, "(in) (the last dimension of x)");
    checks::floating("normWeight", ex.norm_weight, cpu);
    if (!(ex.norm_eps >= 0)) fail("ERR_INVALID_ARG", ErrorKind::Type, "normEps: expected a non-negative number");
  }
  if (ex.norm_gate.defined()) {
    checks::shape("normGate", ex.norm_gate, x.shape, "the shape of x");
    checks::same_dtype("normGate", ex.norm_gate, "x", x.dtype);
  }
  if (ex.residual.defined()) {
    std::vector<int64_t> shape = x.shape;
    if (!shape.empty() && weight.ndim() == 2) shape.back() = weight.size(0);
    checks::shape("residual", ex.residual, shape, "the shape of the output");
    checks::floating("residual", ex.residual, cpu);
  }
  if (ex.argmax_out.defined()) {
    check_same_device(dev, {{"argmaxOut", &ex.argmax_out}});
    if (ex.residual.defined()) fail("ERR_INVALID_ARG", ErrorKind::Type, "argmaxOut: not taken with residual");
    if (x.ndim() < 1) fail_shape("x", "(..., in)", x.shape);
    checks::dtype("argmaxOut", ex.argmax_out, DType::Int32);
    checks::shape("argmaxOut", ex.argmax_out, std::vector<int64_t>(x.shape.begin(), x.shape.end() - 1), "the shape of x without its last dimension");
    if (!ex.argmax_out.is_contiguous()) fail("ERR_INVALID_ARG", ErrorKind::Type, "argmaxOut: must be contiguous (it is written in place)");
  }
}

// x's rows through the RMSNorm of the extras, as its own op (rounded to weight's dtype), or x.
Tensor normed_input(const Tensor& x, const Tensor& weight, const LinearExtras& ex) {
  if (!ex.norm_weight.defined()) return x;
  Tensor y = rms_norm(x, ex.norm_weight, ex.norm_eps, Tensor{}, ex.norm_gate, 0).y;
  return y.dtype == weight.dtype ? y : copy_to(y, weight.dtype, y.device());
}

// residual + y in residual's dtype (the extras' residual add as its own op), or y; the argmax
// of y's rows into argmax_out (as its own op) when asked.
Tensor with_residual(const Tensor& y, const LinearExtras& ex) {
  if (ex.argmax_out.defined()) copy_into(ex.argmax_out, argmax(y));
  if (!ex.residual.defined()) return y;
  const Tensor& r = ex.residual;
  return eltwise(EltwiseOp::Add, y.dtype == r.dtype ? y : copy_to(y, r.dtype, y.device()), r);
}

LinearPlan plan_linear(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in) {
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
  GemmParams p;
  p.M = 1;
  for (int i = 0; i + 1 < x_in.ndim(); ++i) p.M *= x_in.shape[i];
  p.N = N;
  p.K = K;
  // Views are read in place where a kernel takes them, else copied contiguous first:
  // - decode: a 2-D x with evenly strided rows (sliced out of a wider projection), by the CUDA
  //   matrix-vector kernel and by cuBLAS;
  // - prefill: x and weight stored row- or column-major with any leading dimension (transposes,
  //   column slices: the projections run channel-major), by cuBLAS, and on the CPU by the
  //   GEMM's batched paths (gemm_cpu_reads_strided).
  bool in_place = false;
  if (!(x_in.is_contiguous() && weight_in.is_contiguous())) {
    const MatrixLayout lx = matrix_layout(x_in), lw = matrix_layout(weight_in);
    GemmParams q = p;  // the operands as the views they are
    q.ldx = lx.ld;
    q.ldw = lw.ld;
    q.x_col_major = lx.col_major;
    q.w_col_major = lw.col_major;
    q.dtype = x_in.dtype;
    q.x = x_in.data();  // the skinny GEMM checks the alignment of the views
    q.weight = weight_in.data();
    if (cpu)
      in_place = lx.ok && lw.ok && gemm_cpu_reads_strided(q);
#ifdef STATESPACE_WITH_CUDA
    else if (p.M <= kGemvMaxM)  // the matrix-vector kernel: evenly strided rows of x only
      in_place = x_in.ndim() == 2 && x_in.size(0) > 1 && weight_in.is_contiguous() && lx.ok && !lx.col_major && lx.ld > K;
    else
      in_place = lx.ok && lw.ok && gemm_cuda_reads_strided(q, dev.index);
#endif
    if (in_place) p = q;
  }
  LinearPlan L;
  L.x = in_place ? x_in : contiguous(x_in);
  L.w = in_place ? weight_in : contiguous(weight_in);
  L.bias = bias_in.defined() ? contiguous(bias_in) : Tensor{};
  std::vector<int64_t> shape = x_in.shape;
  shape.back() = N;
  L.out = empty(shape, x_in.dtype, dev);
  p.dtype = x_in.dtype;
  p.bias_dtype = L.bias.defined() ? L.bias.dtype : DType::Float32;
  p.x = L.x.data();
  p.weight = L.w.data();
  p.bias = L.bias.defined() ? L.bias.data() : nullptr;
  p.out = L.out.data();
  L.p = p;
  return L;
}

void run_linear(const LinearPlan& L) {
  if (L.out.numel() == 0) return;
  const GemmParams p = L.p;
  if (L.out.device().is_cpu())
    run_cpu({L.x, L.w, L.bias}, {L.out}, [p] { gemm_cpu(p); });
  else
    gemm_cuda(p, cuda_stream_for(L.out.device()));
}

#ifdef STATESPACE_WITH_CUDA
// A linear layer whose extras the matrix-vector kernel applies itself (CUDA): the plan, its
// norm and residual arguments and the tensors they point into.
struct FusedLinear {
  LinearPlan L;
  GemvNorm nm;
  GemvResidual rs;
  Tensor norm_w, gate, residual;
};

// Whether the CUDA matrix-vector kernel takes x · weightᵀ with these extras in one launch: <= 8
// rows (one with a norm), contiguous weight, x's row contiguous; with a norm, x in float32 or in
// weight's dtype, the norm weight in weight's dtype; with a gate, x in weight's dtype and a shape
// the weight-streaming kernel takes.
bool fusable(const Tensor& x, const Tensor& weight, const LinearExtras& ex) {
  if (x.device().is_cpu() || x.ndim() < 1 || !weight.is_contiguous() || !x.is_contiguous()) return false;
  const int64_t M = x.numel() / std::max<int64_t>(1, x.size(-1));
  if (M > kGemvMaxM || M < 1) return false;
  if (ex.residual.defined() && !ex.residual.is_contiguous()) return false;
  if (!ex.norm_weight.defined()) return true;
  if (M != 1 || ex.norm_weight.dtype != weight.dtype || !ex.norm_weight.is_contiguous()) return false;
  if (!ex.norm_gate.defined()) return x.dtype == DType::Float32 || x.dtype == weight.dtype;
  if (x.dtype != weight.dtype || !ex.norm_gate.is_contiguous() || weight.ndim() != 2 || weight.size(1) != x.size(-1)) return false;
  GemmParams p;
  p.M = 1;
  p.N = weight.size(0);
  p.K = weight.size(1);
  p.dtype = weight.dtype;
  p.x = x.data();
  p.weight = weight.data();
  GemvNorm nm;
  nm.weight = ex.norm_weight.data();
  nm.gate = ex.norm_gate.data();
  return gemv_streams_gate(p, nm);
}

FusedLinear plan_fused(const Tensor& x, const Tensor& weight, const Tensor& bias_in, const LinearExtras& ex) {
  Device dev = x.device();
  check_same_device(dev, {{"weight", &weight}, {"bias", &bias_in}});
  checks::rank("weight", weight, 2, "(out, in)");
  if (!ex.norm_weight.defined()) checks::same_dtype("weight", weight, "x", x.dtype);
  checks::floating("weight", weight, false);
  const int64_t K = x.size(-1), N = weight.size(0);
  if (weight.size(1) != K)
    fail_shape("weight", "(out, in) with in = " + std::to_string(K) + " (the last dimension of x)", weight.shape);
  if (bias_in.defined()) {
    checks::shape("bias", bias_in, {N}, "(out)");
    checks::floating("bias", bias_in, false);
  }
  FusedLinear F;
  LinearPlan& L = F.L;
  GemmParams& p = L.p;
  p.M = x.numel() / K;
  p.N = N;
  p.K = K;
  p.dtype = weight.dtype;
  L.x = x;
  L.w = weight;
  L.bias = bias_in.defined() ? contiguous(bias_in) : Tensor{};
  std::vector<int64_t> shape = x.shape;
  shape.back() = N;
  L.out = empty(shape, ex.residual.defined() ? ex.residual.dtype : weight.dtype, dev);
  p.bias_dtype = L.bias.defined() ? L.bias.dtype : DType::Float32;
  p.x = x.data();
  p.weight = weight.data();
  p.bias = L.bias.defined() ? L.bias.data() : nullptr;
  p.out = L.out.data();
  if (ex.norm_weight.defined()) {
    F.norm_w = ex.norm_weight;
    F.nm.weight = F.norm_w.data();
    F.nm.x_in_w_dtype = x.dtype == weight.dtype;
    F.nm.eps = static_cast<float>(ex.norm_eps);
  }
  if (ex.norm_gate.defined()) {
    F.gate = ex.norm_gate;
    F.nm.gate = F.gate.data();
  }
  if (ex.residual.defined()) {
    F.residual = ex.residual;
    F.rs.residual = F.residual.data();
    F.rs.out = L.out.data();
    F.rs.dtype = F.residual.dtype;
  }
  return F;
}
#endif

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, const LinearExtras& ex) {
  check_extras(x_in, weight_in, ex);
#ifdef STATESPACE_WITH_CUDA
  // The gate may be the part of linear_conv_update's output left on the side stream (rest_on_side).
  if (ex.norm_gate.defined() && !x_in.device().is_cpu()) cuda::join_side_if_forked(cuda_stream_for(x_in.device()), x_in.device().index);
  const bool extras = ex.norm_weight.defined() || ex.residual.defined() || ex.argmax_out.defined() || ex.stream_weights;
  if (extras && fusable(x_in, weight_in, ex)) {
    FusedLinear F = plan_fused(x_in, weight_in, bias_in, ex);
    GemvArgmax am;
    am.out = ex.argmax_out.defined() ? static_cast<int32_t*>(ex.argmax_out.data()) : nullptr;
    if (F.L.out.numel() > 0) gemv_cuda(F.L.p, cuda_stream_for(x_in.device()), nullptr, &F.nm, &F.rs, &am, ex.stream_weights);
    return F.L.out;
  }
#endif
  LinearPlan L = plan_linear(normed_input(x_in, weight_in, ex), weight_in, bias_in);
  run_linear(L);
  return with_residual(L.out, ex);
}

namespace {

// The argument checks of linear_conv_update.
void check_conv_update(const Tensor& x, const Tensor& weight, const Tensor& conv_state, const Tensor& conv_weight,
                       const Tensor& conv_bias, int64_t lo, const LinearExtras& ex) {
  Device dev = x.device();
  if (ex.residual.defined()) fail("ERR_INVALID_ARG", ErrorKind::Type, "residual: not taken by linearConvUpdate");
  if (ex.argmax_out.defined()) fail("ERR_INVALID_ARG", ErrorKind::Type, "argmaxOut: not taken by linearConvUpdate");
  check_extras(x, weight, ex);
  const bool cpu = dev.is_cpu();
  check_same_device(dev, {{"convState", &conv_state}, {"convWeight", &conv_weight}, {"convBias", &conv_bias}});
  checks::rank("x", x, 2, "(batch, in)");
  checks::rank("weight", weight, 2, "(out, in)");
  checks::rank("convWeight", conv_weight, 2, "(channels, width)");
  checks::floating("convWeight", conv_weight, cpu);
  const int64_t M = x.size(0), N = weight.size(0), Cc = conv_weight.size(0), W = conv_weight.size(1);
  if (W < 1) fail_shape("convWeight", "(channels, width) with width >= 1", conv_weight.shape);
  if (lo < 0 || lo + Cc > N)
    fail("ERR_SHAPE", ErrorKind::Range, "convStart: columns [" + std::to_string(lo) + ", " + std::to_string(lo + Cc) +
                                            ") of the conv lie outside the " + std::to_string(N) + " outputs");
  checks::shape("convState", conv_state, {M, Cc, W - 1}, "(batch, channels, width-1)");
  checks::floating("convState", conv_state, cpu);
  checks::contiguous("convState", conv_state);
  if (conv_bias.defined()) {
    checks::shape("convBias", conv_bias, {Cc}, "(channels)");
    checks::floating("convBias", conv_bias, cpu);
  }
}

// One causal conv step in place on columns [lo, lo + channels) of out (M, N), contiguous.
void conv_step_in_place(const Tensor& out, int64_t lo, const Tensor& conv_state, const Tensor& conv_weight, const Tensor& conv_bias,
                        bool silu) {
  Tensor cw = contiguous(conv_weight), cb = conv_bias.defined() ? contiguous(conv_bias) : Tensor{};
  CausalConv1dUpdateParams c;
  c.batch = out.size(0);
  c.dim = cw.size(0);
  c.width = cw.size(1);
  c.dtype = out.dtype;
  c.state_dtype = conv_state.dtype;
  c.weight_dtype = cw.dtype;
  c.bias_dtype = cb.defined() ? cb.dtype : DType::Float32;
  c.silu = silu;
  c.x = static_cast<char*>(out.data()) + lo * static_cast<int64_t>(dtype_size(out.dtype));
  c.x_stride = out.size(1);
  c.y = const_cast<void*>(c.x);
  c.y_stride = out.size(1);
  c.state = conv_state.data();
  c.slots = c.batch;
  c.weight = cw.data();
  c.bias = cb.defined() ? cb.data() : nullptr;
  if (out.device().is_cpu())
    run_cpu({cw, cb}, {out, conv_state}, [c] { causal_conv1d_update_cpu(c); });
  else
    causal_conv1d_update_cuda(c, cuda_stream_for(out.device()));
}

// Rows [r0, r0 + n) / columns [c0, c0 + n) of a 2-D tensor, as a view.
Tensor rows_view(const Tensor& t, int64_t r0, int64_t n) {
  Tensor v = t;
  v.shape = {n, t.size(1)};
  v.offset += r0 * t.stride(0);
  return v;
}
Tensor cols_view(const Tensor& t, int64_t c0, int64_t n) {
  Tensor v = t;
  v.shape = {t.size(0), n};
  v.offset += c0 * t.stride(1);
  return v;
}

}  // namespace

#ifdef STATESPACE_WITH_CUDA
namespace {

// The two products of a forked linear_conv_update over N output columns whose conv columns are
// [lo, hi): the device stream's [m0, m1) holds the conv columns and the smaller range beside them,
// the side stream's [s0, s1) the larger range (Mamba-1: z after them; Mamba-2: z before them, dt
// staying with the conv columns).
struct ForkRanges {
  int64_t m0, m1, s0, s1;
};
ForkRanges fork_ranges(int64_t N, int64_t lo, int64_t hi) {
  if (lo >= N - hi) return {lo, N, 0, lo};  // the side takes [0, lo)
  return {0, hi, hi, N};                     // the side takes [hi, N)
}

// The SMs that Mamba-1's side product (z, beside the conv step and x_proj) is planned for: 48 of
// an H100's 132, in proportion elsewhere. With z on every SM the conv step and x_proj cannot
// start until z's blocks leave (a b64 kernel timeline: they added 9.5 us a layer after the
// products). H100, b64 graph replays, both products on their untimed first choices
// (LtOptions::untimed), ms a step, mamba-2.8b-bf16state / mamba-2.8b: 48 SMs 3.681-3.686 /
// 4.205-4.209; 40 3.689-3.699 / 4.223-4.228; 32 / 56 / 66 3.729 / 3.736-3.756 / 3.749-3.755; every
// SM (timed choices then) 3.743-3.955 / 4.268-4.432 (bench/NOTES.md, sixteenth and eighteenth
// sessions). Mamba-2 (no x_proj: its side product runs beside the conv step only) tied at 40, so
// it keeps every SM. STATESPACE_FORK_SIDE_SMS=n plans for n SMs (0: every SM).
int side_sm_target() {
  if (const char* v = std::getenv("STATESPACE_FORK_SIDE_SMS")) return std::max(0, std::atoi(v));
  return (cuda::sm_count() * 48 + 66) / 132;
}

// linear_conv_update(_proj) on CUDA at a decode batch through cuBLASLt, in two products at once:
// the conv columns (with the smaller of the ranges beside them) on the device stream and the
// larger range outside them (Mamba-1: z; Mamba-2: z, its dt columns staying with the conv
// columns) on the side stream, joined before returning:
//   stream: fork -> [conv columns (+ the smaller range)] -> conv step -> (x_proj) -> join
//   side:        \-> [the larger range] ------------------------------------------/
// Measured on the H100 (bench/NOTES.md, b64x7 runs 2-4): -0.09..-0.11 ms a b64 step of
// mamba-2.8b, -0.08..-0.19 of mamba2-2.7b: each half-width product's ramp and tail overlap the
// other's, and the conv step (and x_proj) start before the side product ends. Forking after the
// first product instead (the products in turn, the side one beside the conv step and x_proj) lost
// 0.09 / 0.3 ms, after the conv step 0.12 / 0.4; joining before x_proj (Mamba-1) lost 0.11.
// STATESPACE_FORK=0: one product on the device stream, then the conv step.
// False, with nothing launched, where it does not apply; the caller then runs the ops in turn.
bool forked_conv_proj(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& conv_state,
                      const Tensor& conv_weight, const Tensor& conv_bias, int64_t lo, bool silu, const Tensor& x_proj,
                      const LinearExtras& ex, LinearConvProj& r) {
  Device dev = x.device();
  const char* v = std::getenv("STATESPACE_FORK");
  if (dev.is_cpu() || (v && v[0] == '0')) return false;
  if (bias.defined() || ex.norm_weight.defined() || !x.is_contiguous() || !weight.is_contiguous()) return false;
  const int64_t M = x.size(0), N = weight.size(0), K = x.size(1), Cc = conv_weight.size(0);
  if (M <= kGemvMaxM || M > cuda::kLtMaxM || K == 0 || Cc == N) return false;
  const int64_t es = static_cast<int64_t>(dtype_size(x.dtype));
  Tensor out = empty({M, N}, x.dtype, dev);
  GemmParams g;
  g.M = M;
  g.K = K;
  g.dtype = x.dtype;
  g.x = x.data();
  auto cols = [&](int64_t c0, int64_t c1) {
    GemmParams q = g;
    q.N = c1 - c0;
    q.weight = static_cast<const char*>(weight.data()) + c0 * K * es;
    q.out = static_cast<char*>(out.data()) + c0 * es;
    return q;
  };
  void* st = cuda_stream_for(dev);
  const auto [m0, m1, s0, s1] = fork_ranges(N, lo, lo + Cc);
  // Mamba-1's two products take cuBLASLt's first algorithms, untimed (LtOptions::untimed).
  const bool mamba1 = x_proj.defined();
  const cuda::LtOptions first{N, 0, 0, mamba1}, side{N, 1, mamba1 ? side_sm_target() : 0, mamba1};
  bool left = false;  // cuBLASLt refused the side range: it runs after the join
  {
    cuda::fork_side(st, dev.index);
    // The join runs however this scope ends: a capture must not end with the side stream forked.
    struct Join {
      void* st;
      int device;
      ~Join() {
        try {
          cuda::join_side(st, device);
        } catch (...) {
        }
      }
    } join{st, dev.index};
    if (!cuda::cublaslt_gemm(cols(m0, m1), st, dev.index, first)) return false;
    left = !cuda::cublaslt_gemm(cols(s0, s1), cuda::side_stream(dev.index), dev.index, side);
    conv_step_in_place(out, lo, conv_state, conv_weight, conv_bias, silu);
    if (x_proj.defined()) r.proj = linear(cols_view(out, lo, Cc), x_proj, Tensor{});
  }
  if (left) copy_into(cols_view(out, s0, s1 - s0), linear(x, rows_view(weight, s0, s1 - s0), Tensor{}));
  r.out = out;
  return true;
}

}  // namespace
#endif

#ifdef STATESPACE_WITH_CUDA
namespace {

// One row of linear_conv_update in two products (rest_on_side): the conv columns and the smaller
// range beside them (Mamba-2: xBC, then dt) on the device stream; the larger range outside them
// (Mamba-2's z) on the side stream, forked after the first product and left running until an op
// that reads it joins it (cuda/side_stream.h; in Mamba-2's step out_proj with the gated norm), so
// that it streams its weights while the latency-bound state update runs. Measured on the H100 (bench/NOTES.md,
// tenth session): mamba2-2.7b b1 -0.03 ms a token; forked before the first product (both at
// once) +0.015; Mamba-1 (z beside conv, x_proj and the update) +0.07 to +0.26 wherever forked.
void gemv_rest_on_side(const GemmParams& p, Device dev, const GemvConv& c, const GemvNorm* nm) {
  const auto [m0, m1, s0, s1] = fork_ranges(p.N, c.lo, c.lo + c.channels);
  const int64_t es = static_cast<int64_t>(dtype_size(p.dtype));
  auto rows = [&](int64_t r0, int64_t r1) {
    GemmParams q = p;
    q.N = r1 - r0;
    q.weight = static_cast<const char*>(p.weight) + r0 * p.K * es;
    q.out = static_cast<char*>(p.out) + r0 * es;
    if (p.bias) q.bias = static_cast<const char*>(p.bias) + r0 * static_cast<int64_t>(dtype_size(p.bias_dtype));
    return q;
  };
  void* st = cuda_stream_for(dev);
  GemvConv cm = c;
  cm.lo = c.lo - m0;
  cuda::join_side_if_forked(st, dev.index);
  gemv_cuda(rows(m0, m1), st, &cm, nm);
  if (s1 == s0) return;
  cuda::fork_side(st, dev.index);
  gemv_cuda(rows(s0, s1), cuda::side_stream(dev.index), nullptr, nm);
}

}  // namespace
#endif

Tensor linear_conv_update(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& conv_state,
                          const Tensor& conv_weight, const Tensor& conv_bias, int64_t lo, bool silu,
                          const LinearExtras& ex) {
  check_conv_update(x, weight, conv_state, conv_weight, conv_bias, lo, ex);
#ifdef STATESPACE_WITH_CUDA
  if (LinearConvProj r; forked_conv_proj(x, weight, bias, conv_state, conv_weight, conv_bias, lo, silu, Tensor{}, ex, r)) return r.out;
#endif
  Device dev = x.device();
  const bool cpu = dev.is_cpu();
  const int64_t M = x.size(0), Cc = conv_weight.size(0), W = conv_weight.size(1);
#ifdef STATESPACE_WITH_CUDA
  // With a norm that the matrix-vector kernel takes on the fly, the plan is the fused one.
  const bool fused_norm = ex.norm_weight.defined() && fusable(x, weight, ex);
  FusedLinear F;
  if (fused_norm) F = plan_fused(x, weight, bias, ex);
  LinearPlan L = fused_norm ? F.L : plan_linear(normed_input(x, weight, ex), weight, bias);
#else
  LinearPlan L = plan_linear(normed_input(x, weight, ex), weight, bias);
#endif
#ifdef STATESPACE_WITH_CUDA
  if (!cpu && M <= kGemvMaxM && L.out.numel() > 0) {
    // The matrix-vector kernel applies the conv step to its conv columns as it writes them.
    Tensor cw = contiguous(conv_weight), cb = conv_bias.defined() ? contiguous(conv_bias) : Tensor{};
    GemvConv c;
    c.state = conv_state.data();
    c.state_dtype = conv_state.dtype;
    c.weight = cw.data();
    c.weight_dtype = cw.dtype;
    c.bias = cb.defined() ? cb.data() : nullptr;
    c.bias_dtype = cb.defined() ? cb.dtype : DType::Float32;
    c.lo = lo;
    c.channels = Cc;
    c.width = W;
    c.silu = silu;
    // The side launch reads only the caller's tensors (no temporary that this op frees as it
    // returns while the side kernel may still read it: a norm applied as its own op, copies of
    // strided x or bias), and no gate (its streaming kernel might not take the split ranges).
    const bool own_inputs = (fused_norm || !ex.norm_weight.defined()) && x.is_contiguous() && (!bias.defined() || bias.is_contiguous());
    if (ex.rest_on_side && M == 1 && own_inputs && !ex.norm_gate.defined()) {
      gemv_rest_on_side(L.p, dev, c, fused_norm ? &F.nm : nullptr);
      return L.out;
    }
    gemv_cuda(L.p, cuda_stream_for(dev), &c, fused_norm ? &F.nm : nullptr, nullptr, nullptr, ex.stream_weights);
    return L.out;
  }
#else
  (void)cpu;
  (void)W;
#endif
  // Otherwise the product, then the conv step in place on its columns.
  run_linear(L);
  if (L.out.numel() == 0) return L.out;
  conv_step_in_place(L.out, lo, conv_state, conv_weight, conv_bias, silu);
  return L.out;
}

LinearConvProj linear_conv_update_proj(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& conv_state,
                                       const Tensor& conv_weight, const Tensor& conv_bias, int64_t lo, bool silu,
                                       const Tensor& x_proj, const LinearExtras& ex) {
  check_conv_update(x, weight, conv_state, conv_weight, conv_bias, lo, ex);
  check_same_device(x.device(), {{"xProj", &x_proj}});
  checks::rank("xProj", x_proj, 2, "(out, channels)");
  checks::same_dtype("xProj", x_proj, "x", x.dtype);
  const int64_t Cc = conv_weight.size(0);
  if (x_proj.size(1) != Cc) fail_shape("xProj", "(out, channels) with channels = " + std::to_string(Cc) + " (the conv's)", x_proj.shape);
  LinearConvProj r;
#ifdef STATESPACE_WITH_CUDA
  if (forked_conv_proj(x, weight, bias, conv_state, conv_weight, conv_bias, lo, silu, x_proj, ex, r)) return r;
#endif
  r.out = linear_conv_update(x, weight, bias, conv_state, conv_weight, conv_bias, lo, silu, ex);
  r.proj = linear(cols_view(r.out, lo, Cc), x_proj, Tensor{});
  return r;
}

RmsNormResult rms_norm(const Tensor& x_in, const Tensor& weight_in, double eps, const Tensor& residual_in,
                       const Tensor& z_in, int64_t group) {
  Device dev = x_in.device();
  bool cpu = dev.is_cpu();
  check_same_device(dev, {{"weight", &weight_in}, {"residual", &residual_in}, {"z", &z_in}});
#ifdef STATESPACE_WITH_CUDA
  // z may be the part of linear_conv_update's output left on the side stream (rest_on_side).
  if (z_in.defined() && !cpu) cuda::join_side_if_forked(cuda_stream_for(dev), dev.index);
#endif
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
