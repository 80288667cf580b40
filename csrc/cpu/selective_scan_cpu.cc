// CPU selective scan: threaded over (batch, dim) rows, vectorised over dstate (scan_simd.h).
// f32/f16/bf16 inputs run with f32 state; float64 inputs run entirely in double.
// B and C are first converted and transposed to (step, dstate) so each step reads them
// contiguously. The backward recomputes a row's states into a scratch buffer, then runs the
// reverse scan; reductions over rows (dA, dD, dDeltaBias, dB, dC) go through per-row or
// per-slice partials summed in a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>
#include "core/half.h"
#include "core/thread_pool.h"
#include "cpu/scan_simd.h"
#include "ops/selective_scan.h"

namespace ss {
namespace {

template <typename S> inline S load(const float* p) { return static_cast<S>(*p); }
template <typename S> inline S load(const double* p) { return static_cast<S>(*p); }
template <typename S> inline S load(const Half* p) { return static_cast<S>(to_f32(*p)); }
template <typename S> inline S load(const BFloat16* p) { return static_cast<S>(to_f32(*p)); }
inline void store(float* p, float v) { *p = v; }
inline void store(double* p, double v) { *p = v; }
inline void store(Half* p, float v) { *p = from_f32<Half>(v); }
inline void store(BFloat16* p, float v) { *p = from_f32<BFloat16>(v); }

// Rows of one fine group (dims sharing both their B group and their C group) are split into
// this many slices for the backward's dB/dC reduction: a fixed number, for reproducibility.
constexpr int64_t kSlices = 8;
// The backward recomputes states from checkpoints every kSegment steps.
constexpr int64_t kSegment = 512;

int64_t gcd(int64_t a, int64_t b) { return b ? gcd(b, a % b) : a; }

// T: storage type of u/delta/z/B/C/y; W: storage type of A/D/deltaBias/states (float or double);
// S: compute type (float, or double on the float64 path).
template <typename T, typename W, typename S> class Scan {
 public:
  explicit Scan(const SelectiveScanParams& p)
      : p_(p), L_(p.seqlen), N_(p.dstate), A_(p.dim * p.dstate), D_(p.dim, S(0)), bias_(p.dim, S(0)) {
    const W* A = static_cast<const W*>(p.A);
    for (int64_t i = 0; i < p.dim * N_; ++i) A_[i] = static_cast<S>(A[i]);
    for (int64_t d = 0; d < p.dim; ++d) {
      if (p.D) D_[d] = static_cast<S>(static_cast<const W*>(p.D)[d]);
      if (p.delta_bias) bias_[d] = static_cast<S>(static_cast<const W*>(p.delta_bias)[d]);
    }
    transpose(static_cast<const T*>(p.B), p.b_form, p.b_groups, &B_);
    transpose(static_cast<const T*>(p.C), p.c_form, p.c_groups, &C_);
    if (p.seq_idx) {
      rst_.assign(p.batch * L_, 0);
      for (int64_t b = 0; b < p.batch; ++b)
        for (int64_t t = 1; t < L_; ++t) rst_[b * L_ + t] = p.seq_idx[b * L_ + t] != p.seq_idx[b * L_ + t - 1];
    }
  }

  void forward() {
    parallel_for(p_.batch * p_.dim, 1, [&](int64_t r0, int64_t r1) {
      std::vector<S> x(N_);
      Row row(L_);
      for (int64_t r = r0; r < r1; ++r) forward_row(r / p_.dim, r % p_.dim, x.data(), row);
    });
  }

  void backward();

 private:
  // Per-step B/C become (batch, groups, seqlen, dstate); a time-invariant one stays (dim, dstate).
  void transpose(const T* src, ScanBCForm form, int64_t groups, std::vector<S>* out) {
    if (form == ScanBCForm::TimeInvariant) {
      out->resize(p_.dim * N_);
      for (int64_t i = 0; i < p_.dim * N_; ++i) (*out)[i] = load<S>(src + i);
      return;
    }
    out->resize(p_.batch * groups * L_ * N_);
    parallel_for(p_.batch * groups * N_, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t bg = i / N_, n = i % N_;
        const T* s = src + i * L_;
        S* o = out->data() + bg * L_ * N_ + n;
        for (int64_t t = 0; t < L_; ++t) o[t * N_] = load<S>(s + t);
      }
    });
  }

