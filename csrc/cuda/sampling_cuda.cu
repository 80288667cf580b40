// CUDA argmax and sampling over rows (ops/sampling.h). Argmax: one block per row. Each thread
// scans its share of the row in 16-byte vectors, four loads in flight (in increasing index order,
// so it keeps the first of equal values), then (value, index) pairs meet by shuffles and shared
// memory; ties go to the lower index and NaN beats every number, so the result is the first
// maximum whatever the reduction order. Sampling: a cluster of blocks per row (below).
#include <cmath>
#include <cub/block/block_scan.cuh>
#include "cuda/check.cuh"
#include "cuda/cluster.cuh"
#include "cuda/load_any.cuh"
#include "cuda/pdl.cuh"
#include "cuda/smem_optin.h"
#include "cuda/runtime.h"
#include "ops/sampling.h"
#include "ops/sampling_rule.h"

namespace ss {
namespace {

using cuda::to_float;

constexpr int kThreads = 512;

struct Best {
  float v;
  int i;
};

// Whether b comes before a in the order "NaN first, then larger, then lower index".
__device__ __forceinline__ bool before(const Best& b, const Best& a) {
  if (isnan(a.v)) return isnan(b.v) && b.i < a.i;
  if (isnan(b.v)) return true;
  return b.v > a.v || (b.v == a.v && b.i < a.i);
}

__device__ __forceinline__ void take(Best& a, float v, int i) {
  if (before(Best{v, i}, a)) a = Best{v, i};
}

// The block's first maximum of the threads' `b`, in every thread (`part`: one per warp).
template <int kWarps> __device__ Best block_best(Best b, Best (&part)[kWarps]) {
  for (int o = 16; o > 0; o >>= 1) {
    const Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    if (before(other, b)) b = other;
  }
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = b;
  __syncthreads();
  b = part[0];
  for (int w = 1; w < kWarps; ++w)
    if (before(part[w], b)) b = part[w];
  return b;
}

template <typename T, int V> struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <typename T, int V> __global__ void __launch_bounds__(kThreads) argmax_kernel(ArgmaxParams p) {
  __shared__ Best part[kThreads / 32];
  cuda::pdl_wait();
  cuda::pdl_trigger();
  const T* x = static_cast<const T*>(p.x) + static_cast<int64_t>(blockIdx.x) * p.n;
  const int n = static_cast<int>(p.n);
  Best b{-INFINITY, n};
  const int nv = n / V;
  // kLoads vectors per thread in flight at once (one row of a decode step is ~100 KB, read by a
  // single block: one vector per round trip would make a dozen dependent round trips)
  constexpr int kLoads = 4;
  for (int j0 = threadIdx.x; j0 < nv; j0 += kLoads * kThreads) {
    Vec<T, V> v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int j = j0 + u * kThreads;
      if (j < nv) v[u] = *reinterpret_cast<const Vec<T, V>*>(x + static_cast<int64_t>(j) * V);
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int j = j0 + u * kThreads;
      if (j < nv) {
#pragma unroll
        for (int e = 0; e < V; ++e) take(b, to_float(v[u].v[e]), j * V + e);
      }
    }
  }
  for (int i = nv * V + threadIdx.x; i < n; i += kThreads) take(b, to_float(x[i]), i);
  b = block_best(b, part);
  if (threadIdx.x == 0) p.out[blockIdx.x] = b.i < n ? b.i : 0;  // (an all -inf row keeps index 0)
}

// ---- Sampling: one row per thread-block cluster of C blocks ------------------------------------
// A decode step samples a handful of rows (one at batch 1): a block per row would leave the GPU
// idle while one SM makes ~10 passes over ~50k logits. Here the C blocks of a cluster (up to 16,
// one SM each) own contiguous slices of the row, each thread a contiguous run of its block's
// slice, and the blocks meet through distributed shared memory (each meeting one cluster barrier):
// 1. the first maximum (argmax's rule; greedy rows end there), each block keeping its slice's
//    ranking keys in shared memory where they fit (else every pass reads the logits from L2);
// 2. top-k, then top-p, as selects of the ranking key, an 11-, 11- and 10-bit digit a pass
//    (counts or fixed-point weights: integer sums, the same whatever order the atomics land in):
//    each block histograms its slice and adds its non-zero bins into the bins' owner blocks, then
//    every block reads the cluster's totals and finds the digit by a block scan. A cut falls
//    inside the run of tokens tied at its key K: it keeps the keys above K and the first q tokens
//    of key K in index order, and since those all weigh the same, no pass needs their indices;
// 3. the draw: each thread's kept weight above K and its count of key-K tokens, scanned over the
//    block and the cluster, place every thread's run in index order; the thread whose run holds
//    floor(u · M) walks it.
constexpr int kSampleThreads = 512, kSampleWarps = kSampleThreads / 32;
constexpr int kBins = 2048;      // the widest digit: 11 bits
constexpr uint32_t kNoBin = ~0u;
constexpr int kMaxCluster = 16;  // the H100's non-portable cluster size (8 where it is refused)
using u64 = unsigned long long;

// What the draw needs of a thread's run (or of a block, or of the ranks below one): the weight of
// its kept tokens with keys above the cut's key, and its number of tokens at that key.
struct Run {
  u64 w, c;
};
struct RunSum {
  __device__ Run operator()(const Run& a, const Run& b) const { return Run{a.w + b.w, a.c + b.c}; }
};

struct SampleShared {
  u64 local[kBins];           // this block's histogram of the current pass
  Best part[kSampleWarps];    // the block's warps' first maxima
  Best best[kMaxCluster];     // every block's first maximum, by rank (written by that block)
  Run below[kMaxCluster];     // every block's Run of the draw, by rank (written by that block)
  u64 acc, equal, need;       // a select's result: the weight above its key, of its key, needed
  uint32_t digit;
  union {
    cub::BlockScan<u64, kSampleThreads>::TempStorage u;
    cub::BlockScan<Run, kSampleThreads>::TempStorage run;
  } scan;
};

// The tokens a cut keeps: keys above `key`, and the first q tokens of key `key` in index order
// (q = kAll: all of them).
constexpr u64 kAll = ~0ull;
struct Cut {
  uint32_t key = 0;
  u64 q = kAll;
};

// A block's slice of one row and its thread's run of it.
template <typename T> struct Slice {
  const T* x;             // the row's logits
  const uint32_t* keys;   // the slice's ranking keys in shared memory, or null
  u64* totals;            // (C > 1) the cluster's histogram bins this block owns, three in rotation
  int base, len, lo, hi;  // the slice [base, base + len) of the row; the thread's run [lo, hi) of it
  unsigned C, rank, own_log2;  // cluster size, this block's rank, log2 of the bins a block owns
  __device__ uint32_t key(int i) const { return keys ? keys[i] : sampling::key_of(to_float(x[base + i])); }
  __device__ int own() const { return 1 << own_log2; }  // bins a block owns: kBins / C
  __device__ u64* owner_bin(u64* buf, int d) const {     // bin d of the totals in `buf`, at its owner
    return cuda::cluster_map(buf + (d & (own() - 1)), static_cast<unsigned>(d) >> own_log2);
  }
};

// The key K of the ranking prefix of `cand` whose weight (wt) first reaches need(total), total
// the weight of all of `cand`: the weight above K is < need <= the weight down to K. Leaves the
// weight above K in sh.acc, that of key K in sh.equal and need(total) in sh.need. `pass` counts
// the cluster's histogram passes: it picks the totals buffer, the one a pass fills having been
// read two passes before, so its owner clears it during the pass between.
template <typename T, class Wt, class Need>
__device__ uint32_t select_key(const Slice<T>& s, Cut cand, Wt wt, Need need_of, SampleShared& sh, int& pass) {
  uint32_t prefix = 0, mask = 0;
  u64 acc = 0, need = 0;
  for (int level = 0; level < 3; ++level, ++pass) {
    const int shift = level == 0 ? 21 : level == 1 ? 10 : 0, bins = level == 2 ? 1024 : kBins;  // 11-, 11-, 10-bit digits
    // A bin's shared-memory atomic is a compare-and-swap loop (64-bit), so the tokens that land
    // in one bin together must not each take a turn: a thread sums its run's consecutive tokens
    // of one bin, and a warp whose lanes all end in one bin sums them by shuffles (rows of nearly
    // equal logits, as an untrained model gives, put whole slices in one bin).
    uint32_t cur = kNoBin;
    u64 sum = 0;
    for (int i = s.lo; i < s.hi; ++i) {
      const uint32_t k = s.key(i);
      if ((k & mask) == prefix && (k > cand.key || (k == cand.key && cand.q == kAll))) {
        const uint32_t d = (k >> shift) & (bins - 1);
        if (d != cur) {
          if (sum) atomicAdd(&sh.local[cur], sum);
          cur = d;
          sum = 0;
        }
        sum += wt(k);
      }
    }
    if (!sum) cur = kNoBin;
    if (__match_any_sync(0xffffffffu, cur) == 0xffffffffu) {
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (threadIdx.x % 32 == 0 && cur != kNoBin) atomicAdd(&sh.local[cur], sum);
    } else if (sum) {
      atomicAdd(&sh.local[cur], sum);
    }
    // the cut's tokens at its key, all of one weight, added once for the cluster
    if (cand.q != kAll && (cand.key & mask) == prefix && s.rank == 0 && threadIdx.x == 0)
      atomicAdd(&sh.local[(cand.key >> shift) & (bins - 1)], cand.q * wt(cand.key));
    __syncthreads();
    u64* tot = s.totals + (pass % 3) * s.own();
    if (s.C > 1) {  // into the owners' totals; this block clears its bins of the pass after next
      for (int d = threadIdx.x; d < bins; d += kSampleThreads) {
        const u64 h = sh.local[d];
        if (h) {
          atomicAdd(s.owner_bin(tot, d), h);
          sh.local[d] = 0;
        }
      }
      u64* next = s.totals + ((pass + 1) % 3) * s.own();
      for (int d = threadIdx.x; d < s.own(); d += kSampleThreads) next[d] = 0;
      cuda::cluster_sync();
    }
    // thread t reads bins [top - per, top), highest first: the scan over the threads gives the
    // weight above each thread's bins
    constexpr int kPer = kBins / kSampleThreads;
    const int per = bins / kSampleThreads, top = bins - per * static_cast<int>(threadIdx.x);
    u64 h[kPer], mine = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      h[j] = 0;
      if (j < per) {
        const int d = top - 1 - j;
        h[j] = s.C > 1 ? *s.owner_bin(tot, d) : sh.local[d];
        if (s.C == 1) sh.local[d] = 0;
        mine += h[j];
      }
    }
    u64 above, total;
    cub::BlockScan<u64, kSampleThreads>(sh.scan.u).ExclusiveSum(mine, above, total);
    if (level == 0) need = need_of(total);
    above += acc;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int d = top - 1 - j;
      if (j < per && above < need && (above + h[j] >= need || d == 0)) {
        sh.digit = static_cast<uint32_t>(d);
        sh.acc = above;
        sh.equal = h[j];
        sh.need = need;
      }
      above += h[j];
    }
    __syncthreads();
    prefix |= sh.digit << shift;
    mask |= static_cast<uint32_t>(bins - 1) << shift;
    acc = sh.acc;
  }
  return prefix;
}

