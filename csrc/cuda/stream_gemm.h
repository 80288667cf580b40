// The weight-streaming GEMM of batched decode (stream_gemm_cuda.cu): out (M, N) = x (M, K) ·
// w (N, K)ᵀ + bias for 8 < M <= 64 rows on sm_90, where its one-wave decomposition covers the
// SMs evenly (in_proj 64x10240x2560 and 64x10576x2560, out_proj 64x2560x5120).
#pragma once
#include "ops/dense.h"

namespace ss {

// Whether stream_gemm_cuda takes p (shape, layout, alignment, device, STATESPACE_STREAM_GEMM).
bool stream_gemm_fits(const GemmParams& p);
// Launches it; p must fit.
void stream_gemm_cuda(const GemmParams& p, void* stream);

}  // namespace ss
