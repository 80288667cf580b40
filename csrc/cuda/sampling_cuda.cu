// CUDA argmax and sampling over rows (ops/sampling.h). Argmax: one block per row. Each thread scans its share of the
// row in 16-byte vectors, four loads in flight (in increasing index order, so it keeps the first
// of equal values), then
// (value, index) pairs meet by shuffles and shared memory; ties go to the lower index and NaN
// beats every number, so the result is the first maximum whatever the reduction order.
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
// A decode step samples a handful of rows (one at batch 1): a block per row leaves the GPU idle
// while one SM makes ~10 passes over ~50k logits. Here the C blocks of a cluster (up to 16, one
// SM each) own contiguous slices of the row, each thread a contiguous run of its block's slice,
// and the blocks meet through distributed shared memory:
// - the first maximum (argmax's rule; greedy rows end there), each block keeping its slice's
//   ranking keys in shared memory where they fit (else every pass reads the logits from L2);
// - top-k and top-p as selects of the ranking key, one 11-, 11- and 10-bit digit a pass (counts
//   or fixed-point weights: integer sums, the same result whatever order the atomics land in):
//   each block histograms its slice, adds its non-zero bins into the bins' owner blocks, and
//   every block reads the cluster's totals and finds the digit by a block scan;
// - splitting runs of tokens tied with a cut's key, and the draw, by counting: each block's
//   count (weight) below it in the cluster, then a block scan of its threads' runs; the thread
//   whose run holds the target walks it.
constexpr int kSampleThreads = 512, kSampleWarps = kSampleThreads / 32;
constexpr int kBins = 2048;        // the widest digit: 11 bits
constexpr int kMaxCluster = 16;    // the H100's non-portable cluster size (8 where it is refused)
using u64 = unsigned long long;
using BlockScan = cub::BlockScan<u64, kSampleThreads>;

// Cluster exchange slots (each written once per launch, so no block overwrites a value that
// another may still read; the kernel's last cluster barrier keeps every block until all have read).
enum Slot { kTotalWeight, kTopKTies, kTopPTies, kDraw, kSlots };

struct SampleShared {
  u64 local[kBins];        // this block's histogram of the current pass
  u64 offer[kSlots];       // this block's count or weight, read by the others
  int cut[kSlots];         // an index cut, written into every block by the block that finds it
  Best part[kSampleWarps], best;
  u64 acc, equal;
  uint32_t digit;
  BlockScan::TempStorage scan;
};

// The kept set is a prefix of the ranking: keys above `key`, and tokens of key `key` up to index `last`.
struct Prefix {
  uint32_t key = 0;
  int last = 0x7fffffff;
  __device__ bool has(int i, uint32_t k) const { return k > key || (k == key && i <= last); }
};

// A block's slice of one row and its thread's run of it.
template <typename T> struct Slice {
  const T* x;               // the row's logits
  const uint32_t* keys;     // the slice's ranking keys in shared memory, or null
  u64* totals;              // (C > 1) the cluster's histogram bins this block owns, three in rotation
  int base, len, lo, hi;    // the slice [base, base + len) of the row; the thread's run [lo, hi) of it
  unsigned C, rank, own;    // cluster size, this block's rank, bins owned per block
  __device__ uint32_t key(int i) const { return keys ? keys[i] : sampling::key_of(to_float(x[base + i])); }
};

// v of every block of the cluster: the sum over ranks below this block (`below`) and over all.
template <typename T> __device__ void cluster_exclusive(const Slice<T>& s, SampleShared& sh, Slot slot, u64 v, u64& below, u64& all) {
  if (threadIdx.x == 0) sh.offer[slot] = v;
  cuda::cluster_sync();
  below = all = 0;
  for (unsigned r = 0; r < s.C; ++r) {
    const u64 o = *cuda::cluster_map(&sh.offer[slot], r);
    all += o;
    if (r < s.rank) below += o;
  }
}

