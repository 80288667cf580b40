// CPU argmax and sampling over rows (ops/sampling.h).
#include <algorithm>
#include <cmath>
#include <vector>
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
#include "cpu/vec_math.h"
#include "ops/sampling.h"
#include "ops/sampling_rule.h"

namespace ss {

namespace {

// argmax's rule on one row: the index of the first maximum (a NaN counts as the largest), its
// value in *value.
template <typename C, typename T> int64_t first_max(const T* x, int64_t n, C* value) {
  int64_t best = 0;
  C bv = cpu::ld<C>(x);
  for (int64_t i = 1; i < n && !std::isnan(bv); ++i) {
    const C v = cpu::ld<C>(x + i);
    if (v > bv || std::isnan(v)) {
      bv = v;
      best = i;
    }
  }
  *value = bv;
  return best;
}

}  // namespace

void argmax_cpu(const ArgmaxParams& p) {
  cpu::float_switch(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    using C = cpu::compute_t<T>;
    parallel_for(p.rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        C value;
        p.out[r] = static_cast<int32_t>(first_max(static_cast<const T*>(p.x) + r * p.n, p.n, &value));
      }
    });
  });
}

namespace {

// The tokens still in: all of 0..n-1, or a list of indices in ascending order.
struct Pool {
  int64_t n = 0;
  bool all = true;
  std::vector<int32_t> ids;
  template <class F> void each(F&& f) const {
    if (all)
      for (int64_t i = 0; i < n; ++i) f(static_cast<int32_t>(i));
    else
      for (int32_t i : ids) f(i);
  }
};

// The shortest ranking prefix of `pool` whose weight (w(i)) reaches need(S), S the weight of the
// whole pool, in index order. A 65536-bin histogram of the keys' high halves finds the bin where
// the prefix ends; one more pass keeps the tokens of that bin and above, and the bin's tokens,
// sorted by key, give the key K where it ends and how many of K's tokens (all of one weight, the
// first in index order) it takes. Nothing else is sorted.
template <class W, class Need> Pool prefix_reaching(const std::vector<uint32_t>& keys, const Pool& pool, W w, Need need_of) {
  thread_local std::vector<uint64_t> mass(65536);
  std::fill(mass.begin(), mass.end(), 0);
  uint64_t S = 0;
  pool.each([&](int32_t i) {
    const uint64_t wi = w(i);
    mass[keys[i] >> 16] += wi;
    S += wi;
  });
  const uint64_t need = need_of(S);
  uint64_t above = 0;
  uint32_t bin = 65535;
  for (; bin > 0 && above + mass[bin] < need; --bin) above += mass[bin];
  std::vector<int32_t> top;                       // the tokens of the bin and above, in index order
  std::vector<std::pair<uint32_t, uint64_t>> in;  // (key, weight) of the bin's tokens
  pool.each([&](int32_t i) {
    const uint32_t hi = keys[i] >> 16;
    if (hi >= bin) top.push_back(i);
    if (hi == bin) in.emplace_back(keys[i], w(i));
  });
  std::sort(in.begin(), in.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  uint32_t K = 0;
  uint64_t q = 0;
  for (size_t j = 0; j < in.size();) {
    size_t e = j;
    while (e < in.size() && in[e].first == in[j].first) ++e;
    const uint64_t count = e - j, wk = in[j].second;
    K = in[j].first;
    q = count;
    if (above + count * wk >= need) {
      if (wk) q = std::min(count, (need - above + wk - 1) / wk);
      break;
    }
    above += count * wk;
    j = e;
  }
  Pool kept{pool.n, false, {}};
  uint64_t seen = 0;
  for (int32_t i : top)
    if (keys[i] > K || (keys[i] == K && seen++ < q)) kept.ids.push_back(i);
  return kept;
}

template <typename T> int32_t sample_row(const T* x, int64_t n, float temp, int32_t k, float P, float u) {
  float bv;
  const int64_t best = first_max(x, n, &bv);
  if (!(temp > 0.f) || !std::isfinite(bv)) return static_cast<int32_t>(best);
  const float inv = 1.f / temp;
  Pool pool{n, true, {}};
  std::vector<uint32_t> keys;
  if ((k > 0 && k < n) || P < 1.f) {
    keys.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) keys[i] = sampling::key_of(cpu::ld<float>(x + i));
  }
  if (k > 0 && k < n)
    pool = prefix_reaching(keys, pool, [](int32_t) { return uint64_t{1}; }, [k](uint64_t) { return static_cast<uint64_t>(k); });
  // the weights of the tokens still in: every token's by the vector exp, or top-k's few one by one
  std::vector<uint64_t> weight(static_cast<size_t>(n));
  if (pool.all) {
    std::vector<float> e(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) e[i] = (cpu::ld<float>(x + i) - bv) * inv;
    cpu::exp_inplace(e.data(), n);
    for (int64_t i = 0; i < n; ++i) weight[i] = sampling::fixed_weight(e[i]);
  } else {
    for (int32_t i : pool.ids) weight[i] = sampling::fixed_weight(std::exp((cpu::ld<float>(x + i) - bv) * inv));
  }
  if (P < 1.f)
    pool = prefix_reaching(keys, pool, [&](int32_t i) { return weight[i]; }, [P](uint64_t S) { return sampling::nucleus_target(P, S); });
  uint64_t M = 0;
  pool.each([&](int32_t i) { M += weight[i]; });
  const uint64_t r = sampling::landing(u, M);
  uint64_t run = 0;
  int64_t token = -1;
  pool.each([&](int32_t i) {
    if (token < 0 && (run += weight[i]) > r) token = i;
  });
  return static_cast<int32_t>(token < 0 ? best : token);
}

}  // namespace

void sample_cpu(const SampleParams& p) {
  cpu::float_switch(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    parallel_for(p.rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        p.out[r] = sample_row(static_cast<const T*>(p.x) + r * p.n, p.n, p.temperature[r], p.top_k ? p.top_k[r] : 0,
                              p.top_p ? p.top_p[r] : 1.f, p.uniform[r]);
    });
  });
}

}  // namespace ss
