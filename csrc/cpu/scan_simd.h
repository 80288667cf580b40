// Inner loops of the CPU selective scan over the dstate axis: one step of the recurrence for
// one (batch, dim) row, and its reverse. f32 uses AVX2/FMA with a polynomial exp when the build
// has them; float64 (the reference path) and the dstate tail use plain loops with std::exp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SS_SCAN_AVX2 1
#endif

namespace ss::scan_simd {

#ifdef SS_SCAN_AVX2
// exp(x) for x in float: 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2], p the degree-7 Taylor
// polynomial (relative error < 1e-7 there). Inputs are clamped to [-87, 88]: exp(-87) ~ 1.6e-38
// stands in for 0, which only matters for states already below f32 resolution.
inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

#ifdef SS_SCAN_AVX2
// log(x) for x in [1, 2]: 2 atanh(s), s = (x-1)/(x+1) in [0, 1/3], odd series to s^15.
inline __m256 log_1to2(__m256 x) {
  const __m256 s = _mm256_div_ps(_mm256_sub_ps(x, _mm256_set1_ps(1.0f)), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256 s2 = _mm256_mul_ps(s, s);
  __m256 p = _mm256_set1_ps(1.0f / 15);
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 13));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 11));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 9));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 7));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 5));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 3));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f));
  return _mm256_mul_ps(_mm256_mul_ps(p, s), _mm256_set1_ps(2.0f));
}
#endif

// v = softplus(v) = max(v, 0) + log(1 + exp(-|v|)), in place over a row.
template <typename S> inline void softplus_row(S* v, int64_t n) {
  int64_t i = 0;
#ifdef SS_SCAN_AVX2
  if constexpr (sizeof(S) == 4) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (; i + 8 <= n; i += 8) {
      const __m256 x = _mm256_loadu_ps(v + i);
      const __m256 e = exp256(_mm256_or_ps(x, sign));  // exp(-|x|)
      _mm256_storeu_ps(v + i, _mm256_add_ps(_mm256_max_ps(x, _mm256_setzero_ps()), log_1to2(_mm256_add_ps(e, _mm256_set1_ps(1.0f)))));
    }
  }
#endif
  for (; i < n; ++i) v[i] = std::max(v[i], S(0)) + std::log1p(std::exp(-std::abs(v[i])));
}

// out = sigmoid(v) over a row.
template <typename S> inline void sigmoid_row(S* out, const S* v, int64_t n) {
  int64_t i = 0;
#ifdef SS_SCAN_AVX2
  if constexpr (sizeof(S) == 4) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_loadu_ps(v + i)));
      _mm256_storeu_ps(out + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    }
  }
#endif
  for (; i < n; ++i) out[i] = S(1) / (S(1) + std::exp(-v[i]));
}

// One forward step: x = a*x + du*B with a = exp(dt*A) (0 on a restart); returns <C, x>.
template <typename S>
inline S step(S* x, const S* A, const S* B, const S* C, S dt, S du, bool restart, int64_t n) {
  int64_t i = 0;
  S acc = 0;
#ifdef SS_SCAN_AVX2
  if constexpr (sizeof(S) == 4) {
    const __m256 vdt = _mm256_set1_ps(dt), vdu = _mm256_set1_ps(du);
    const __m256 keep = restart ? _mm256_setzero_ps() : _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    __m256 vacc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
      const __m256 a = _mm256_and_ps(exp256(_mm256_mul_ps(vdt, _mm256_loadu_ps(A + i))), keep);
      const __m256 xi = _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_mul_ps(vdu, _mm256_loadu_ps(B + i)));
      _mm256_storeu_ps(x + i, xi);
      vacc = _mm256_fmadd_ps(xi, _mm256_loadu_ps(C + i), vacc);
    }
    acc = hsum(vacc);
  }
#endif
  for (; i < n; ++i) {
    const S a = restart ? S(0) : std::exp(dt * A[i]);
    x[i] = a * x[i] + du * B[i];
    acc += x[i] * C[i];
  }
  return acc;
}