// The key K of the ranking prefix whose weight (wt, over tokens passing `in`) first reaches
// `need`: the weight above K is < need <= the weight down to K. Sets sh.acc to the weight above K
// and sh.equal to the weight of key K. `pass` counts the cluster's histogram passes (it picks the
// totals buffer: the one a pass fills was last read two passes before, so the owner may clear it
// during the pass between).
template <typename T, class In, class Wt>
__device__ uint32_t select_key(const Slice<T>& s, In in, Wt wt, u64 need, SampleShared& sh, int& pass) {
  uint32_t prefix = 0, mask = 0;
  u64 acc = 0;
  for (int level = 0; level < 3; ++level, ++pass) {
    const int shift = level == 0 ? 21 : level == 1 ? 10 : 0, bins = level == 2 ? 1024 : kBins;  // 11-, 11-, 10-bit digits
    for (int i = s.lo; i < s.hi; ++i) {
      const uint32_t k = s.key(i);
      if ((k & mask) == prefix && in(s.base + i, k)) {
        const u64 w = wt(k);
        if (w) atomicAdd(&sh.local[(k >> shift) & (bins - 1)], w);
      }
    }
    __syncthreads();
    u64* tot = s.totals + (pass % 3) * s.own;
    if (s.C > 1) {  // into the owners' totals; this block clears its bins of the pass after next
      for (int d = threadIdx.x; d < bins; d += kSampleThreads) {
        const u64 h = sh.local[d];
        if (h) {
          atomicAdd(cuda::cluster_map(tot + d % s.own, d / s.own), h);
          sh.local[d] = 0;
        }
      }
      u64* next = s.totals + ((pass + 1) % 3) * s.own;
      for (unsigned d = threadIdx.x; d < s.own; d += kSampleThreads) next[d] = 0;
      cuda::cluster_sync();
    }
    // thread t reads bins [top - per, top), highest first: the scan of the threads gives the
    // weight above each thread's bins
    const int per = bins / kSampleThreads, top = bins - per * static_cast<int>(threadIdx.x);
    u64 h[kBins / kSampleThreads], mine = 0;
#pragma unroll
    for (int j = 0; j < kBins / kSampleThreads; ++j) {
      if (j >= per) break;
      const int d = top - 1 - j;
      h[j] = s.C > 1 ? *cuda::cluster_map(tot + d % s.own, d / s.own) : sh.local[d];
      if (s.C == 1) sh.local[d] = 0;
      mine += h[j];
    }
    u64 above;
    BlockScan(sh.scan).ExclusiveSum(mine, above);
    above += acc;
#pragma unroll
    for (int j = 0; j < kBins / kSampleThreads; ++j) {
      if (j >= per) break;
      const int d = top - 1 - j;
      if (above < need && (above + h[j] >= need || d == 0)) {
        sh.digit = static_cast<uint32_t>(d);
        sh.acc = above;
        sh.equal = h[j];
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

// The q-th smallest index (q >= 1) among the row's tokens of key K passing `in`, in every block.
template <typename T, class In>
__device__ int select_index(const Slice<T>& s, In in, uint32_t K, u64 q, Slot slot, SampleShared& sh) {
  u64 c = 0;
  for (int i = s.lo; i < s.hi; ++i) c += s.key(i) == K && in(s.base + i, K);
  u64 before, block, below, all;
  BlockScan(sh.scan).ExclusiveSum(c, before, block);
  cluster_exclusive(s, sh, slot, block, below, all);
  const u64 first = below + before;  // such tokens before this thread's run
  if (c > 0 && q > first && q - first <= c) {
    u64 seen = first;
    for (int i = s.lo; i < s.hi; ++i)
      if (s.key(i) == K && in(s.base + i, K) && ++seen == q) {
        for (unsigned r = 0; r < s.C; ++r) *cuda::cluster_map(&sh.cut[slot], r) = s.base + i;
        break;
      }
  }
  cuda::cluster_sync();
  return sh.cut[slot];
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
  s.own = (kBins + s.C - 1) / s.C;
  const int64_t row = blockIdx.x / s.C;
  const int n = static_cast<int>(p.n), slice = static_cast<int>((p.n + s.C - 1) / s.C);
  s.x = static_cast<const T*>(p.x) + row * p.n;
  s.base = min(n, static_cast<int>(s.rank) * slice);
  s.len = min(n - s.base, slice);
  const int run = (s.len + kSampleThreads - 1) / kSampleThreads;
  s.lo = min(s.len, static_cast<int>(threadIdx.x) * run);
  s.hi = min(s.len, s.lo + run);
  s.totals = reinterpret_cast<u64*>(dyn);
  uint32_t* keys = reinterpret_cast<uint32_t*>(dyn + (s.C > 1 ? 3 * s.own * sizeof(u64) : 0));
  s.keys = nullptr;
  for (int d = threadIdx.x; d < kBins; d += kSampleThreads) sh.local[d] = 0;
  if (s.C > 1)
    for (unsigned d = threadIdx.x; d < 3 * s.own; d += kSampleThreads) s.totals[d] = 0;
  // 1. argmax's choice (the first maximum, NaN first), the slice's keys staged on the way
  Best b{-INFINITY, n};
  for (int i = threadIdx.x; i < s.len; i += kSampleThreads) {
    const float v = to_float(s.x[s.base + i]);
    if (staged) keys[i] = sampling::key_of(v);
    take(b, v, s.base + i);
  }
  b = block_best(b, sh.part);
  if (threadIdx.x == 0) sh.best = b;
  cuda::cluster_sync();  // (also orders the staging and the cleared histograms)
  if (staged) s.keys = keys;
  for (unsigned r = 0; r < s.C; ++r) {
    const Best o = *cuda::cluster_map(&sh.best, r);
    take(b, o.v, o.i);
  }
  const bool first = s.rank == 0 && threadIdx.x == 0;
  const float temp = p.temperature[row];
  if (!(temp > 0.f) || !isfinite(b.v)) {
    if (first) p.out[row] = b.i < n ? b.i : 0;
    cuda::cluster_sync();  // no block leaves while another still reads its best
    return;
  }
  if (first) p.out[row] = b.i;  // (the draw below overwrites it, after cluster barriers)
  const float mx = b.v, inv = 1.f / temp;
  auto weight = [=](uint32_t k) -> u64 { return sampling::fixed_weight(__expf((key_value(k) - mx) * inv)); };
  auto every = [](int, uint32_t) { return true; };
  int pass = 0;
  // 2. top-k: the first k of the ranking
  Prefix cand;
  const int k = p.top_k ? p.top_k[row] : 0;
  if (k > 0 && k < n) {
    cand.key = select_key(s, every, [](uint32_t) { return 1ull; }, static_cast<u64>(k), sh, pass);
    const u64 q = static_cast<u64>(k) - sh.acc, tied = sh.equal;
    if (q < tied) cand.last = select_index(s, every, cand.key, q, kTopKTies, sh);
  }
  // 3. top-p: the shortest prefix of those holding P of their weight
  Prefix kept = cand;
  const float P = p.top_p ? p.top_p[row] : 1.f;
  if (P < 1.f) {
    auto in_cand = [cand](int i, uint32_t kk) { return cand.has(i, kk); };
    u64 w = 0, below, S;
    for (int i = s.lo; i < s.hi; ++i) {
      const uint32_t kk = s.key(i);
      if (cand.has(s.base + i, kk)) w += weight(kk);
    }
    u64 before, block;
    BlockScan(sh.scan).ExclusiveSum(w, before, block);
    cluster_exclusive(s, sh, kTotalWeight, block, below, S);
    const u64 target = sampling::nucleus_target(P, S);
    kept.key = select_key(s, in_cand, weight, target, sh, pass);
    const u64 wk = weight(kept.key);
    const u64 rest = target - sh.acc, tied = sh.equal / wk;
    const u64 q = (rest + wk - 1) / wk;
    // all of key K taken: up to top-k's own cut where it is top-k's threshold key, else every one
    kept.last = q < tied ? select_index(s, in_cand, kept.key, q, kTopPTies, sh) : kept.key == cand.key ? cand.last : Prefix{}.last;
  }
  // 4. the draw
  u64 w = 0, before, block, below, M;
  for (int i = s.lo; i < s.hi; ++i) {
    const uint32_t kk = s.key(i);
    if (kept.has(s.base + i, kk)) w += weight(kk);
  }
  __syncthreads();  // (the scan storage's last use)
  BlockScan(sh.scan).ExclusiveSum(w, before, block);
  cluster_exclusive(s, sh, kDraw, block, below, M);
  const u64 r = sampling::landing(p.uniform[row], M), start = below + before;
  if (w > 0 && r >= start && r - start < w) {
    u64 acc = start;
    for (int i = s.lo; i < s.hi; ++i) {
      const uint32_t kk = s.key(i);
      if (!kept.has(s.base + i, kk)) continue;
      acc += weight(kk);
      if (acc > r) {
        p.out[row] = s.base + i;
        break;
      }
    }
  }
  cuda::cluster_sync();  // no block leaves while another still reads its shared memory
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
      const int64_t cap = cuda::runs_clusters_of_16<sample_kernel<T>>(kSampleThreads, 0, what) ? kMaxCluster : 8;
      while (C < cap && p.rows * 2 * C <= cuda::sm_count() && p.n >= 2 * C * kSampleThreads) C *= 2;
    }
    // each block's slice of keys in shared memory where it fits beside the cluster's histograms
    const size_t totals = C > 1 ? 3 * ((kBins + C - 1) / C) * sizeof(u64) : 0;
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