  // Row (b, d) of B or C at step t: stride N_ per step for per-step forms, 0 for time-invariant.
  const S* bc_row(const std::vector<S>& m, ScanBCForm form, int64_t groups, int64_t b, int64_t d) const {
    if (form == ScanBCForm::TimeInvariant) return m.data() + d * N_;
    return m.data() + (b * groups + d / (p_.dim / groups)) * L_ * N_;
  }
  int64_t bc_step(ScanBCForm form) const { return form == ScanBCForm::TimeInvariant ? 0 : N_; }

  // Restart flags of batch row b from step t on (null without seqIdx).
  const uint8_t* restarts(int64_t b, int64_t t) const { return rst_.empty() ? nullptr : rst_.data() + b * L_ + t; }

  // Per-row scratch, each of length seqlen.
  struct Row {
    explicit Row(int64_t L) : dt(L), u(L), y(L), z(L), zsig(L), dsp(L), dy(L), ddt(L), gB(L) {}
    std::vector<S> dt, u, y;  // delta', u, ungated y
    std::vector<S> z, zsig;   // z and sigmoid(z), when z is given
    std::vector<S> dsp;       // sigmoid(delta + bias) = d delta' / d delta (backward, softplus)
    std::vector<S> dy, ddt, gB;  // backward: gated dy; sum_n g x_{t-1} a A; sum_n g B
  };

  // Loads delta' (vectorised softplus), u and z for row (b, d); `grad` also fills dsp.
  void prepare(int64_t b, int64_t d, Row& r, bool grad) const {
    const int64_t base = (b * p_.dim + d) * L_;
    const T* delta = static_cast<const T*>(p_.delta) + base;
    const T* u = static_cast<const T*>(p_.u) + base;
    for (int64_t t = 0; t < L_; ++t) r.dt[t] = load<S>(delta + t) + bias_[d], r.u[t] = load<S>(u + t);
    if (p_.delta_softplus) {
      if (grad) scan_simd::sigmoid_row(r.dsp.data(), r.dt.data(), L_);
      scan_simd::softplus_row(r.dt.data(), L_);
    }
    if (p_.z) {
      const T* z = static_cast<const T*>(p_.z) + base;
      for (int64_t t = 0; t < L_; ++t) r.z[t] = load<S>(z + t);
      scan_simd::sigmoid_row(r.zsig.data(), r.z.data(), L_);
    }
  }

  void initial_state(int64_t row, S* x) const {
    if (p_.initial_state)
      for (int64_t n = 0; n < N_; ++n) x[n] = static_cast<S>(static_cast<const W*>(p_.initial_state)[row * N_ + n]);
    else
      std::fill(x, x + N_, S(0));
  }

  // Advances row (b, d) through steps [t0, t0 + len) from state x, writing the ungated y to
  // r.y; hist (optional, (len+1) x N) receives the state before the first step and after each.
  void run_steps(int64_t b, int64_t d, S* x, int64_t t0, int64_t len, S* hist, Row& r) const {
    const S* A = A_.data() + d * N_;
    const int64_t sb = bc_step(p_.b_form), sc = bc_step(p_.c_form);
    const S* B = bc_row(B_, p_.b_form, p_.b_groups, b, d) + t0 * sb;
    const S* C = bc_row(C_, p_.c_form, p_.c_groups, b, d) + t0 * sc;
    const uint8_t* rst = restarts(b, t0);
    const S *dt = r.dt.data() + t0, *u = r.u.data() + t0;
    S* y = r.y.data() + t0;
    if (hist) std::copy(x, x + N_, hist);
    if (!scan_simd::scan_row_fast<S>(x, A, B, sb, C, sc, dt, u, y, rst, len, hist, N_)) {
      for (int64_t t = 0; t < len; ++t) {
        y[t] = scan_simd::step<S>(x, A, B + t * sb, C + t * sc, dt[t], dt[t] * u[t], rst && rst[t], N_);
        if (hist) std::copy(x, x + N_, hist + (t + 1) * N_);
      }
    }
    const S Dd = D_[d];
    for (int64_t t = 0; t < len; ++t) y[t] += Dd * u[t];
  }

