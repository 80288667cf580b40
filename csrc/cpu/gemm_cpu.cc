// CPU GEMM for linear layers: out (M, N) = x (M, K) · w (N, K)ᵀ + bias.
//
// Large M: the classic blocked scheme. For each block of KC columns of K, x and w are packed
// (converted to the compute type, zero-padded) into MR-row and NR-column panels; a 6 x 2-vector
// register-blocked FMA microkernel then sweeps macro tiles of MC x NC, threaded over tiles.
// Each w panel (KC x NR) stays in L1 while the MC rows of x stream from L2.
// Small M (decode, M <= 32): memory-bound matrix-vector products, threaded over N; a block of
// w rows (256 KiB) is dotted with the rows of x 8 at a time (register-blocked) while it stays
// in cache, so w streams from memory once. Cheaper than packing w for so few rows.
// Batched decode (32 < M <= 256): packing w every call would move the whole weight twice for
// little compute (M = 64: as long as the products), so the same microkernel shape runs with the
// roles swapped: MR rows of w are the broadcast operand, read in place, and x, packed once into
// NR-token panels, the vector operand (outᵀ tiles); with many rows and few columns (prefill's
// channel-major products) the same on the swapped problem. These paths read strided views in
// place (gemm_cpu_reads_strided): x is packed anyway, w's rows are read through strides, and a
// column-major w (a transposed activation) is gathered per block of columns (gemm_wcols).
#include <algorithm>
#include <cstring>
#include <vector>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
#include "ops/dense.h"

