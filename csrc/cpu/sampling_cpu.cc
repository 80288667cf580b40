// CPU argmax and sampling over rows (ops/sampling.h).
#include <algorithm>
#include <cmath>
#include <vector>
#include "core/thread_pool.h"
#include "cpu/cpu_types.h"
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

// A token of a row: ranking key, index, weight.
struct Tok {
  uint32_t key;
  int32_t idx;
  uint64_t w;
};

// Ranking order: larger key first, then lower index.
inline bool ranks_before(const Tok& a, const Tok& b) { return a.key != b.key ? a.key > b.key : a.idx < b.idx; }

// The last token of the shortest ranking prefix of `t` whose weight (`unit`: 1 a token, else w)
// reaches `need` (<= the total): a 65536-bin histogram of the keys' high halves finds the bin it
// ends in, and only that bin is sorted. Returns the prefix length.
size_t prefix_reaching(std::vector<Tok>& t, uint64_t need, bool unit) {
  std::vector<uint64_t> mass(65536, 0);
  for (const Tok& k : t) mass[k.key >> 16] += unit ? 1 : k.w;
  uint64_t above = 0;
  int bin = 65535;
  for (; bin > 0 && above + mass[bin] < need; --bin) above += mass[bin];
  // Everything in higher bins first, then the bin's tokens in ranking order.
  auto mid = std::partition(t.begin(), t.end(), [&](const Tok& k) { return static_cast<int>(k.key >> 16) > bin; });
  auto end = std::partition(mid, t.end(), [&](const Tok& k) { return static_cast<int>(k.key >> 16) == bin; });
  std::sort(mid, end, ranks_before);
  for (auto it = mid; it != end; ++it) {
    above += unit ? 1 : it->w;
    if (above >= need) return static_cast<size_t>(it - t.begin()) + 1;
  }
  return static_cast<size_t>(end - t.begin());
}

template <typename T> int32_t sample_row(const T* x, int64_t n, float temp, int32_t k, float P, float u) {
  float bv;
  const int64_t best = first_max(x, n, &bv);
  if (!(temp > 0.f) || !std::isfinite(bv)) return static_cast<int32_t>(best);
  const float inv = 1.f / temp;
  std::vector<Tok> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float v = cpu::ld<float>(x + i);
    t[i] = {sampling::key_of(v), static_cast<int32_t>(i), 0};
  }
  size_t kept = t.size();
  if (k > 0 && k < n) kept = prefix_reaching(t, static_cast<uint64_t>(k), true);
  t.resize(kept);
  uint64_t S = 0;
  for (Tok& q : t) S += q.w = sampling::fixed_weight(std::exp((cpu::ld<float>(x + q.idx) - bv) * inv));
  if (P < 1.f) t.resize(prefix_reaching(t, sampling::nucleus_target(P, S), false));
  std::sort(t.begin(), t.end(), [](const Tok& a, const Tok& b) { return a.idx < b.idx; });
  uint64_t M = 0;
  for (const Tok& q : t) M += q.w;
  const uint64_t r = sampling::landing(u, M);
  uint64_t run = 0;
  for (const Tok& q : t)
    if ((run += q.w) > r) return q.idx;
  return t.back().idx;
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
