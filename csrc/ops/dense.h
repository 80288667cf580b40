// Dense ops of the Mamba blocks: embedding lookup, linear layers (GEMM), RMSNorm (optionally
// with a fused residual add), grouped gated RMSNorm (Mamba-2) and elementwise SiLU, softplus,
// add, mul. Every tensor handed to a backend is contiguous; accumulation is f32 (f64 for
// float64 data on the CPU).
#pragma once
#include <cstdint>
#include <string>
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
// contiguous. x and weight are contiguous row-major unless ldx/ldw say otherwise: then element
// (i, j) sits at i·ld + j (row-major) or i + j·ld (col-major: a transposed view), which only the
// cuBLAS path reads (gemm_cuda_reads_strided); every other path gets contiguous operands.
struct GemmParams {
  int64_t M = 0, N = 0, K = 0;
  DType dtype = DType::Float32;
  DType bias_dtype = DType::Float32;
  const void* x = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;  // or null
  void* out = nullptr;
  int64_t ldx = 0, ldw = 0;    // 0: contiguous row-major (ld = K)
  bool x_col_major = false, w_col_major = false;
  bool strided() const { return ldx != 0 || ldw != 0 || x_col_major || w_col_major; }
};

// Rows of length `dim`, normalised in groups of `group` (group == dim for plain RMSNorm):
//   r = x (+ residual) (* silu(z));  y = r · rsqrt(mean_group(r²) + eps) · weight.
// residual_out (when given) receives x + residual in the residual's dtype. Row i of x and z
// starts at i·x_stride / i·z_stride (0: dim; CUDA only, the CPU gets contiguous rows); residual,
// residual_out and y are contiguous.
struct RmsNormParams {
  int64_t rows = 0, dim = 0, group = 0;
  int64_t x_stride = 0, z_stride = 0;
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
void rms_norm_cpu(const RmsNormParams& p);
void eltwise_cpu(const EltwiseParams& p);
void embedding_cuda(const EmbeddingParams& p, void* stream);
void gemm_cuda(const GemmParams& p, void* stream);
// Whether gemm_cuda on `device` reads x and weight in the layouts p gives (p.strided()), so
// views such as a transpose or a column slice need no copy: the cuBLAS path for M above the
// matrix-vector rows.
bool gemm_cuda_reads_strided(const GemmParams& p, int device);
void rms_norm_cuda(const RmsNormParams& p, void* stream);
void eltwise_cuda(const EltwiseParams& p, void* stream);

Tensor embedding(const Tensor& ids, const Tensor& weight);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);
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