namespace ss {
namespace {

// A SIMD vector of the compute type: AVX2/FMA where compiled for it, plain arrays otherwise.
template <typename C> struct Simd;
#if defined(__AVX2__) && defined(__FMA__)
template <> struct Simd<float> {
  using V = __m256;
  static constexpr int L = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float v) { return _mm256_set1_ps(v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static float sum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
template <> struct Simd<double> {
  using V = __m256d;
  static constexpr int L = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V set1(double v) { return _mm256_set1_pd(v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static double sum(V v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};
#else
template <typename C> struct Simd {
  static constexpr int L = 32 / sizeof(C);
  struct V { C e[L]; };
  static V zero() { return V{}; }
  static V load(const C* p) { V v; for (int i = 0; i < L; ++i) v.e[i] = p[i]; return v; }
  static void store(C* p, V v) { for (int i = 0; i < L; ++i) p[i] = v.e[i]; }
  static V set1(C x) { V v; for (int i = 0; i < L; ++i) v.e[i] = x; return v; }
  static V fma(V a, V b, V c) { for (int i = 0; i < L; ++i) c.e[i] += a.e[i] * b.e[i]; return c; }
  static V add(V a, V b) { for (int i = 0; i < L; ++i) a.e[i] += b.e[i]; return a; }
  static C sum(V v) { C s = 0; for (int i = 0; i < L; ++i) s += v.e[i]; return s; }
};
#endif

template <typename C> struct GemmTraits {
  using S = Simd<C>;
  static constexpr int MR = 6;            // rows of the microkernel
  static constexpr int NR = 2 * S::L;     // columns: two vectors
  static constexpr int64_t KC = 256;      // depth of a packed block
  static constexpr int64_t MC = 16 * MR;  // rows of a macro tile (x block in L2)
  static constexpr int64_t NC = 16 * NR;  // columns of a macro tile
  static constexpr int kSmallM = 32;      // M at or below this takes the matrix-vector path
  static constexpr int kWRowsM = 256;     // M at or below this reads w in place (gemm_wrows)
};

// acc (MR x NR tile of C, leading dimension ldc) (+)= Ap (kc x MR) · Bp (kc x NR).
// Partial tiles (mr < MR or nr < NR) go through a local buffer.
template <typename C>
void microkernel(int64_t kc, const C* Ap, const C* Bp, C* c, int64_t ldc, int mr, int nr, bool accumulate) {
  using Tr = GemmTraits<C>;
  using S = typename Tr::S;
  constexpr int MR = Tr::MR, NR = Tr::NR, L = S::L;
  typename S::V acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = S::zero();
  for (int64_t k = 0; k < kc; ++k) {
    typename S::V b0 = S::load(Bp + k * NR), b1 = S::load(Bp + k * NR + L);
    const C* a = Ap + k * MR;
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      typename S::V av = S::set1(a[i]);
      acc[i][0] = S::fma(av, b0, acc[i][0]);
      acc[i][1] = S::fma(av, b1, acc[i][1]);
    }
  }
  if (mr == MR && nr == NR) {
    for (int i = 0; i < MR; ++i) {
      C* row = c + i * ldc;
      if (accumulate) {
        acc[i][0] = S::add(acc[i][0], S::load(row));
        acc[i][1] = S::add(acc[i][1], S::load(row + L));
      }
      S::store(row, acc[i][0]);
      S::store(row + L, acc[i][1]);
    }
    return;
  }
  C tile[MR * NR];
  for (int i = 0; i < MR; ++i) {
    S::store(tile + i * NR, acc[i][0]);
    S::store(tile + i * NR + L, acc[i][1]);
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : C(0)) + tile[i * NR + j];
}

// Packs rows [0, rows) x columns [k0, k0+kc) of a matrix whose element (r, k) sits at r·rs + k·ks
// into panels of P rows: dst[(panel*kc + k)*P + i] = src[panel*P + i][k0 + k], zero past the
// last row.
template <typename C, int P, typename T>
void pack_panels(const T* src, int64_t rows, int64_t rs, int64_t ks, int64_t k0, int64_t kc, C* dst) {
  const int64_t panels = (rows + P - 1) / P;
  parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t pi = p0; pi < p1; ++pi) {
      C* d = dst + pi * kc * P;
      for (int i = 0; i < P; ++i) {
        int64_t r = pi * P + i;
        if (r < rows) {
          const T* s = src + r * rs + k0 * ks;
          for (int64_t k = 0; k < kc; ++k) d[k * P + i] = cpu::ld<C>(s + k * ks);
        } else {
          for (int64_t k = 0; k < kc; ++k) d[k * P + i] = C(0);
        }
      }
    }
  });
}

template <typename T, typename C> void gemm_blocked(const GemmParams& p, C* acc) {
  using Tr = GemmTraits<C>;
  constexpr int MR = Tr::MR, NR = Tr::NR;
  const int64_t M = p.M, N = p.N, K = p.K;
  const int64_t mpan = (M + MR - 1) / MR, npan = (N + NR - 1) / NR;
  std::vector<C> Ap(static_cast<size_t>(mpan) * MR * std::min<int64_t>(K, Tr::KC));
  std::vector<C> Bp(static_cast<size_t>(npan) * NR * std::min<int64_t>(K, Tr::KC));
  const int64_t mt = (M + Tr::MC - 1) / Tr::MC, nt = (N + Tr::NC - 1) / Tr::NC;
  for (int64_t k0 = 0; k0 < K; k0 += Tr::KC) {
    const int64_t kc = std::min<int64_t>(Tr::KC, K - k0);
    pack_panels<C, MR>(static_cast<const T*>(p.x), M, K, 1, k0, kc, Ap.data());
    pack_panels<C, NR>(static_cast<const T*>(p.weight), N, K, 1, k0, kc, Bp.data());
    const bool accumulate = k0 > 0;
    parallel_for(mt * nt, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t m_lo = (t / nt) * Tr::MC, n_lo = (t % nt) * Tr::NC;
        const int64_t m_hi = std::min(M, m_lo + Tr::MC), n_hi = std::min(N, n_lo + Tr::NC);
        for (int64_t n = n_lo; n < n_hi; n += NR) {
          const C* b = Bp.data() + (n / NR) * kc * NR;
          for (int64_t m = m_lo; m < m_hi; m += MR) {
            microkernel<C>(kc, Ap.data() + (m / MR) * kc * MR, b, acc + m * N + n, N,
                           static_cast<int>(std::min<int64_t>(MR, M - m)), static_cast<int>(std::min<int64_t>(NR, N - n)),
                           accumulate);
          }
        }
      }
    });
  }
  if (K == 0) std::fill(acc, acc + M * N, C(0));
}

// Small M: out[m][n] = dot(x[m], w[n]) for MM rows of x (already in the compute type) at once.
template <typename C, int MM, typename T>
void gemv_rows(const C* xs, const T* w, int64_t K, int64_t n0, int64_t n1, C* acc, int64_t N) {
  using S = Simd<C>;
  constexpr int L = S::L;
  C wbuf[L];
  for (int64_t n = n0; n < n1; ++n) {
    const T* wr = w + n * K;
    typename S::V a[MM];
    for (int m = 0; m < MM; ++m) a[m] = S::zero();
    int64_t k = 0;
    for (; k + L <= K; k += L) {
      typename S::V wv;
      if constexpr (std::is_same_v<T, C>) {
        wv = S::load(wr + k);
      } else {
        for (int j = 0; j < L; ++j) wbuf[j] = cpu::ld<C>(wr + k + j);
        wv = S::load(wbuf);
      }
      for (int m = 0; m < MM; ++m) a[m] = S::fma(S::load(xs + m * K + k), wv, a[m]);
    }
    for (int m = 0; m < MM; ++m) {
      C s = S::sum(a[m]);
      for (int64_t kk = k; kk < K; ++kk) s += xs[m * K + kk] * cpu::ld<C>(wr + kk);
      acc[m * N + n] = s;
    }
  }
}

template <typename T, typename C> void gemm_small_m(const GemmParams& p, C* acc) {
  const int64_t M = p.M, N = p.N, K = p.K;
  std::vector<C> xs(static_cast<size_t>(M * K));
  const T* x = static_cast<const T*>(p.x);
  for (int64_t i = 0; i < M * K; ++i) xs[i] = cpu::ld<C>(x + i);
  const T* w = static_cast<const T*>(p.weight);
  const int64_t nb = std::max<int64_t>(1, (int64_t{256} << 10) / std::max<int64_t>(1, K * static_cast<int64_t>(sizeof(C))));
  parallel_for(N, std::max<int64_t>(1, 8192 / (K + 1)), [&](int64_t n0, int64_t n1) {
    for (int64_t nn = n0; nn < n1; nn += nb) {
      const int64_t ne = std::min(n1, nn + nb);
      for (int64_t m0 = 0; m0 < M; m0 += 8) {
        const C* xm = xs.data() + m0 * K;
        C* am = acc + m0 * N;
        switch (std::min<int64_t>(8, M - m0)) {
          case 1: gemv_rows<C, 1>(xm, w, K, nn, ne, am, N); break;
          case 2: gemv_rows<C, 2>(xm, w, K, nn, ne, am, N); break;
          case 3: gemv_rows<C, 3>(xm, w, K, nn, ne, am, N); break;
          case 4: gemv_rows<C, 4>(xm, w, K, nn, ne, am, N); break;
          case 5: gemv_rows<C, 5>(xm, w, K, nn, ne, am, N); break;
          case 6: gemv_rows<C, 6>(xm, w, K, nn, ne, am, N); break;
          case 7: gemv_rows<C, 7>(xm, w, K, nn, ne, am, N); break;
          default: gemv_rows<C, 8>(xm, w, K, nn, ne, am, N); break;
        }
      }
    }
  });
}

// 32 < M <= 256: out[m][n0 + i] for MR rows of w at a time (read in place, each a sequential
// stream) against NR-token panels of x packed as xp[panel][k][NR] (zero past M); the w rows stay
// in cache across the panels, so w streams from memory once. Threaded over blocks of w rows.
// out_t: acc is (N, M) instead (the caller swapped x and w: see gemm_typed).
// x and w may be strided views (GemmParams' ld and column-major flags): x is packed anyway, and
// w's rows are read through a row and a k step.
template <typename T, typename C> void gemm_wrows(const GemmParams& p, C* acc, bool out_t) {
  using Tr = GemmTraits<C>;
  using S = typename Tr::S;
  constexpr int MR = Tr::MR, NR = Tr::NR, L = S::L;
  const int64_t M = p.M, N = p.N, K = p.K;
  const int64_t ldx = p.ldx ? p.ldx : K, ldw = p.ldw ? p.ldw : K;
  const int64_t xm = p.x_col_major ? 1 : ldx, xk = p.x_col_major ? ldx : 1;  // element (m, k) at m·xm + k·xk
  const int64_t wn = p.w_col_major ? 1 : ldw, wk = p.w_col_major ? ldw : 1;
  const int64_t panels = (M + NR - 1) / NR;
  std::vector<C> xp(static_cast<size_t>(panels * K * NR));
  pack_panels<C, NR>(static_cast<const T*>(p.x), M, xm, xk, 0, K, xp.data());
  const T* w = static_cast<const T*>(p.weight);
  const int64_t blocks = (N + MR - 1) / MR;
  parallel_for(blocks, std::max<int64_t>(1, 4096 / (K + 1)), [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * MR;
      const int mr = static_cast<int>(std::min<int64_t>(MR, N - n0));
      const T* wr[MR];
      for (int i = 0; i < MR; ++i) wr[i] = w + (n0 + std::min(i, mr - 1)) * wn;  // rows past N repeat the last (not stored)
      for (int64_t q = 0; q < panels; ++q) {
        typename S::V a[MR][2];
        for (int i = 0; i < MR; ++i) a[i][0] = a[i][1] = S::zero();
        const C* xq = xp.data() + q * K * NR;
        for (int64_t k = 0; k < K; ++k) {
          const typename S::V x0 = S::load(xq + k * NR), x1 = S::load(xq + k * NR + L);
          const int64_t kw = k * wk;
#pragma GCC unroll 6
          for (int i = 0; i < MR; ++i) {
            const typename S::V wv = S::set1(cpu::ld<C>(wr[i] + kw));
            a[i][0] = S::fma(wv, x0, a[i][0]);
            a[i][1] = S::fma(wv, x1, a[i][1]);
          }
        }
        C tile[MR][NR];
        for (int i = 0; i < MR; ++i) {
          S::store(tile[i], a[i][0]);
          S::store(tile[i] + L, a[i][1]);
        }
        const int nt = static_cast<int>(std::min<int64_t>(NR, M - q * NR));
        if (out_t) {
          for (int i = 0; i < mr; ++i) std::copy(tile[i], tile[i] + nt, acc + (n0 + i) * M + q * NR);
        } else {
          for (int j = 0; j < nt; ++j) {
            C* o = acc + (q * NR + j) * N + n0;
            for (int i = 0; i < mr; ++i) o[i] = tile[i][j];
          }
        }
      }
    }
  });
}

