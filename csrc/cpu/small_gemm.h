// Small dense matrix products for CPU kernels whose operands fit in cache (a few hundred rows):
// C(M×N) (+)= A(M×K)·B(K×N), row-major with leading dimensions; with AT, A is read transposed
// (element (i, k) at A[k·lda + i]), which saves packing a transpose. float32 runs an AVX2/FMA
// register-blocked micro-kernel (6 rows × 16 columns in 12 accumulators); float64 and other
// targets run a loop nest the compiler vectorises. Also a branch-free exp of non-positive
// arguments that vectorises (the SSD decay factors are exp of segment sums, all ≤ 0).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace ss::cpu {

// Generic path: i-k-j loop, the inner loop contiguous (vectorised by the compiler).
template <typename T, bool AT = false>
inline void gemm_rows_generic(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                              int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (!accumulate)
      for (int64_t j = 0; j < N; ++j) c[j] = T(0);
    for (int64_t k = 0; k < K; ++k) {
      const T av = AT ? A[k * lda + i] : A[i * lda + k];
      if (av == T(0)) continue;
      const T* b = B + k * ldb;
      for (int64_t j = 0; j < N; ++j) c[j] += av * b[j];
    }
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// MR rows × (8·NV) columns of C, accumulators in registers across the whole K loop.
template <int MR, int NV, bool AT>
inline void micro_f32(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                      bool accumulate) {
  // Fully unrolled so the accumulators live in registers (GCC otherwise keeps them on the stack).
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? _mm256_loadu_ps(C + i * ldc + 8 * v) : _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m256 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(B + k * ldb + 8 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(AT ? A + k * lda + i : A + i * lda + k);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(C + i * ldc + 8 * v, acc[i][v]);
}

template <int NV, bool AT>
inline void micro_rows_f32(int64_t mr, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                           int64_t ldc, bool acc) {
  switch (mr) {
    case 6: micro_f32<6, NV, AT>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 5: micro_f32<5, NV, AT>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 4: micro_f32<4, NV, AT>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 3: micro_f32<3, NV, AT>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 2: micro_f32<2, NV, AT>(K, A, lda, B, ldb, C, ldc, acc); break;
    default: micro_f32<1, NV, AT>(K, A, lda, B, ldb, C, ldc, acc); break;
  }
}
#endif

template <typename T, bool AT = false>
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
    // K in blocks of kKc, so a micro-tile's slices of A and B stay in L1 across the j0 sweep.
    constexpr int64_t kKc = 128;
    if (K > kKc) {
      for (int64_t k0 = 0; k0 < K; k0 += kKc)
        gemm<T, AT>(M, N, std::min(kKc, K - k0), AT ? A + k0 * lda : A + k0, lda, B + k0 * ldb, ldb, C, ldc,
                    accumulate || k0 > 0);
      return;
    }
    const int64_t n16 = N / 16 * 16, n8 = N / 8 * 8;
    for (int64_t i0 = 0; i0 < M; i0 += 6) {
      const int64_t mr = M - i0 < 6 ? M - i0 : 6;
      const float* a = AT ? A + i0 : A + i0 * lda;
      float* c = C + i0 * ldc;
      for (int64_t j0 = 0; j0 < n16; j0 += 16) micro_rows_f32<2, AT>(mr, K, a, lda, B + j0, ldb, c + j0, ldc, accumulate);
      if (n8 > n16) micro_rows_f32<1, AT>(mr, K, a, lda, B + n16, ldb, c + n16, ldc, accumulate);
      if (N > n8) gemm_rows_generic<float, AT>(mr, N - n8, K, a, lda, B + n8, ldb, c + n8, ldc, accumulate);
    }
    return;
  }
#endif
  gemm_rows_generic<T, AT>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

// Leading dimension for a packed buffer of `cols` columns: rows a multiple of 64 bytes apart but
// not of 512, so walking down a column spreads over L1 sets instead of thrashing a few.
inline int64_t padded_ld(int64_t cols) { return (cols + 15) / 16 * 16 + 16; }

// exp(x) for x ≤ 88 (x below -87 gives 0; the SSD only needs x ≤ 0): Cody–Waite range reduction and a degree-6
// polynomial, rel err ~2e-7 in float32; written without branches so loops over it vectorise.
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
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
inline double fast_exp(double x) { return std::exp(x); }

#if defined(__AVX2__) && defined(__FMA__)
// fast_exp on 8 lanes.
inline __m256 fast_exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  return _mm256_and_ps(v, _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GT_OQ));  // exp(-87 and below) -> 0
}
#endif

// out[s] = exp(c - v[s]) for s < n.
inline void exp_diff_row(float c, const float* v, float* out, int64_t n) {
  int64_t s = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 cv = _mm256_set1_ps(c);
  for (; s + 8 <= n; s += 8) _mm256_storeu_ps(out + s, fast_exp8(_mm256_sub_ps(cv, _mm256_loadu_ps(v + s))));
#endif
  for (; s < n; ++s) out[s] = fast_exp(c - v[s]);
}
// y[i] *= silu(z[i]) = z / (1 + exp(-z)).
inline void silu_mul_row(const float* z, float* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 zv = _mm256_loadu_ps(z + i);
    const __m256 e = fast_exp8(_mm256_sub_ps(_mm256_setzero_ps(), zv));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), _mm256_div_ps(zv, _mm256_add_ps(one, e))));
  }
#endif
  for (; i < n; ++i) y[i] *= z[i] / (1.0f + fast_exp(-z[i]));
}
inline void silu_mul_row(const double* z, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= z[i] / (1.0 + std::exp(-z[i]));
}
inline void exp_diff_row(double c, const double* v, double* out, int64_t n) {
  for (int64_t s = 0; s < n; ++s) out[s] = std::exp(c - v[s]);
}

}  // namespace ss::cpu
