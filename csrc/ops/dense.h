// Dense ops of the Mamba blocks: embedding lookup, linear layers (GEMM), RMSNorm (optionally
// with a fused residual add), grouped gated RMSNorm (Mamba-2) and elementwise SiLU, softplus,
// add, mul. Every tensor handed to a backend is contiguous; accumulation is f32 (f64 for
// float64 data on the CPU).
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "core/tensor.h"

namespace ss {

struct EmbeddingParams {
  int64_t n = 0, vocab = 0, d = 0;  // n ids
  DType dtype = DType::Float32;     // weight and out
  const int32_t* ids = nullptr;
  const void* weight = nullptr;     // (vocab, d)
  void* out = nullptr;              // (n, d)
};

// out (M, N) = x (M, K) · weight (N, K)ᵀ + bias (N); x, weight, out share `dtype`; out is
// contiguous. x and weight are contiguous row-major unless ldx/ldw say otherwise: element (i, j)
// then sits at i·ld + j (row-major: rows ld apart) or i + j·ld (column-major: a transposed view).
// The matrix-vector kernel reads row-major x with ldx; cuBLAS reads every layout
// (gemm_cuda_reads_strided); the other kernels get contiguous operands.
struct GemmParams {
  int64_t M = 0, N = 0, K = 0;
  int64_t ldx = 0;  // 0 means K (contiguous)
  int64_t ldw = 0;  // 0 means K (contiguous)
  bool x_col_major = false, w_col_major = false;
  bool strided() const { return (ldx && ldx != K) || (ldw && ldw != K) || x_col_major || w_col_major; }
  DType dtype = DType::Float32;
  DType bias_dtype = DType::Float32;
  const void* x = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;  // or null
  void* out = nullptr;
};

// Rows of length `dim`, normalised in groups of `group` (group == dim for plain RMSNorm):
//   r = x (+ residual) (* silu(z));  y = r · rsqrt(mean_group(r²) + eps) · weight.
// residual_out (when given) receives x + residual in the residual's dtype. x, residual, y and
// residual_out are contiguous; z's rows lie z_stride elements apart (a view of a wider projection).
struct RmsNormParams {
  int64_t rows = 0, dim = 0, group = 0;
  int64_t z_stride = 0;
  float eps = 1e-5f;
  DType dtype = DType::Float32;     // x, z, y
  DType weight_dtype = DType::Float32, residual_dtype = DType::Float32;
  const void* x = nullptr;
  const void* z = nullptr;
  const void* residual = nullptr;
  const void* weight = nullptr;
  void* residual_out = nullptr;
  void* y = nullptr;
};

enum class EltwiseOp : int { Silu = 0, Softplus = 1, Add = 2, Mul = 3 };

struct EltwiseParams {
  EltwiseOp op = EltwiseOp::Silu;
  int64_t n = 0;
  DType dtype = DType::Float32;
  const void* a = nullptr;
  const void* b = nullptr;  // binary ops only
  void* out = nullptr;
};

void embedding_cpu(const EmbeddingParams& p);
void gemm_cpu(const GemmParams& p);
// Whether gemm_cpu reads x and weight in the layouts p gives (p.strided()): batched decode's
// 32 < M <= 256 and its swapped form (many rows, 32 < N <= 256) do; the others want them
// contiguous.
bool gemm_cpu_reads_strided(const GemmParams& p);
void rms_norm_cpu(const RmsNormParams& p);
void eltwise_cpu(const EltwiseParams& p);
void embedding_cuda(const EmbeddingParams& p, void* stream);
void gemm_cuda(const GemmParams& p, void* stream);
// Up to this many rows (decode), gemm_cuda runs the matrix-vector kernel gemv_cuda.
constexpr int kGemvMaxM = 8;
// A decode step's causal conv applied by the matrix-vector kernel to output columns
// [lo, lo + channels) as it writes them: out = act(bias + Σ_k weight[c, k]·window[k]) over the
// conv state (M, channels, width-1) followed by the new value, the state shifted in place.
struct GemvConv {
  void* state = nullptr;
  DType state_dtype = DType::Float32;
  const void* weight = nullptr;  // (channels, width)
  DType weight_dtype = DType::Float32;
  const void* bias = nullptr;    // (channels) or null
  DType bias_dtype = DType::Float32;
  int64_t lo = 0, channels = 0, width = 0;
  bool silu = false;
};
// The RMSNorm the matrix-vector kernel applies to its one input row x on the fly (M = 1): the
// product is (x · rsqrt(mean(x²) + eps) · weight) · Wᵀ, x in float32 (the residual stream) or in
// W's dtype, in f32 throughout: the kernel sums x² beside its dot products and scales each
// output's sum, so no kernel normalises the row first.
// A gate (x and gate in W's dtype) normalises x · silu(gate) instead: taken by the weight-streaming
// kernel only (gemv_streams_gate), which stages the row in shared memory once per block; the
// register kernel's warps each read the whole row, so each would evaluate every silu (~3 us of SFU
// time on a 2560 x 5120 out_proj, measured as a loss).
struct GemvNorm {
  const void* weight = nullptr;  // (K) in W's dtype; null: x is used as it is
  const void* gate = nullptr;    // (K) in W's dtype, with weight; null: no gate
  bool x_in_w_dtype = false;     // x in W's dtype (else float32)
  float eps = 0.f;
};
// The residual add of the matrix-vector kernel's epilogue: out = residual + (the product rounded
// to W's dtype), both (M, N) contiguous in `dtype`.
struct GemvResidual {
  const void* residual = nullptr;
  void* out = nullptr;  // null: no residual add, the product goes to GemmParams::out
  DType dtype = DType::Float32;
};
// The argmax of each output row (as argmax() on the stored output would give: the first largest,
// NaN largest), written as int32 to `out` (M): for one row the kernel's blocks reduce their
// columns and meet through a device-wide atomic maximum (no pass over the row after it).
struct GemvArgmax {
  int32_t* out = nullptr;
};
// stream_weights: one row of a 16-bit matrix over 8 MB with rows of >= 1024 on sm_90 takes the
// weight-streaming kernel (a block per SM streams its share of rows through a shared-memory ring
// with bulk copies, filled before the PDL wait): it pays where the kernel before it is
// latency-bound (a decode step's out_proj after the state update: -0.09..-0.15 ms/token on the
// 2.7B shapes) and loses after a bandwidth-bound one (in_proj after out_proj: its ring fill
// competes with that stream). STATESPACE_GEMV_STREAM=0 (read per launch) turns it off.
// Whether gemv_cuda takes p (one row) with nm's norm and gate, i.e. on the weight-streaming kernel.
bool gemv_streams_gate(const GemmParams& p, const GemvNorm& nm);
void gemv_cuda(const GemmParams& p, void* stream, const GemvConv* conv = nullptr, const GemvNorm* norm = nullptr, const GemvResidual* residual = nullptr, const GemvArgmax* argmax = nullptr, bool stream_weights = false);
// Whether gemm_cuda hands p to the matrix-vector kernel: few rows, row-major x (with ldx) and a
// contiguous weight (other layouts, prefill's transposed views, go to cuBLAS).
inline bool gemv_reads(const GemmParams& p) {
  return p.M <= kGemvMaxM && !(p.ldw && p.ldw != p.K) && !p.x_col_major && !p.w_col_major;
}
// Batched decode (kGemvMaxM < M <= 64 rows, bf16/f16, K % 8 == 0, row-major x and weight with
// 16-byte aligned rows): the skinny tensor-core GEMM of skinny_gemm_cuda.cu, which reads every
// weight once; taken where cuBLAS is not (cuBLAS is faster at these shapes) or when
// STATESPACE_SKINNY=1 (=0 refuses it). Narrow outputs (N <= 256, K % 32 == 0, K >= 2048: x_proj)
// take its split-K kernel on sm_90 even where cuBLAS is (faster there: 5.6 against 7.1 µs).
// skinny_gemm_cuda returns false (launching nothing) when p does not fit it or it is not to be taken.
constexpr int kSkinnyMaxM = 64;
bool skinny_gemm_fits(const GemmParams& p);
bool skinny_gemm_cuda(const GemmParams& p, void* stream);
// Whether gemm_cuda on `device` reads x and weight in the layouts p gives (p.strided()) for
// M > kGemvMaxM: the skinny GEMM (row-major layouts) or cuBLAS.
bool gemm_cuda_reads_strided(const GemmParams& p, int device);
void rms_norm_cuda(const RmsNormParams& p, void* stream);
void eltwise_cuda(const EltwiseParams& p, void* stream);

Tensor embedding(const Tensor& ids, const Tensor& weight);
// What a decode step folds into its projections (lib/ops/dense.ts, LinearOptions):
//  - norm_weight (K): the product is taken of rmsnorm(x [· silu(norm_gate)]) · norm_weight (one
//    group over the row) instead of x; x may then be of any floating dtype; the result is in
//    weight's dtype. On CUDA with one row, float32 x or x in weight's dtype go through the
//    matrix-vector kernel's on-the-fly norm (f32 throughout), with a gate where the weight-
//    streaming kernel takes the shape; otherwise rmsNorm runs first and its output, rounded to
//    weight's dtype, is multiplied. A linear with a gate on CUDA first joins the side stream if
//    linear_conv_update left work there (rest_on_side: the gate is what it computes);
//  - residual (..., out): the result is residual + (the product rounded to its dtype), in
//    residual's dtype (linear only);
//  - argmax_out (int32, x's shape without its last dimension): also receives the argmax of each
//    result row (linear only, not with residual; in the kernel for one row on CUDA);
//  - stream_weights: on CUDA, one row through the weight-streaming kernel where it fits
//    (gemv_cuda); a performance hint only, the result is the same product.
struct LinearExtras {
  Tensor norm_weight, norm_gate;
  double norm_eps = 1e-5;
  Tensor residual;
  Tensor argmax_out;
  bool stream_weights = false;
  // linear_conv_update only, one row on CUDA (contiguous x and bias, the norm fused or none, no
  // gate): the larger range of columns outside the conv's is computed on the device's side
  // stream, launched after the rest, and left there until an op that reads it joins it back (a
  // linear with a norm_gate, rms_norm or the state update with z), or a host read, synchronize,
  // the next such fork, or the start or end of a graph capture (cuda/side_stream.h). The output
  // must stay alive until then.
  bool rest_on_side = false;
};
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const LinearExtras& extras = {});
// linear(x, weight, bias) whose columns [conv_start, conv_start + channels) then take one causal
// conv step (causalConv1dUpdate semantics) over conv_state (batch, channels, width-1), updated in
// place: in_proj and the conv of a decode step in one kernel on CUDA (x with <= 8 rows); at
// 8 < batch <= 64 the larger other column range runs on the side stream beside the rest (as in
// linear_conv_update_proj below).
Tensor linear_conv_update(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& conv_state,
                          const Tensor& conv_weight, const Tensor& conv_bias, int64_t conv_start, bool silu,
                          const LinearExtras& extras = {});