// 32 < M <= 256 with w column-major in the compute type (prefill's x_proj: the weight operand is
// the transposed activations, each k's n contiguous): the packed path's microkernel over blocks
// of NR columns, each block gathered into a K x NR panel first (read in place, its K pieces a
// power-of-two stride apart alias in L1: 15 ms against 8.6-11 packed for 80x2048x1536; the
// contiguous product takes 4.5), x packed once into MR-row panels. Threaded over column blocks.
template <typename C> void gemm_wcols(const GemmParams& p, C* acc) {
  using Tr = GemmTraits<C>;
  constexpr int MR = Tr::MR, NR = Tr::NR;
  const int64_t M = p.M, N = p.N, K = p.K, ldw = p.ldw ? p.ldw : N;
  const int64_t ldx = p.ldx ? p.ldx : K, xm = p.x_col_major ? 1 : ldx, xk = p.x_col_major ? ldx : 1;
  const int64_t mpan = (M + MR - 1) / MR;
  std::vector<C> Ap(static_cast<size_t>(mpan * K * MR));
  pack_panels<C, MR>(static_cast<const C*>(p.x), M, xm, xk, 0, K, Ap.data());
  const C* w = static_cast<const C*>(p.weight);  // element (n, k) at k·ldw + n
  parallel_for((N + NR - 1) / NR, std::max<int64_t>(1, 4096 / (K + 1)), [&](int64_t b0, int64_t b1) {
    std::vector<C> Bp(static_cast<size_t>(K * NR));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * NR;
      const int nr = static_cast<int>(std::min<int64_t>(NR, N - n0));
      if (nr < NR) std::fill(Bp.begin(), Bp.end(), C(0));  // the last block's missing columns
      for (int64_t k = 0; k < K; ++k) std::copy(w + k * ldw + n0, w + k * ldw + n0 + nr, Bp.data() + k * NR);
      for (int64_t q = 0; q < mpan; ++q)
        microkernel<C>(K, Ap.data() + q * K * MR, Bp.data(), acc + q * MR * N + n0, N, static_cast<int>(std::min<int64_t>(MR, M - q * MR)),
                       nr, false);
    }
  });
}

