// CPU SSD chunked scan, forward and backward (float32 and float64).
//
// The chunked algorithm, per (batch, head), chunks in order, the state carried in cache:
//   Lm[t,s] = (C_t·B_s) exp(cs_t − cs_s) dt'_s      s ≤ t in the same sequence (cs: cumsum of dt'·A)
//   Y       = Lm X + diag(e1) C H0ᵀ                 e1_t = exp(cs_t) while t is in the incoming sequence
//   H       = decay H0 + Xᵀ diag(w) B               w_s = exp(cs_end − cs_s) dt'_s for s in the last sequence
// C·Bᵀ is shared by the heads of a group and computed once per (batch, chunk, group). Every
// exp argument is a difference cs_t − cs_s with s ≤ t (so ≤ 0 for A ≤ 0): nothing overflows.
// Threads split (batch, head); the products run on the register-blocked kernel in small_gemm.h.
// The backward pass re-runs the state recurrence (storing each chunk's incoming state), then
// walks the chunks in reverse carrying dL/dH; per-head dB/dC partials are summed over the heads
// of each group in a fixed order, so results are deterministic.
#include <algorithm>
#include <cmath>
#include <vector>
#include "core/thread_pool.h"
#include "cpu/small_gemm.h"
#include "ops/ssd.h"

namespace ss {
namespace {

using cpu::fast_exp;
using cpu::gemm;
using cpu::padded_ld;

constexpr int64_t kRowBlock = 48;  // rows per causal block (a multiple of the micro-kernel's 6)
constexpr int64_t kMaxChunk = 128;

template <typename T>
struct View {
  const SsdParams& p;
  const T *x, *z, *B, *C, *dt, *A, *D, *dt_bias, *h0;
  int64_t L, H, P, N, G, Q, LQ, hpg, nc;  // LQ: leading dimension of the Q×Q matrices
  explicit View(const SsdParams& q)
      : p(q),
        x(static_cast<const T*>(q.x)), z(static_cast<const T*>(q.z)), B(static_cast<const T*>(q.B)),
        C(static_cast<const T*>(q.C)), dt(static_cast<const T*>(q.dt)), A(static_cast<const T*>(q.A)),
        D(static_cast<const T*>(q.D)), dt_bias(static_cast<const T*>(q.dt_bias)),
        h0(static_cast<const T*>(q.initial_states)),
        L(q.seqlen), H(q.heads), P(q.headdim), N(q.dstate), G(q.groups), Q(cpu_chunk(q)), LQ(padded_ld(cpu_chunk(q))),
        hpg(q.heads / q.groups), nc(q.nchunks(cpu_chunk(q))) {}
  // At most kMaxChunk tokens per chunk: longer chunks only add quadratic work, and their
  // Q×Q matrices fall out of L2 (chunk 256 ran 2.4× slower per FLOP than 128 here).
  static int64_t cpu_chunk(const SsdParams& q) { return std::min({q.chunk, q.seqlen, kMaxChunk}); }
  int64_t xrow(int64_t b, int64_t t, int64_t h) const { return ((b * L + t) * H + h) * P; }
  int64_t brow(int64_t b, int64_t t, int64_t g) const { return ((b * L + t) * G + g) * N; }
  T dval(int64_t h, int64_t i) const { return D ? (p.d_per_channel ? D[h * P + i] : D[h]) : T(0); }
};

// dt' and its derivative with respect to the raw dt (0 where the clamp is active).
template <typename T>
inline T dt_forward(const SsdParams& p, T raw, T* deriv) {
  T v = raw, d = T(1);
  if (p.dt_softplus) {
    d = T(1) / (T(1) + std::exp(-v));
    v = v <= T(20) ? std::log1p(std::exp(v)) : v;
  }
  if (p.clamp_dt) {
    if (v < T(p.dt_min)) v = T(p.dt_min), d = T(0);
    else if (v > T(p.dt_max)) v = T(p.dt_max), d = T(0);
  }
  if (deriv) *deriv = d;
  return v;
}

// Per-chunk scalars of one (batch, head): dt', its derivative, cumsum of dt'·A, sequence segment.
template <typename T>
struct ChunkScalars {
  std::vector<T> dtp, dderiv, cs;
  std::vector<int32_t> seg;  // restarts seen since the chunk's start (a restart at t counts at t)
  int64_t t0 = 0, q = 0;
  explicit ChunkScalars(int64_t Q) : dtp(Q), dderiv(Q), cs(Q), seg(Q) {}