__device__ __forceinline__ float key_value(uint32_t k) {  // the float a ranking key came from
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

template <typename T> __global__ void __launch_bounds__(kSampleThreads) sample_kernel(SampleParams p, bool staged) {
  __shared__ SampleShared sh;
  extern __shared__ __align__(16) unsigned char dyn[];
  cuda::pdl_wait();
  cuda::pdl_trigger();
  Slice<T> s;
  s.C = cuda::cluster_blocks();
  s.rank = cuda::cluster_rank();
  s.own_log2 = 11 - (__ffs(s.C) - 1);  // C is a power of two
  const int64_t row = blockIdx.x / s.C;
  const int n = static_cast<int>(p.n), slice = static_cast<int>((p.n + s.C - 1) / s.C);
  s.x = static_cast<const T*>(p.x) + row * p.n;
  s.base = min(n, static_cast<int>(s.rank) * slice);
  s.len = min(n - s.base, slice);
  const int run = (s.len + kSampleThreads - 1) / kSampleThreads;
  s.lo = min(s.len, static_cast<int>(threadIdx.x) * run);
  s.hi = min(s.len, s.lo + run);
  s.totals = reinterpret_cast<u64*>(dyn);
  uint32_t* keys = reinterpret_cast<uint32_t*>(dyn + (s.C > 1 ? 3 * s.own() * sizeof(u64) : 0));
  s.keys = nullptr;
  for (int d = threadIdx.x; d < kBins; d += kSampleThreads) sh.local[d] = 0;
  if (s.C > 1)
    for (int d = threadIdx.x; d < 3 * s.own(); d += kSampleThreads) s.totals[d] = 0;
  // 1. argmax's choice (the first maximum, NaN first), the slice's keys staged on the way
  Best b{-INFINITY, n};
  for (int i = threadIdx.x; i < s.len; i += kSampleThreads) {
    const float v = to_float(s.x[s.base + i]);
    if (staged) keys[i] = sampling::key_of(v);
    take(b, v, s.base + i);
  }
  b = block_best(b, sh.part);
  if (threadIdx.x < s.C) *cuda::cluster_map(&sh.best[s.rank], threadIdx.x) = b;
  cuda::cluster_sync();  // (also orders the staging and the cleared histograms)
  if (staged) s.keys = keys;
  for (unsigned r = 0; r < s.C; ++r) take(b, sh.best[r].v, sh.best[r].i);
  const bool first = s.rank == 0 && threadIdx.x == 0;
  const float temp = p.temperature[row];
  if (!(temp > 0.f) || !isfinite(b.v)) {
    if (first) p.out[row] = b.i < n ? b.i : 0;
    return;
  }
  if (first) p.out[row] = b.i;  // (the draw below overwrites it, after cluster barriers)
  const float mx = b.v, inv = 1.f / temp;
  auto weight = [=](uint32_t k) -> u64 { return sampling::fixed_weight(__expf((key_value(k) - mx) * inv)); };
  int pass = 0;
  // 2. top-k: the first k of the ranking
  Cut cand;
  const int k = p.top_k ? p.top_k[row] : 0;
  if (k > 0 && k < n) {
    cand.key = select_key(s, Cut{}, [](uint32_t) { return 1ull; }, [k](u64) { return static_cast<u64>(k); }, sh, pass);
    cand.q = static_cast<u64>(k) - sh.acc;
  }
  // top-p: the shortest prefix of those holding P of their weight
  Cut kept = cand;
  const float P = p.top_p ? p.top_p[row] : 1.f;
  if (P < 1.f) {
    kept.key = select_key(s, cand, weight, [P](u64 S) { return sampling::nucleus_target(P, S); }, sh, pass);
    const u64 wk = weight(kept.key);  // (> 0: key K's bin reached the need)
    kept.q = wk ? min(sh.equal / wk, (sh.need - sh.acc + wk - 1) / wk) : kAll;  // (sh.equal / wk: key K's tokens in cand)
  }
  // 3. the draw
  Run mine{0, 0};
  for (int i = s.lo; i < s.hi; ++i) {
    const uint32_t kk = s.key(i);
    if (kk > kept.key) mine.w += weight(kk);
    mine.c += kk == kept.key;
  }
  Run before, block;
  cub::BlockScan<Run, kSampleThreads>(sh.scan.run).ExclusiveScan(mine, before, Run{0, 0}, RunSum(), block);
  if (threadIdx.x < s.C) *cuda::cluster_map(&sh.below[s.rank], threadIdx.x) = block;
  cuda::cluster_sync();  // the last meeting: no block reads another's shared memory after it
  Run all{0, 0};
  for (unsigned r = 0; r < s.C; ++r) {
    if (r == s.rank) before = RunSum()(all, before);  // (the ranks below this block, then its threads)
    all = RunSum()(all, sh.below[r]);
  }
  const u64 wK = weight(kept.key);
  auto kept_weight = [&](const Run& x) { return x.w + min(x.c, kept.q) * wK; };  // of a prefix of the row
  const u64 M = kept_weight(all), r = sampling::landing(p.uniform[row], M);
  const u64 start = kept_weight(before), end = kept_weight(RunSum()(before, mine));
  if (r >= start && r < end) {
    u64 acc = start, seen = before.c;
    for (int i = s.lo; i < s.hi; ++i) {
      const uint32_t kk = s.key(i);
      if (kk > kept.key) acc += weight(kk);
      else if (kk == kept.key && seen++ < kept.q) acc += wK;
      else continue;
      if (acc > r) {
        p.out[row] = s.base + i;
        break;
      }
    }
  }
}

}  // namespace