  // Runs row (b, d) forward and stores the gated y and the last state.
  void forward_row(int64_t b, int64_t d, S* x, Row& r) const {
    const int64_t row = (b * p_.dim + d), base = row * L_;
    prepare(b, d, r, false);
    initial_state(row, x);
    run_steps(b, d, x, 0, L_, nullptr, r);
    T* y = static_cast<T*>(p_.y) + base;
    if (p_.z)
      for (int64_t t = 0; t < L_; ++t) store(y + t, r.y[t] * r.z[t] * r.zsig[t]);
    else
      for (int64_t t = 0; t < L_; ++t) store(y + t, r.y[t]);
    if (p_.last_state) {
      W* ls = static_cast<W*>(p_.last_state) + row * N_;
      for (int64_t n = 0; n < N_; ++n) ls[n] = static_cast<W>(x[n]);
    }
  }

  const SelectiveScanParams& p_;
  const int64_t L_, N_;
  std::vector<S> A_, D_, bias_, B_, C_;
  std::vector<uint8_t> rst_;  // (batch, seqlen): 1 where seqIdx changes
};

template <typename T, typename W, typename S> void Scan<T, W, S>::backward() {
  const int64_t batch = p_.batch, dim = p_.dim;
  const bool b_step = p_.b_form == ScanBCForm::PerStep, c_step = p_.c_form == ScanBCForm::PerStep;
  // Fine groups: dims that share both their B group and their C group (lcm of the two counts).
  const int64_t gb = b_step ? p_.b_groups : 1, gc = c_step ? p_.c_groups : 1;
  const int64_t fine = gb / gcd(gb, gc) * gc, dims_per_fine = dim / fine;
  const int64_t slices = std::min(kSlices, dims_per_fine);
  const int64_t items = batch * fine * slices;
  // Per-item accumulators for per-step dB/dC ((seqlen, dstate) each); per-row partials for the rest.
  std::vector<S> dB_acc(b_step ? items * L_ * N_ : 0, S(0)), dC_acc(c_step ? items * L_ * N_ : 0, S(0));
  std::vector<S> dA_rows(batch * dim * N_, S(0)), dD_rows(batch * dim, S(0)), dbias_rows(batch * dim, S(0));
  std::vector<S> dB_rows(b_step ? 0 : batch * dim * N_, S(0)), dC_rows(c_step ? 0 : batch * dim * N_, S(0));

  parallel_for(items, 1, [&](int64_t i0, int64_t i1) {
    // States are checkpointed every kSegment steps and recomputed one segment at a time, so
    // scratch stays O((seqlen / kSegment + kSegment) * dstate) per thread.
    const int64_t nseg = (L_ + kSegment - 1) / kSegment;
    std::vector<S> hist((std::min(L_, kSegment) + 1) * N_), ck(nseg * N_), g(N_);
    Row rw(L_);
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t b = item / (fine * slices), f = (item / slices) % fine, s = item % slices;
      const int64_t d0 = f * dims_per_fine + s * dims_per_fine / slices;
      const int64_t d1 = f * dims_per_fine + (s + 1) * dims_per_fine / slices;
      for (int64_t d = d0; d < d1; ++d) {
        const int64_t row = b * dim + d, base = row * L_;
        prepare(b, d, rw, true);
        initial_state(row, g.data());
        for (int64_t k = 0; k < nseg; ++k) {
          std::copy(g.begin(), g.end(), ck.begin() + k * N_);
          run_steps(b, d, g.data(), k * kSegment, std::min(kSegment, L_ - k * kSegment), nullptr, rw);
        }
        if (p_.d_last_state)
          for (int64_t n = 0; n < N_; ++n) g[n] = static_cast<S>(static_cast<const W*>(p_.d_last_state)[row * N_ + n]);
        else
          std::fill(g.begin(), g.end(), S(0));
        const S* A = A_.data() + d * N_;
        const S* B = bc_row(B_, p_.b_form, p_.b_groups, b, d);
        const S* C = bc_row(C_, p_.c_form, p_.c_groups, b, d);
        const int64_t sb = bc_step(p_.b_form), sc = bc_step(p_.c_form);
        S* dB = b_step ? dB_acc.data() + item * L_ * N_ : dB_rows.data() + row * N_;
        S* dC = c_step ? dC_acc.data() + item * L_ * N_ : dC_rows.data() + row * N_;
        S* dA = dA_rows.data() + row * N_;
        const T* dout = static_cast<const T*>(p_.dy) + base;
        T* du = static_cast<T*>(p_.du) + base;
        T* ddelta = static_cast<T*>(p_.ddelta) + base;
        T* dz = p_.dz ? static_cast<T*>(p_.dz) + base : nullptr;
        // Gated output gradient (and dz) first, then the reverse recurrence, then du/ddelta.
        S dD = 0, dbias = 0;
        for (int64_t t = 0; t < L_; ++t) {
          S dyt = load<S>(dout + t);
          if (dz) {
            const S zt = rw.z[t], sg = rw.zsig[t];
            store(dz + t, dyt * rw.y[t] * sg * (S(1) + zt * (S(1) - sg)));
            dyt *= zt * sg;
          }
          rw.dy[t] = dyt;
        }
        std::vector<S> x(N_);
        for (int64_t k = nseg - 1; k >= 0; --k) {
          const int64_t t0 = k * kSegment, len = std::min(kSegment, L_ - t0);
          std::copy(ck.begin() + k * N_, ck.begin() + (k + 1) * N_, x.begin());
          run_steps(b, d, x.data(), t0, len, hist.data(), rw);
          const uint8_t* rst = restarts(b, t0);
          S *dBk = dB + t0 * sb, *dCk = dC + t0 * sc, *ddt = rw.ddt.data() + t0, *gB = rw.gB.data() + t0;
          const S *Bk = B + t0 * sb, *Ck = C + t0 * sc, *dt = rw.dt.data() + t0, *u = rw.u.data() + t0;
          const S* dyk = rw.dy.data() + t0;
          if (scan_simd::back_row_fast<S>(g.data(), hist.data(), A, Bk, sb, Ck, sc, dA, dBk, dCk, dt, u, dyk, rst, len,
                                          ddt, gB, N_))
            continue;
          for (int64_t t = len - 1; t >= 0; --t) {
            const auto r = scan_simd::back_step<S>(g.data(), hist.data() + (t + 1) * N_, hist.data() + t * N_, A,
                                                   Bk + t * sb, Ck + t * sc, dA, dBk + t * sb, dCk + t * sc, dt[t],
                                                   u[t], dyk[t], rst && rst[t], N_);
            ddt[t] = r.d_dt;
            gB[t] = r.sum_gB;
          }
        }
        for (int64_t t = 0; t < L_; ++t) {
          const S ut = rw.u[t];
          dD += rw.dy[t] * ut;
          const S ddt = rw.ddt[t] + rw.gB[t] * ut;
          const S dpre = p_.delta_softplus ? ddt * rw.dsp[t] : ddt;
          store(ddelta + t, dpre);
          dbias += dpre;
          store(du + t, rw.dy[t] * D_[d] + rw.gB[t] * rw.dt[t]);
        }
        dD_rows[row] = dD;
        dbias_rows[row] = dbias;
        if (p_.d_initial_state) {
          W* di = static_cast<W*>(p_.d_initial_state) + row * N_;
          for (int64_t n = 0; n < N_; ++n) di[n] = static_cast<W>(g[n]);
        }
      }
    }
  });

  // Fixed-order reductions over batch (and slices / fine groups).
  W* dA = static_cast<W*>(p_.dA);
  for (int64_t i = 0; i < dim * N_; ++i) {
    S acc = 0;
    for (int64_t b = 0; b < batch; ++b) acc += dA_rows[b * dim * N_ + i];
    dA[i] = static_cast<W>(acc);
  }
  for (int64_t d = 0; d < dim; ++d) {
    S aD = 0, ab = 0;
    for (int64_t b = 0; b < batch; ++b) aD += dD_rows[b * dim + d], ab += dbias_rows[b * dim + d];
    if (p_.dD) static_cast<W*>(p_.dD)[d] = static_cast<W>(aD);
    if (p_.d_delta_bias) static_cast<W*>(p_.d_delta_bias)[d] = static_cast<W>(ab);
  }
  auto reduce_bc = [&](bool per_step, int64_t groups, const std::vector<S>& acc, const std::vector<S>& rows, T* out) {
    if (!per_step) {
      for (int64_t i = 0; i < dim * N_; ++i) {
        S a = 0;
        for (int64_t b = 0; b < batch; ++b) a += rows[b * dim * N_ + i];
        store(out + i, a);
      }
      return;
    }
    // out (batch, groups, dstate, seqlen) from the items of the fine groups inside each group.
    const int64_t per = fine / groups;
    parallel_for(batch * groups * N_, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / (groups * N_), g = (i / N_) % groups, n = i % N_;
        for (int64_t t = 0; t < L_; ++t) {
          S a = 0;
          for (int64_t f = g * per; f < (g + 1) * per; ++f)
            for (int64_t s = 0; s < slices; ++s) a += acc[((b * fine + f) * slices + s) * L_ * N_ + t * N_ + n];
          store(out + i * L_ + t, a);
        }
      }
    });
  };
  reduce_bc(b_step, gb, dB_acc, dB_rows, static_cast<T*>(p_.dB));
  reduce_bc(c_step, gc, dC_acc, dC_rows, static_cast<T*>(p_.dC));
}