#ifdef SS_SCAN_AVX2
// A whole row forward with the state held in V AVX registers (dstate = 8 V): y[t] = <C_t, x_t>.
// rst (optional) flags restarts (x_{t-1} dropped); hist (optional) receives x_t at hist + (t+1) N.
template <int V>
inline void scan_row_regs(float* x, const float* A, const float* B, int64_t sb, const float* C, int64_t sc,
                          const float* dt, const float* u, float* y, const uint8_t* rst, int64_t L, float* hist) {
  __m256 vx[V], vA[V];
  for (int v = 0; v < V; ++v) vx[v] = _mm256_loadu_ps(x + 8 * v), vA[v] = _mm256_loadu_ps(A + 8 * v);
  const __m256 ones = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int64_t t = 0; t < L; ++t) {
    const __m256 keep = rst && rst[t] ? _mm256_setzero_ps() : ones;
    const __m256 vdt = _mm256_set1_ps(dt[t]), vdu = _mm256_set1_ps(dt[t] * u[t]);
    const float* Bt = B + t * sb;
    const float* Ct = C + t * sc;
    __m256 acc = _mm256_setzero_ps();
    for (int v = 0; v < V; ++v) {
      const __m256 a = _mm256_and_ps(exp256(_mm256_mul_ps(vdt, vA[v])), keep);
      vx[v] = _mm256_fmadd_ps(a, vx[v], _mm256_mul_ps(vdu, _mm256_loadu_ps(Bt + 8 * v)));
      acc = _mm256_fmadd_ps(vx[v], _mm256_loadu_ps(Ct + 8 * v), acc);
    }
    if (hist)
      for (int v = 0; v < V; ++v) _mm256_storeu_ps(hist + (t + 1) * 8 * V + 8 * v, vx[v]);
    y[t] = hsum(acc);
  }
  for (int v = 0; v < V; ++v) _mm256_storeu_ps(x + 8 * v, vx[v]);
}
#endif

// Row forward through the register path when dstate is 8, 16, 24 or 32 (f32); false otherwise.
template <typename S>
inline bool scan_row_fast(S* x, const S* A, const S* B, int64_t sb, const S* C, int64_t sc, const S* dt, const S* u,
                          S* y, const uint8_t* rst, int64_t L, S* hist, int64_t n) {
#ifdef SS_SCAN_AVX2
  if constexpr (sizeof(S) == 4) {
    switch (n) {
      case 8: scan_row_regs<1>(x, A, B, sb, C, sc, dt, u, y, rst, L, hist); return true;
      case 16: scan_row_regs<2>(x, A, B, sb, C, sc, dt, u, y, rst, L, hist); return true;
      case 24: scan_row_regs<3>(x, A, B, sb, C, sc, dt, u, y, rst, L, hist); return true;
      case 32: scan_row_regs<4>(x, A, B, sb, C, sc, dt, u, y, rst, L, hist); return true;
      default: break;
    }
  }
#endif
  (void)x, (void)A, (void)B, (void)sb, (void)C, (void)sc, (void)dt, (void)u, (void)y, (void)rst, (void)L, (void)hist, (void)n;
  return false;
}

// Results of one reverse step that the caller folds into the per-step gradients.
template <typename S> struct BackStep {
  S d_dt = 0;    // d loss / d dt'_t
  S sum_gB = 0;  // sum_n g_n B_n
};