void sample_cuda(const SampleParams& p, void* stream) {
  const char* what = "sampleTokens";
  if (p.rows > 0x7fffffff / kMaxCluster) fail("ERR_SHAPE", ErrorKind::Range, "sampleTokens: too many rows for one launch");
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  int dev = 0, optin = 0;
  cuda::check(cudaGetDevice(&dev), what);
  cuda::check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), what);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    // Clusters (sm_90) while the grid stays within one block per SM (the kernel's registers) and
    // a block keeps two tokens a thread: 16 blocks a row at batch 1, 2 at batch 64.
    int64_t C = 1;
    if (cuda::compute_capability() >= 90) {
      const int64_t cap = cuda::clusters_of_16<sample_kernel<T>>(kSampleThreads, 0, what) > 0 ? kMaxCluster : 8;
      while (C < cap && p.rows * 2 * C <= cuda::sm_count() && p.n >= 2 * C * kSampleThreads) C *= 2;
    }
    // each block's slice of keys in shared memory where it fits beside the cluster's histograms
    const size_t totals = C > 1 ? 3 * (kBins / C) * sizeof(u64) : 0;  // (C a power of two)
    const size_t keys = static_cast<size_t>((p.n + C - 1) / C) * sizeof(uint32_t);
    const bool staged = totals + keys + sizeof(SampleShared) + 1024 <= static_cast<size_t>(optin);
    const size_t smem = totals + (staged ? keys : 0);
    cuda::set_smem_once<sample_kernel<T>>(smem, "sampleTokens: shared memory");
    const dim3 grid(static_cast<unsigned>(p.rows * C)), cluster(static_cast<unsigned>(C));
    cuda::check(cuda::launch_clustered(sample_kernel<T>, grid, dim3(kSampleThreads), smem, st, cluster, p, staged), what);
  });
  cuda::check_launch(what);
}

void argmax_cuda(const ArgmaxParams& p, void* stream) {
  if (p.rows > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "argmax: too many rows for one launch");
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    constexpr int V = 16 / sizeof(T);
    const bool vec = p.n % V == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0;
    auto kernel = vec ? argmax_kernel<T, V> : argmax_kernel<T, 1>;
    cuda::launch_pdl(kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kThreads), 0, st, p);
  });
  cuda::check_launch("argmax");
}

}  // namespace ss
