// CPU kernels of the depthwise causal conv1d: threaded over channels, one sequence row at a
// time, compute in float (double for float64 data).
#include <algorithm>
#include <cmath>
#include <vector>
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
#include "cpu/vec_math.h"
#include "ops/conv1d.h"

namespace ss {
namespace {

template <typename C> inline C sigmoid(C v) { return C(1) / (C(1) + std::exp(-v)); }

// One (batch, channel) row: the inputs it sees (padded by the initial states) and their
// sequence ids, so that a tap at padded position q reads xp[q] and is masked by sid[q].
template <typename T, typename C> struct Row {
  int64_t W, L;
  std::vector<C> xp;      // (W-1) + L
  std::vector<int32_t> sid;

  Row(const CausalConv1dParams& p) : W(p.width), L(p.seqlen), xp(p.width - 1 + p.seqlen), sid(p.width - 1 + p.seqlen, 0) {}

  void load(const CausalConv1dParams& p, int64_t b, int64_t d) {
    const T* x = static_cast<const T*>(p.x) + (b * p.dim + d) * L;
    const T* init = p.initial_states ? static_cast<const T*>(p.initial_states) + (b * p.dim + d) * (W - 1) : nullptr;
    for (int64_t j = 0; j < W - 1; ++j) xp[j] = init ? cpu::ld<C>(init + j) : C(0);
    for (int64_t t = 0; t < L; ++t) xp[W - 1 + t] = cpu::ld<C>(x + t);
    if (p.seq_idx) {
      const int32_t* s = p.seq_idx + b * L;
      int32_t first = L ? s[0] : 0;
      for (int64_t j = 0; j < W - 1; ++j) sid[j] = first;
      for (int64_t t = 0; t < L; ++t) sid[W - 1 + t] = s[t];
    }
  }
  // Pre-activation output at time t.
  C pre(const C* w, C bias, int64_t t) const {
    C s = bias;
    const int32_t me = sid[W - 1 + t];
    for (int64_t k = 0; k < W; ++k)
      if (sid[t + k] == me) s += w[k] * xp[t + k];
    return s;
  }
  // Final state entry j is xp[L + j], kept only when it belongs to the last sequence.
  bool final_kept(int64_t j) const { return L == 0 || sid[L + j] == sid[W - 2 + L]; }
};

// Pre-activation outputs of a row: tap by tap over the whole row (plain multiply-adds that
// vectorise), or output by output with the sequence masks when seqIdx is given.
template <typename T, typename C>
void pre_row(const CausalConv1dParams& p, const Row<T, C>& row, const C* w, C bias, C* acc) {
  if (p.seq_idx) {
    for (int64_t t = 0; t < p.seqlen; ++t) acc[t] = row.pre(w, bias, t);
    return;
  }
  std::fill(acc, acc + p.seqlen, bias);
  for (int64_t k = 0; k < p.width; ++k) {
    const C wk = w[k];
    const C* xk = row.xp.data() + k;
    for (int64_t t = 0; t < p.seqlen; ++t) acc[t] += wk * xk[t];
  }
}

// Σ a[i]·b[i] with eight partial sums (vectorises without reassociating flags; fixed order).
template <typename C> C dot8(const C* a, const C* b, int64_t n) {
  C s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  C r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

template <typename T> void fwd(const CausalConv1dParams& p) {
  using C = cpu::compute_t<T>;
  parallel_for(p.batch * p.dim, std::max<int64_t>(1, 4096 / (p.seqlen * p.width + 1)), [&](int64_t r0, int64_t r1) {
    Row<T, C> row(p);
    std::vector<C> w(p.width), acc(p.seqlen);
    for (int64_t r = r0; r < r1; ++r) {
      int64_t b = r / p.dim, d = r % p.dim;
      for (int64_t k = 0; k < p.width; ++k) w[k] = cpu::ld_any<C>(p.weight, p.weight_dtype, d * p.width + k);
      C bias = p.bias ? cpu::ld_any<C>(p.bias, p.bias_dtype, d) : C(0);
      row.load(p, b, d);
      pre_row(p, row, w.data(), bias, acc.data());
      if (p.silu) cpu::silu_inplace(acc.data(), p.seqlen);
      T* y = static_cast<T*>(p.y) + r * p.seqlen;
      for (int64_t t = 0; t < p.seqlen; ++t) cpu::st(y + t, acc[t]);
      if (p.final_states) {
        T* f = static_cast<T*>(p.final_states) + r * (p.width - 1);
        for (int64_t j = 0; j < p.width - 1; ++j) cpu::st(f + j, row.final_kept(j) ? row.xp[p.seqlen + j] : C(0));
      }
    }
  });
}

// Threaded over channels; each channel walks every batch row, so the weight and bias
// gradients are summed in a fixed order (reproducible).
template <typename T> void bwd(const CausalConv1dParams& p) {
  using C = cpu::compute_t<T>;
  const int64_t W = p.width, L = p.seqlen;
  parallel_for(p.dim, std::max<int64_t>(1, 4096 / (p.batch * L * W + 1)), [&](int64_t d0, int64_t d1) {
    Row<T, C> row(p);
    std::vector<C> w(W), dw(W), dpre(L), dxp(W - 1 + L), pre(p.silu ? L : 0), e(p.silu ? L : 0);
    for (int64_t d = d0; d < d1; ++d) {
      for (int64_t k = 0; k < W; ++k) w[k] = cpu::ld_any<C>(p.weight, p.weight_dtype, d * W + k);
      C bias = p.bias ? cpu::ld_any<C>(p.bias, p.bias_dtype, d) : C(0);
      std::fill(dw.begin(), dw.end(), C(0));
      C db = 0;
      for (int64_t b = 0; b < p.batch; ++b) {
        const int64_t r = b * p.dim + d;
        row.load(p, b, d);
        const T* dy = static_cast<const T*>(p.dy) + r * L;
        for (int64_t t = 0; t < L; ++t) dpre[t] = cpu::ld<C>(dy + t);
        if (p.silu) {  // d silu(v)/dv = s·(1 + v·(1 - s)), s = sigmoid(v)
          pre_row(p, row, w.data(), bias, pre.data());
          for (int64_t t = 0; t < L; ++t) e[t] = -pre[t];
          cpu::exp_inplace(e.data(), L);
          for (int64_t t = 0; t < L; ++t) {
            const C s = C(1) / (C(1) + e[t]);
            dpre[t] *= s * (C(1) + pre[t] * (C(1) - s));
          }
        }
        for (int64_t t = 0; t < L; ++t) db += dpre[t];
        std::fill(dxp.begin(), dxp.end(), C(0));
        if (!p.seq_idx) {  // every tap counts: whole-row loops that vectorise
          for (int64_t k = 0; k < W; ++k) {
            const C wk = w[k];
            C* dk = dxp.data() + k;
            for (int64_t t = 0; t < L; ++t) dk[t] += dpre[t] * wk;
            dw[k] += dot8(dpre.data(), row.xp.data() + k, L);
          }
        } else {
          for (int64_t t = 0; t < L; ++t) {
            const int32_t me = row.sid[W - 1 + t];
            for (int64_t k = 0; k < W; ++k) {
              if (row.sid[t + k] != me) continue;
              dxp[t + k] += dpre[t] * w[k];
              dw[k] += dpre[t] * row.xp[t + k];
            }
          }
        }
        if (p.dfinal_states) {
          const T* df = static_cast<const T*>(p.dfinal_states) + r * (W - 1);
          for (int64_t j = 0; j < W - 1; ++j)
            if (row.final_kept(j)) dxp[L + j] += cpu::ld<C>(df + j);
        }
        T* dx = static_cast<T*>(p.dx) + r * L;
        for (int64_t t = 0; t < L; ++t) cpu::st(dx + t, dxp[W - 1 + t]);
        if (p.dinitial_states) {
          T* di = static_cast<T*>(p.dinitial_states) + r * (W - 1);
          for (int64_t j = 0; j < W - 1; ++j) cpu::st(di + j, dxp[j]);
        }
      }
      for (int64_t k = 0; k < W; ++k) cpu::st_any<C>(p.dweight, p.weight_dtype, d * W + k, dw[k]);
      if (p.dbias) cpu::st_any<C>(p.dbias, p.bias_dtype, d, db);
    }
  });
}

template <typename T, typename S> void update(const CausalConv1dUpdateParams& p) {
  using C = cpu::compute_t<T>;
  const int64_t W = p.width;
  parallel_for(p.batch * p.dim, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / p.dim, d = r % p.dim;
      const int64_t slot = p.state_idx ? p.state_idx[b] : b;
      if (slot < 0 || slot >= p.slots) {  // padding (y = 0) or a slot out of range (y = NaN), as on CUDA
        cpu::st(static_cast<T*>(p.y) + b * p.y_stride + d, slot < 0 ? C(0) : C(NAN));
        continue;
      }
      S* s = static_cast<S*>(p.state) + (slot * p.dim + d) * (W - 1);
      C x = cpu::ld<C>(static_cast<const T*>(p.x) + b * p.x_stride + d);
      C acc = p.bias ? cpu::ld_any<C>(p.bias, p.bias_dtype, d) : C(0);
      for (int64_t k = 0; k < W - 1; ++k) acc += cpu::ld_any<C>(p.weight, p.weight_dtype, d * W + k) * cpu::ld<C>(s + k);
      acc += cpu::ld_any<C>(p.weight, p.weight_dtype, d * W + W - 1) * x;
      for (int64_t k = 0; k + 1 < W - 1; ++k) s[k] = s[k + 1];
      if (W > 1) cpu::st(s + W - 2, x);
      cpu::st(static_cast<T*>(p.y) + b * p.y_stride + d, p.silu ? acc * sigmoid(acc) : acc);
    }
  });
}

}  // namespace

void causal_conv1d_fwd_cpu(const CausalConv1dParams& p) {
  cpu::float_switch(p.dtype, [&](auto* tag) { fwd<std::remove_pointer_t<decltype(tag)>>(p); });
}

void causal_conv1d_bwd_cpu(const CausalConv1dParams& p) {
  cpu::float_switch(p.dtype, [&](auto* tag) { bwd<std::remove_pointer_t<decltype(tag)>>(p); });
}

void causal_conv1d_update_cpu(const CausalConv1dUpdateParams& p) {
  cpu::float_switch(p.dtype, [&](auto* t) {
    cpu::float_switch(p.state_dtype, [&](auto* s) {
      update<std::remove_pointer_t<decltype(t)>, std::remove_pointer_t<decltype(s)>>(p);
    });
  });
}

}  // namespace ss