// The paths of gemm_typed that read strided x and w (gemm_wrows, gemm_wcols); the others want
// them contiguous. (The row thresholds are the same for every compute type.)
using RowLimits = GemmTraits<float>;
bool wrows(const GemmParams& p) { return p.M > RowLimits::kSmallM && p.M <= RowLimits::kWRowsM; }
bool swapped_wrows(const GemmParams& p) {
  return p.M > RowLimits::kWRowsM && p.N > RowLimits::kSmallM && p.N <= RowLimits::kWRowsM;
}

template <typename T> void gemm_typed(const GemmParams& p) {
  using C = cpu::compute_t<T>;
  const int64_t M = p.M, N = p.N;
  std::vector<C> tmp;
  C* acc;
  if constexpr (std::is_same_v<T, C>) {
    acc = static_cast<C*>(p.out);
  } else {
    tmp.resize(static_cast<size_t>(M * N));
    acc = tmp.data();
  }
  if (M <= RowLimits::kSmallM) {
    gemm_small_m<T, C>(p, acc);
  } else if (wrows(p) && p.w_col_major && std::is_same_v<T, C>) {
    gemm_wcols<C>(p, acc);
  } else if (wrows(p)) {
    gemm_wrows<T, C>(p, acc, false);
  } else if (swapped_wrows(p)) {
    // Few columns, many rows (prefill's channel-major products: a layer's weight as x times a
    // chunk of tokens): outᵀ = w · xᵀ the same way, x's rows read in place (mamba-130m's in_proj,
    // 3072 x 256 x 768, ~75 -> ~120 GFLOP/s on the build machine).
    GemmParams q = p;
    std::swap(q.M, q.N);
    std::swap(q.x, q.weight);
    std::swap(q.ldx, q.ldw);
    std::swap(q.x_col_major, q.w_col_major);
    gemm_wrows<T, C>(q, acc, true);
  } else {
    gemm_blocked<T, C>(p, acc);
  }
  if (std::is_same_v<T, C> && !p.bias) return;
  T* out = static_cast<T*>(p.out);
  std::vector<C> bias(p.bias ? N : 0);
  for (int64_t n = 0; n < static_cast<int64_t>(bias.size()); ++n) bias[n] = cpu::ld_any<C>(p.bias, p.bias_dtype, n);
  parallel_for(M, std::max<int64_t>(1, 16384 / (N + 1)), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n) cpu::st(out + m * N + n, acc[m * N + n] + (p.bias ? bias[n] : C(0)));
  });
}

}  // namespace

bool gemm_cpu_reads_strided(const GemmParams& p) { return wrows(p) || swapped_wrows(p); }

void gemm_cpu(const GemmParams& p) {
  cpu::float_switch(p.dtype, [&](auto* t) { gemm_typed<std::remove_pointer_t<decltype(t)>>(p); });
}

}  // namespace ss