// Calls f(T*, W*, S*) with the types for p.dtype.
template <typename F> void with_types(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: f(static_cast<float*>(nullptr), static_cast<float*>(nullptr), static_cast<float*>(nullptr)); break;
    case DType::Float16: f(static_cast<Half*>(nullptr), static_cast<float*>(nullptr), static_cast<float*>(nullptr)); break;
    case DType::BFloat16: f(static_cast<BFloat16*>(nullptr), static_cast<float*>(nullptr), static_cast<float*>(nullptr)); break;
    case DType::Float64: f(static_cast<double*>(nullptr), static_cast<double*>(nullptr), static_cast<double*>(nullptr)); break;
    default: break;  // rejected by validation
  }
}

}  // namespace

void selective_scan_fwd_cpu(const SelectiveScanParams& p) {
  with_types(p.dtype, [&](auto* t, auto* w, auto* s) {
    Scan<std::remove_pointer_t<decltype(t)>, std::remove_pointer_t<decltype(w)>, std::remove_pointer_t<decltype(s)>>(p).forward();
  });
}

void selective_scan_bwd_cpu(const SelectiveScanParams& p) {
  with_types(p.dtype, [&](auto* t, auto* w, auto* s) {
    Scan<std::remove_pointer_t<decltype(t)>, std::remove_pointer_t<decltype(w)>, std::remove_pointer_t<decltype(s)>>(p).backward();
  });
}

}  // namespace ss