// linear_conv_update, then proj = (its conv columns after the conv step) · x_projᵀ (x_proj:
// (out, channels), x's dtype): a Mamba decode step's in_proj, conv and x_proj. On CUDA at
// 8 < batch <= 64 (no bias, no norm, cuBLASLt there) the larger range of in_proj columns outside
// the conv (Mamba-1: z) is computed on the device's side stream while the device stream computes
// the conv columns, the conv step and x_proj; joined before it returns (STATESPACE_FORK=0: one
// product, then the conv step and x_proj, all on the device stream).
struct LinearConvProj {
  Tensor out, proj;
};
LinearConvProj linear_conv_update_proj(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& conv_state,
                                       const Tensor& conv_weight, const Tensor& conv_bias, int64_t conv_start, bool silu,
                                       const Tensor& x_proj, const LinearExtras& extras = {});
struct RmsNormResult {
  Tensor y, residual_out;
};
// z defined: gated (Mamba-2) form; residual defined: fused residual add (plain form).
RmsNormResult rms_norm(const Tensor& x, const Tensor& weight, double eps, const Tensor& residual, const Tensor& z,
                       int64_t group);
Tensor eltwise(EltwiseOp op, const Tensor& a, const Tensor& b);
// Which GEMM `linear` runs on `device` now: "cpu", "cublas (<library>)" or "builtin (<why>)".
std::string linear_backend(Device device);

}  // namespace ss