// One reverse step at t. On entry g = dL/dx_t minus the C_t dy_t term; xt = x_t, xp = x_{t-1}.
// Adds dC_t = dy x_t, dB_t = g dt u, dA += g x_{t-1} a dt; leaves g = a_t g_t (dL/dx_{t-1}).
template <typename S>
inline BackStep<S> back_step(S* g, const S* xt, const S* xp, const S* A, const S* B, const S* C, S* dA, S* dB,
                             S* dC, S dt, S u, S dy, bool restart, int64_t n) {
  int64_t i = 0;
  BackStep<S> r;
  const S dtu = dt * u;
#ifdef SS_SCAN_AVX2
  if constexpr (sizeof(S) == 4) {
    const __m256 vdt = _mm256_set1_ps(dt), vdtu = _mm256_set1_ps(dtu), vdy = _mm256_set1_ps(dy);
    const __m256 keep = restart ? _mm256_setzero_ps() : _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    __m256 vddt = _mm256_setzero_ps(), vgb = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
      const __m256 Ai = _mm256_loadu_ps(A + i);
      const __m256 a = _mm256_and_ps(exp256(_mm256_mul_ps(vdt, Ai)), keep);
      const __m256 gi = _mm256_fmadd_ps(_mm256_loadu_ps(C + i), vdy, _mm256_loadu_ps(g + i));
      _mm256_storeu_ps(dC + i, _mm256_fmadd_ps(vdy, _mm256_loadu_ps(xt + i), _mm256_loadu_ps(dC + i)));
      _mm256_storeu_ps(dB + i, _mm256_fmadd_ps(gi, vdtu, _mm256_loadu_ps(dB + i)));
      const __m256 ga = _mm256_mul_ps(_mm256_mul_ps(gi, _mm256_loadu_ps(xp + i)), a);
      vddt = _mm256_fmadd_ps(ga, Ai, vddt);
      _mm256_storeu_ps(dA + i, _mm256_fmadd_ps(ga, vdt, _mm256_loadu_ps(dA + i)));
      vgb = _mm256_fmadd_ps(gi, _mm256_loadu_ps(B + i), vgb);
      _mm256_storeu_ps(g + i, _mm256_mul_ps(gi, a));
    }
    r.d_dt = hsum(vddt);
    r.sum_gB = hsum(vgb);
  }
#endif
  for (; i < n; ++i) {
    const S a = restart ? S(0) : std::exp(dt * A[i]);
    const S gi = g[i] + C[i] * dy;
    dC[i] += dy * xt[i];
    dB[i] += gi * dtu;
    const S ga = gi * xp[i] * a;
    r.d_dt += ga * A[i];
    dA[i] += ga * dt;
    r.sum_gB += gi * B[i];
    g[i] = gi * a;
  }
  return r;
}

