// Small dense matrix products for CPU kernels whose operands fit in cache (a few hundred rows):
// C(M×N) = beta·C + A(M×K)·B(K×N), all row-major with leading dimensions. float32 runs an AVX2/FMA
// register-blocked micro-kernel (6 rows × 16 columns in 12 accumulators); float64 and other
// targets run a loop nest the compiler vectorises. Also a branch-free exp of non-positive
// arguments that vectorises (the SSD decay factors are exp of segment sums, all ≤ 0).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace ss::cpu {

// Generic path: i-k-j loop, the inner loop contiguous (vectorised by the compiler).
template <typename T>
inline void gemm_rows_generic(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                              int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (!accumulate)
      for (int64_t j = 0; j < N; ++j) c[j] = T(0);
    const T* a = A + i * lda;
    for (int64_t k = 0; k < K; ++k) {
      const T av = a[k];
      if (av == T(0)) continue;
      const T* b = B + k * ldb;
      for (int64_t j = 0; j < N; ++j) c[j] += av * b[j];
    }
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// MR rows × (8·NV) columns of C, accumulators in registers across the whole K loop.
template <int MR, int NV>
inline void micro_f32(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                      bool accumulate) {
  __m256 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? _mm256_loadu_ps(C + i * ldc + 8 * v) : _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m256 b[NV];
    for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(B + k * ldb + 8 * v);
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(A + i * lda + k);
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(C + i * ldc + 8 * v, acc[i][v]);
}

template <int NV>
inline void micro_rows_f32(int64_t mr, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                           int64_t ldc, bool acc) {
  switch (mr) {
    case 6: micro_f32<6, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 5: micro_f32<5, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 4: micro_f32<4, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 3: micro_f32<3, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 2: micro_f32<2, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
    default: micro_f32<1, NV>(K, A, lda, B, ldb, C, ldc, acc); break;
  }
}
#endif

template <typename T>
inline void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
                 bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, sizeof(T) * N);
    return;
  }
#if defined(__AVX2__) && defined(__FMA__)
  if constexpr (sizeof(T) == 4) {
    const int64_t n16 = N / 16 * 16, n8 = N / 8 * 8;
    for (int64_t i0 = 0; i0 < M; i0 += 6) {
      const int64_t mr = M - i0 < 6 ? M - i0 : 6;
      const float* a = A + i0 * lda;
      float* c = C + i0 * ldc;
      for (int64_t j0 = 0; j0 < n16; j0 += 16) micro_rows_f32<2>(mr, K, a, lda, B + j0, ldb, c + j0, ldc, accumulate);
      if (n8 > n16) micro_rows_f32<1>(mr, K, a, lda, B + n16, ldb, c + n16, ldc, accumulate);
      if (N > n8) gemm_rows_generic<float>(mr, N - n8, K, a, lda, B + n8, ldb, c + n8, ldc, accumulate);
    }
    return;
  }
#endif
  gemm_rows_generic<T>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

// exp(x) for x ≤ 0 (x below -87 gives 0): Cody–Waite range reduction and a degree-6
// polynomial, rel err ~2e-7 in float32; written without branches so loops over it vectorise.
inline float exp_nonpos(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return x <= -87.0f ? 0.0f : p * scale;
}
inline double exp_nonpos(double x) { return std::exp(x); }

}  // namespace ss::cpu