  void load(const View<T>& v, int64_t b, int64_t h, int64_t c) {
    t0 = c * v.Q;
    q = std::min(v.Q, v.L - t0);
    const T a = v.A[h], bias = v.dt_bias ? v.dt_bias[h] : T(0);
    const int32_t* sidx = v.p.seq_idx ? v.p.seq_idx + b * v.L : nullptr;
    T acc = 0;
    int32_t r = 0;
    for (int64_t i = 0; i < q; ++i) {
      const int64_t t = t0 + i;
      dtp[i] = dt_forward<T>(v.p, v.dt[(b * v.L + t) * v.H + h] + bias, &dderiv[i]);
      acc += dtp[i] * a;
      cs[i] = acc;
      if (sidx && t > 0 && sidx[t] != sidx[t - 1]) ++r;
      seg[i] = r;
    }
  }
  T e_in(int64_t t) const { return seg[t] == 0 ? fast_exp(cs[t]) : T(0); }                      // incoming state → t
  T e_out(int64_t s) const { return seg[s] == seg[q - 1] ? fast_exp(cs[q - 1] - cs[s]) : T(0); }  // s → outgoing state
  T decay() const { return seg[q - 1] == 0 ? fast_exp(cs[q - 1]) : T(0); }
};

// CB[b, c, g] = C·Bᵀ (lower triangle) for every chunk, computed once for all heads of a group.
template <typename T>
std::vector<T> chunk_cb(const View<T>& v) {
  const int64_t QQ = v.Q * v.LQ;
  std::vector<T> cb(static_cast<size_t>(v.p.batch * v.nc * v.G * QQ));
  parallel_for(v.p.batch * v.nc * v.G, 1, [&](int64_t lo, int64_t hi) {
    const int64_t ldt = padded_ld(v.Q);
    std::vector<T> bt(v.N * ldt);
    for (int64_t job = lo; job < hi; ++job) {
      const int64_t g = job % v.G, c = (job / v.G) % v.nc, b = job / (v.G * v.nc);
      const int64_t t0 = c * v.Q, q = std::min(v.Q, v.L - t0);
      const T* Bc = v.B + v.brow(b, t0, g);
      const T* Cc = v.C + v.brow(b, t0, g);
      for (int64_t s = 0; s < q; ++s)
        for (int64_t n = 0; n < v.N; ++n) bt[n * ldt + s] = Bc[s * v.G * v.N + n];
      T* out = cb.data() + job * QQ;
      for (int64_t i0 = 0; i0 < q; i0 += kRowBlock) {
        const int64_t mb = std::min(kRowBlock, q - i0);
        gemm<T>(mb, i0 + mb, v.N, Cc + i0 * v.G * v.N, v.G * v.N, bt.data(), ldt, out + i0 * v.LQ, v.LQ, false);
      }
    }
  });
  return cb;
}

// Lm[t,s] = CB[t,s]·exp(cs_t − cs_s)·scale_s on the causal same-sequence part, 0 elsewhere.
// Written as separate simple loops so each one vectorises.
template <typename T>
void decay_matrix(const ChunkScalars<T>& k, const T* cb, int64_t ldcb, const T* scale, T* out, int64_t ld) {
  const T* cs = k.cs.data();
  const int32_t* seg = k.seg.data();
  const bool restarts = seg[k.q - 1] != 0;
  for (int64_t t = 0; t < k.q; ++t) {
    T* row = out + t * ld;
    const T ct = cs[t];
    cpu::exp_diff_row(ct, cs, row, t + 1);
    if (cb) {
      const T* cr = cb + t * ldcb;
      for (int64_t s = 0; s <= t; ++s) row[s] *= cr[s];
    }
    if (scale)
      for (int64_t s = 0; s <= t; ++s) row[s] *= scale[s];
    if (restarts) {
      const int32_t st = seg[t];
      for (int64_t s = 0; s <= t; ++s) row[s] = seg[s] == st ? row[s] : T(0);
    }
    for (int64_t s = t + 1; s < k.q; ++s) row[s] = T(0);
  }
}

// Y(q×P, ldy) = Lm·X on the causal blocks only.
template <typename T>
void causal_lm_x(const T* lm, int64_t ld, int64_t q, const T* X, int64_t ldx, T* Y, int64_t ldy, int64_t P) {
  for (int64_t i0 = 0; i0 < q; i0 += kRowBlock) {
    const int64_t mb = std::min(kRowBlock, q - i0);
    gemm<T>(mb, P, i0 + mb, lm + i0 * ld, ld, X, ldx, Y + i0 * ldy, ldy, false);
  }
}

// Hᵀ ← decay·Hᵀ + Bᵀ·diag(w)·X with w_s = exp(cs_end − cs_s)·dt'_s on the last sequence:
// Bᵀ is packed (N × q, padded rows) in 8×8 blocks, X's rows scaled into xw.
template <typename T>
struct StateScratch {
  int64_t ldx, ldb;
  std::vector<T> xw, bt;
  StateScratch(int64_t Q, int64_t N, int64_t P) : ldx(padded_ld(P)), ldb(padded_ld(Q)), xw(Q * ldx), bt(N * ldb) {}
};

template <typename T>
void state_update(const ChunkScalars<T>& k, const T* Bc, int64_t ldb, const T* X, int64_t ldx, int64_t N, int64_t P,
                  StateScratch<T>& w, T* ht) {
  for (int64_t s = 0; s < k.q; ++s) {
    const T f = k.e_out(s) * k.dtp[s];
    for (int64_t i = 0; i < P; ++i) w.xw[s * w.ldx + i] = X[s * ldx + i] * f;
  }
  for (int64_t s0 = 0; s0 < k.q; s0 += 8)
    for (int64_t n0 = 0; n0 < N; n0 += 8)
      for (int64_t s = s0; s < std::min(s0 + 8, k.q); ++s)
        for (int64_t n = n0; n < std::min(n0 + 8, N); ++n) w.bt[n * w.ldb + s] = Bc[s * ldb + n];
  const T decay = k.decay();
  for (int64_t i = 0; i < N * P; ++i) ht[i] *= decay;
  gemm<T>(N, P, k.q, w.bt.data(), w.ldb, w.xw.data(), w.ldx, ht, P, true);
}

// rows × cols of a strided matrix into a contiguous buffer (the products then touch a few pages
// instead of one per row).
template <typename T>
void pack_rows(const T* src, int64_t ld, int64_t rows, int64_t cols, T* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * ld, src + r * ld + cols, dst + r * ldd);
}

template <typename T>
void transpose(const T* src, int64_t rows, int64_t cols, int64_t lds, T* dst, int64_t ldd) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * ldd + i] = src[i * lds + j];
}