#ifdef SS_SCAN_AVX2
// A whole row's reverse recurrence with g and dA in V AVX registers (dstate = 8 V). hist holds
// x_{-1}..x_{L-1} ((L+1) x N); dy is the gated output gradient. Per step it writes the sum
// over states of g x_{t-1} a A (ddt[t]) and of g B (gB[t]), and adds dB_t, dC_t (into the
// per-step rows when sb/sc are N, into one (dstate) row when they are 0). g ends as dL/dx_{-1}.
template <int V>
inline void back_row_regs(float* g, const float* hist, const float* A, const float* B, int64_t sb, const float* C,
                          int64_t sc, float* dA, float* dB, float* dC, const float* dt, const float* u, const float* dy,
                          const uint8_t* rst, int64_t L, float* ddt, float* gB) {
  constexpr int N = 8 * V;
  __m256 vg[V], vA[V], vdA[V], vdB[V], vdC[V];
  for (int v = 0; v < V; ++v) {
    vg[v] = _mm256_loadu_ps(g + 8 * v), vA[v] = _mm256_loadu_ps(A + 8 * v), vdA[v] = _mm256_loadu_ps(dA + 8 * v);
    vdB[v] = sb ? _mm256_setzero_ps() : _mm256_loadu_ps(dB + 8 * v);
    vdC[v] = sc ? _mm256_setzero_ps() : _mm256_loadu_ps(dC + 8 * v);
  }
  const __m256 ones = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int64_t t = L - 1; t >= 0; --t) {
    const __m256 keep = rst && rst[t] ? _mm256_setzero_ps() : ones;
    const __m256 vdt = _mm256_set1_ps(dt[t]), vdtu = _mm256_set1_ps(dt[t] * u[t]), vdy = _mm256_set1_ps(dy[t]);
    const float* xt = hist + (t + 1) * N;
    const float* xp = hist + t * N;
    __m256 vddt = _mm256_setzero_ps(), vgb = _mm256_setzero_ps();
    for (int v = 0; v < V; ++v) {
      const __m256 a = _mm256_and_ps(exp256(_mm256_mul_ps(vdt, vA[v])), keep);
      const __m256 gi = _mm256_fmadd_ps(_mm256_loadu_ps(C + t * sc + 8 * v), vdy, vg[v]);
      const __m256 dc = _mm256_mul_ps(vdy, _mm256_loadu_ps(xt + 8 * v)), db = _mm256_mul_ps(gi, vdtu);
      if (sc) _mm256_storeu_ps(dC + t * sc + 8 * v, _mm256_add_ps(_mm256_loadu_ps(dC + t * sc + 8 * v), dc));
      else vdC[v] = _mm256_add_ps(vdC[v], dc);
      if (sb) _mm256_storeu_ps(dB + t * sb + 8 * v, _mm256_add_ps(_mm256_loadu_ps(dB + t * sb + 8 * v), db));
      else vdB[v] = _mm256_add_ps(vdB[v], db);
      const __m256 ga = _mm256_mul_ps(_mm256_mul_ps(gi, _mm256_loadu_ps(xp + 8 * v)), a);
      vddt = _mm256_fmadd_ps(ga, vA[v], vddt);
      vdA[v] = _mm256_fmadd_ps(ga, vdt, vdA[v]);
      vgb = _mm256_fmadd_ps(gi, _mm256_loadu_ps(B + t * sb + 8 * v), vgb);
      vg[v] = _mm256_mul_ps(gi, a);
    }
    ddt[t] = hsum(vddt);
    gB[t] = hsum(vgb);
  }
  for (int v = 0; v < V; ++v) {
    _mm256_storeu_ps(g + 8 * v, vg[v]);
    _mm256_storeu_ps(dA + 8 * v, vdA[v]);
    if (!sb) _mm256_storeu_ps(dB + 8 * v, vdB[v]);
    if (!sc) _mm256_storeu_ps(dC + 8 * v, vdC[v]);
  }
}
#endif

// Reverse row through the register path when dstate is 8, 16, 24 or 32 (f32); false otherwise.
template <typename S>
inline bool back_row_fast(S* g, const S* hist, const S* A, const S* B, int64_t sb, const S* C, int64_t sc, S* dA, S* dB,
                          S* dC, const S* dt, const S* u, const S* dy, const uint8_t* rst, int64_t L, S* ddt, S* gB,
                          int64_t n) {
#ifdef SS_SCAN_AVX2
  if constexpr (sizeof(S) == 4) {
    switch (n) {
      case 8: back_row_regs<1>(g, hist, A, B, sb, C, sc, dA, dB, dC, dt, u, dy, rst, L, ddt, gB); return true;
      case 16: back_row_regs<2>(g, hist, A, B, sb, C, sc, dA, dB, dC, dt, u, dy, rst, L, ddt, gB); return true;
      case 24: back_row_regs<3>(g, hist, A, B, sb, C, sc, dA, dB, dC, dt, u, dy, rst, L, ddt, gB); return true;
      case 32: back_row_regs<4>(g, hist, A, B, sb, C, sc, dA, dB, dC, dt, u, dy, rst, L, ddt, gB); return true;
      default: break;
    }
  }
#endif
  (void)g, (void)hist, (void)A, (void)B, (void)sb, (void)C, (void)sc, (void)dA, (void)dB, (void)dC, (void)dt, (void)u;
  (void)dy, (void)rst, (void)L, (void)ddt, (void)gB, (void)n;
  return false;
}

}  // namespace ss::scan_simd