// ---------------------------------------------------------------------------------------------
// Forward

template <typename T>
void forward_impl(const SsdParams& p) {
  View<T> v(p);
  T* y = static_cast<T*>(p.y);
  T* fin = static_cast<T*>(p.final_states);
  const std::vector<T> cb = chunk_cb(v);
  const int64_t Q = v.Q, LQ = v.LQ, P = v.P, N = v.N, ldx = v.H * P, ldb = v.G * N;
  parallel_for(p.batch * v.H, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> ht(N * P), lm(Q * LQ), ce(Q * N), dv(P);
    StateScratch<T> sw(Q, N, P);
    const int64_t ldxc = padded_ld(P);
    std::vector<T> xc(Q * ldxc);
    ChunkScalars<T> k(Q);
    for (int64_t job = lo; job < hi; ++job) {
      const int64_t b = job / v.H, h = job % v.H, g = h / v.hpg;
      for (int64_t i = 0; i < P; ++i) dv[i] = v.dval(h, i);
      if (v.h0) transpose(v.h0 + job * P * N, P, N, N, ht.data(), P);  // state kept as Hᵀ (N×P)
      else std::fill(ht.begin(), ht.end(), T(0));
      for (int64_t c = 0; c < v.nc; ++c) {
        k.load(v, b, h, c);
        const int64_t q = k.q, t0 = k.t0;
        const T* X = v.x + v.xrow(b, t0, h);
        const T* Bc = v.B + v.brow(b, t0, g);
        const T* Cc = v.C + v.brow(b, t0, g);
        T* Y = y + v.xrow(b, t0, h);
        decay_matrix<T>(k, cb.data() + ((b * v.nc + c) * v.G + g) * Q * LQ, LQ, k.dtp.data(), lm.data(), LQ);
        pack_rows(X, ldx, q, P, xc.data(), ldxc);  // packed: the product walks all q rows of X
        causal_lm_x<T>(lm.data(), LQ, q, xc.data(), ldxc, Y, ldx, P);
        for (int64_t t = 0; t < q; ++t) {
          const T e = k.e_in(t);
          for (int64_t n = 0; n < N; ++n) ce[t * N + n] = Cc[t * ldb + n] * e;
        }
        gemm<T>(q, P, N, ce.data(), N, ht.data(), P, Y, ldx, true);
        state_update<T>(k, Bc, ldb, X, ldx, N, P, sw, ht.data());
        for (int64_t t = 0; t < q; ++t) {
          T* yr = Y + t * ldx;
          const T* xr = X + t * ldx;
          for (int64_t i = 0; i < P; ++i) yr[i] += dv[i] * xr[i];
          if (v.z) cpu::silu_mul_row(v.z + v.xrow(b, t0 + t, h), yr, P);
        }
      }
      if (fin) transpose(ht.data(), N, P, P, fin + job * P * N, N);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Backward

template <typename T>
void backward_impl(const SsdParams& p) {
  View<T> v(p);
  const T* dout = static_cast<const T*>(p.dout);
  const T* dfin = static_cast<const T*>(p.dfinal_states);
  T *dx = static_cast<T*>(p.dx), *dz = static_cast<T*>(p.dz), *ddt = static_cast<T*>(p.ddt);
  const std::vector<T> cb = chunk_cb(v);
  const int64_t Q = v.Q, LQ = v.LQ, P = v.P, N = v.N, H = v.H, ldx = H * P, ldb = v.G * N, BH = p.batch * H;
  const int64_t nd = p.d_per_channel ? P : 1;
  // Threads take (batch, group, run of heads); a run's heads add their dB/dC into the run's own
  // partial rows in order, and the runs are summed in a fixed order afterwards. The number of
  // runs is fixed (not the thread count), so results are the same bits on every machine.
  const int64_t R = std::min<int64_t>(v.hpg, 4), nslots = v.G * R;
  std::vector<T> dBh(static_cast<size_t>(p.batch * v.L * nslots * N)), dCh(dBh.size());
  std::vector<T> dA_part(BH), dbias_part(BH), dD_part(BH * nd);

  parallel_for(p.batch * nslots, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> h0s(v.nc * N * P), ht(N * P), gt(N * P), gmat(P * N), h0mat(P * N);
    std::vector<T> lm(Q * LQ), lexp(Q * LQ), dyx(Q * LQ), tmat(Q * LQ);
    StateScratch<T> sw(Q, N, P);
    std::vector<T> ce(Q * N), be(Q * N), dy(Q * P), dtx(Q * P), dtxt(P * Q),
        dtxe(Q * P), dye(Q * P), yin(Q * P), yfull(Q * P), term2(Q * P), ddtx(Q * P);
    std::vector<T> dcs(Q), ddtp(Q);
    ChunkScalars<T> k(Q);
    for (int64_t job = lo; job < hi; ++job) {
      const int64_t b = job / nslots, slot = job % nslots, g = slot / R, r = slot % R;
      const int64_t h_begin = g * v.hpg + r * v.hpg / R, h_end = g * v.hpg + (r + 1) * v.hpg / R;
      for (int64_t h = h_begin; h < h_end; ++h) {
        const int64_t bh = b * H + h;
        const bool first = h == h_begin;
        const T a = v.A[h];
        // Pass 1: the state entering every chunk (Hᵀ, N×P).
        if (v.h0) transpose(v.h0 + bh * P * N, P, N, N, ht.data(), P);
        else std::fill(ht.begin(), ht.end(), T(0));
        for (int64_t c = 0; c < v.nc; ++c) {
          std::copy(ht.begin(), ht.end(), h0s.begin() + c * N * P);
          k.load(v, b, h, c);
          const T* X = v.x + v.xrow(b, k.t0, h);
          state_update<T>(k, v.B + v.brow(b, k.t0, g), ldb, X, ldx, N, P, sw, ht.data());
        }
        // Pass 2: chunks in reverse, gt = (dL/dH at the chunk's end)ᵀ.
        if (dfin) transpose(dfin + bh * P * N, P, N, N, gt.data(), P);
        else std::fill(gt.begin(), gt.end(), T(0));
        T dA_acc = 0, dbias_acc = 0;
        std::vector<T> dD_acc(nd, T(0));
        for (int64_t c = v.nc - 1; c >= 0; --c) {
          k.load(v, b, h, c);
          const int64_t q = k.q, t0 = k.t0;
          const T* X = v.x + v.xrow(b, t0, h);
          const T* Bc = v.B + v.brow(b, t0, g);
          const T* Cc = v.C + v.brow(b, t0, g);
          const T* cbc = cb.data() + ((b * v.nc + c) * v.G + g) * Q * LQ;
          const T* h0t = h0s.data() + c * N * P;
          transpose(h0t, N, P, P, h0mat.data(), N);
          transpose(gt.data(), N, P, P, gmat.data(), N);
          for (int64_t t = 0; t < q; ++t) {
            const T e1 = k.e_in(t), e2 = k.e_out(t);
            for (int64_t n = 0; n < N; ++n) {
              ce[t * N + n] = Cc[t * ldb + n] * e1;
              be[t * N + n] = Bc[t * ldb + n] * e2;
            }
          }
          // Output gradient before the gate; the inter-chunk output (needed for dcs and dz).
          gemm<T>(q, P, N, ce.data(), N, h0t, P, yin.data(), P, false);
          if (v.z) {
            decay_matrix<T>(k, cbc, LQ, k.dtp.data(), lm.data(), LQ);
            pack_rows(X, ldx, q, P, sw.xw.data(), sw.ldx);
            causal_lm_x<T>(lm.data(), LQ, q, sw.xw.data(), sw.ldx, yfull.data(), P, P);
          }
          for (int64_t t = 0; t < q; ++t) {
            const T* dor = dout + v.xrow(b, t0 + t, h);
            const T* xr = X + t * ldx;
            const T e_in = k.e_in(t), e_out = k.e_out(t);
            for (int64_t i = 0; i < P; ++i) {
              T g_out = dor[i];
              if (v.z) {
                const T zv = v.z[v.xrow(b, t0 + t, h) + i];
                const T sg = T(1) / (T(1) + fast_exp(-zv));
                const T yv = yfull[t * P + i] + yin[t * P + i] + v.dval(h, i) * xr[i];
                dz[v.xrow(b, t0 + t, h) + i] = g_out * yv * sg * (T(1) + zv * (T(1) - sg));
                g_out *= zv * sg;
              }
              dy[t * P + i] = g_out;
              dtx[t * P + i] = k.dtp[t] * xr[i];
              dtxt[i * q + t] = dtx[t * P + i];
              dtxe[t * P + i] = dtx[t * P + i] * e_out;
              dye[t * P + i] = g_out * e_in;
            }
          }
          // dYX[t,s] = dy_t·dtx_s (causal blocks), decay factors, W = CB∘decay∘dYX.
          for (int64_t i0 = 0; i0 < q; i0 += kRowBlock) {
            const int64_t mb = std::min(kRowBlock, q - i0);
            gemm<T>(mb, i0 + mb, P, dy.data() + i0 * P, P, dtxt.data(), q, dyx.data() + i0 * LQ, LQ, false);
          }
          decay_matrix<T>(k, nullptr, 0, nullptr, lexp.data(), LQ);
          std::fill(dcs.begin(), dcs.begin() + q, T(0));
          for (int64_t t = 0; t < q; ++t) {
            T row = 0;
            for (int64_t s = 0; s <= t; ++s) {
              const T w = cbc[t * LQ + s] * lexp[t * LQ + s] * dyx[t * LQ + s];
              row += w;
              dcs[s] -= w;
            }
            dcs[t] += row;
            T vt = 0;
            for (int64_t i = 0; i < P; ++i) vt += dy[t * P + i] * yin[t * P + i];
            dcs[t] += vt;
          }
          // d(dt'x) = (CB∘decay)ᵀ dy + diag(e2) B G ᵀ... (term2 first: it also gives U_s)
          gemm<T>(q, P, N, be.data(), N, gt.data(), P, term2.data(), P, false);
          T usum = 0;
          for (int64_t s = 0; s < q; ++s) {
            T us = 0;
            for (int64_t i = 0; i < P; ++i) us += dtx[s * P + i] * term2[s * P + i];
            dcs[s] -= us;
            usum += us;
          }
          T gh = 0;
          for (int64_t i = 0; i < N * P; ++i) gh += gt[i] * h0t[i];
          dcs[q - 1] += usum + k.decay() * gh;
          // Upper-triangular transposes: tmat[s,t] = CB[t,s]·decay[t,s].
          for (int64_t s = 0; s < q; ++s)
            for (int64_t t = 0; t < q; ++t) tmat[s * LQ + t] = t >= s ? cbc[t * LQ + s] * lexp[t * LQ + s] : T(0);
          std::copy(term2.begin(), term2.begin() + q * P, ddtx.begin());
          for (int64_t i0 = 0; i0 < q; i0 += kRowBlock) {
            const int64_t mb = std::min(kRowBlock, q - i0);
            gemm<T>(mb, P, q - i0, tmat.data() + i0 * LQ + i0, LQ, dy.data() + i0 * P, P, ddtx.data() + i0 * P, P, true);
          }
          // dB (this head) = (decay∘dYX)ᵀ C + diag(e2) dtx G;  dC = (decay∘dYX) B + diag(e1) dy H0.
          for (int64_t s = 0; s < q; ++s)
            for (int64_t t = 0; t < q; ++t) tmat[s * LQ + t] = t >= s ? lexp[t * LQ + s] * dyx[t * LQ + s] : T(0);
          const int64_t ldo = nslots * N;
          T* dBr = dBh.data() + ((b * v.L + t0) * nslots + slot) * N;
          T* dCr = dCh.data() + ((b * v.L + t0) * nslots + slot) * N;
          gemm<T>(q, N, P, dtxe.data(), P, gmat.data(), N, dBr, ldo, !first);
          for (int64_t i0 = 0; i0 < q; i0 += kRowBlock) {
            const int64_t mb = std::min(kRowBlock, q - i0);
            gemm<T>(mb, N, q - i0, tmat.data() + i0 * LQ + i0, LQ, Cc + i0 * ldb, ldb, dBr + i0 * ldo, ldo, true);
          }
          for (int64_t t = 0; t < q; ++t)
            for (int64_t s = 0; s < q; ++s) lm[t * LQ + s] = s <= t ? lexp[t * LQ + s] * dyx[t * LQ + s] : T(0);
          gemm<T>(q, N, P, dye.data(), P, h0mat.data(), N, dCr, ldo, !first);
          for (int64_t i0 = 0; i0 < q; i0 += kRowBlock) {
            const int64_t mb = std::min(kRowBlock, q - i0);
            gemm<T>(mb, N, i0 + mb, lm.data() + i0 * LQ, LQ, Bc, ldb, dCr + i0 * ldo, ldo, true);
          }
          // dx, dt', then through the cumsum (reverse) to dA and dt.
          for (int64_t s = 0; s < q; ++s) {
            const T* xr = X + s * ldx;
            T* dxr = dx + v.xrow(b, t0 + s, h);
            T acc = 0;
            for (int64_t i = 0; i < P; ++i) {
              dxr[i] = k.dtp[s] * ddtx[s * P + i] + v.dval(h, i) * dy[s * P + i];
              acc += xr[i] * ddtx[s * P + i];
              dD_acc[p.d_per_channel ? i : 0] += dy[s * P + i] * xr[i];
            }
            ddtp[s] = acc;
          }
          T da = 0;
          for (int64_t s = q - 1; s >= 0; --s) {
            da += dcs[s];
            dA_acc += k.dtp[s] * da;
            const T g_raw = (ddtp[s] + a * da) * k.dderiv[s];
            ddt[(b * v.L + t0 + s) * H + h] = g_raw;
            dbias_acc += g_raw;
          }
          // Carry dL/dH to the previous chunk's end.
          const T decay = k.decay();
          for (T& e : gt) e *= decay;
          gemm<T, true>(N, P, q, ce.data(), N, dy.data(), P, gt.data(), P, true);  // (e_in∘C)ᵀ·dy
        }
        if (p.dinitial_states) transpose(gt.data(), N, P, P, static_cast<T*>(p.dinitial_states) + bh * P * N, N);
        dA_part[bh] = dA_acc;
        dbias_part[bh] = dbias_acc;
        std::copy(dD_acc.begin(), dD_acc.end(), dD_part.begin() + bh * nd);
      }
    }
  });

  // Fixed-order reductions: runs of a group for dB/dC, batches for the per-head parameters.
  T *dB = static_cast<T*>(p.dB), *dC = static_cast<T*>(p.dC);
  parallel_for(p.batch * v.L * v.G, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t g = r % v.G, bt = r / v.G;
      T* ob = dB + r * N;
      T* oc = dC + r * N;
      std::fill(ob, ob + N, T(0));
      std::fill(oc, oc + N, T(0));
      for (int64_t j = 0; j < R; ++j) {
        const int64_t off = (bt * nslots + g * R + j) * N;
        for (int64_t n = 0; n < N; ++n) ob[n] += dBh[off + n], oc[n] += dCh[off + n];
      }
    }
  });
  T *dA = static_cast<T*>(p.dA), *dD = static_cast<T*>(p.dD), *dbias = static_cast<T*>(p.ddt_bias);
  for (int64_t h = 0; h < H; ++h) {
    T sa = 0, sb = 0;
    for (int64_t b = 0; b < p.batch; ++b) sa += dA_part[b * H + h], sb += dbias_part[b * H + h];
    if (dA) dA[h] = sa;
    if (dbias) dbias[h] = sb;
    if (dD)
      for (int64_t i = 0; i < nd; ++i) {
        T sd = 0;
        for (int64_t b = 0; b < p.batch; ++b) sd += dD_part[(b * H + h) * nd + i];
        dD[h * nd + i] = sd;
      }
  }
}

}  // namespace

void ssd_forward_cpu(const SsdParams& p) {
  if (p.dtype == DType::Float64) forward_impl<double>(p);
  else forward_impl<float>(p);
}

void ssd_backward_cpu(const SsdParams& p) {
  if (p.dtype == DType::Float64) backward_impl<double>(p);
  else backward_impl<float>(p);
}

}  // namespace ss
