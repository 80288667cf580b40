// CUDA argmax and sampling over rows (ops/sampling.h). Argmax: one block per row. Each thread scans its share of the
// row in 16-byte vectors, four loads in flight (in increasing index order, so it keeps the first
// of equal values), then
// (value, index) pairs meet by shuffles and shared memory; ties go to the lower index and NaN
// beats every number, so the result is the first maximum whatever the reduction order.
#include <cmath>
#include "cuda/check.cuh"
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
  for (int o = 16; o > 0; o >>= 1) {
    const Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    if (before(other, b)) b = other;
  }
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = b;
  __syncthreads();
  if (threadIdx.x == 0) {
    Best r = part[0];
    for (int w = 1; w < kThreads / 32; ++w)
      if (before(part[w], r)) r = part[w];
    p.out[blockIdx.x] = r.i < n ? r.i : 0;  // (an all -inf row keeps index 0)
  }
}

// ---- Sampling: one block of kSampleThreads per row, staged in shared memory where it fits ------
// (a 50k-token row: 100 KB in bf16, 200 KB in f32; larger rows are read from L2 in every pass).
// Passes: the first maximum (argmax's rule; greedy rows end there), top-k as a radix select of the
// ranking key in four 8-bit digits (counts), top-p as the same select weighted by the fixed-point
// weights (integer sums: the same result whatever order the atomics land in), a radix select of
// the index where tokens tied with the threshold key must be split, and the draw: each thread
// sums the kept weight of a contiguous range, a block scan places the ranges, and the thread whose
// range holds floor(u · M) walks it.
constexpr int kSampleThreads = 1024, kSampleWarps = kSampleThreads / 32;
using u64 = unsigned long long;

struct SampleShared {
  u64 hist[256];
  u64 scan[kSampleWarps];
  Best best[kSampleWarps];
  u64 acc, equal;
  uint32_t digit;
};

// The kept set is a prefix of the ranking: keys above `key`, and tokens of key `key` up to index `last`.
struct Prefix {
  uint32_t key = 0;
  int last = 0x7fffffff;
  __device__ bool has(int i, uint32_t k) const { return k > key || (k == key && i <= last); }
};

// The key K of the ranking prefix whose weight (wt, over tokens passing `in`) first reaches
// `need`: the weight above K is < need <= the weight down to K. Sets sh.acc to the weight above K
// and sh.equal to the weight of key K.
template <typename T, class In, class Wt>
__device__ uint32_t select_key(const T* x, int n, In in, Wt wt, u64 need, SampleShared& sh) {
  uint32_t prefix = 0, mask = 0;
  u64 acc = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += kSampleThreads) sh.hist[d] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += kSampleThreads) {
      const float v = to_float(x[i]);
      const uint32_t k = sampling::key_of(v);
      if ((k & mask) == prefix && in(i, k)) atomicAdd(&sh.hist[(k >> shift) & 255u], wt(v));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      u64 c = acc;
      int d = 255;
      for (; d > 0 && c + sh.hist[d] < need; --d) c += sh.hist[d];
      sh.digit = static_cast<uint32_t>(d);
      sh.acc = c;
      sh.equal = sh.hist[d];
    }
    __syncthreads();
    prefix |= sh.digit << shift;
    mask |= 0xffu << shift;
    acc = sh.acc;
  }
  return prefix;
}

// The q-th smallest index (q >= 1) among the tokens of key K passing `in`: the same select on the
// index bits, ascending, each pass over the index range its digits so far allow.
template <typename T, class In>
__device__ int select_index(const T* x, int n, In in, uint32_t K, u64 q, SampleShared& sh) {
  uint32_t prefix = 0;
  u64 acc = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += kSampleThreads) sh.hist[d] = 0;
    __syncthreads();
    const int64_t lo = prefix, hi = min(static_cast<int64_t>(n), static_cast<int64_t>(prefix) + (int64_t{1} << (shift + 8)));
    for (int64_t i = lo + threadIdx.x; i < hi; i += kSampleThreads) {
      const uint32_t k = sampling::key_of(to_float(x[i]));
      if (k == K && in(static_cast<int>(i), k)) atomicAdd(&sh.hist[(static_cast<uint32_t>(i) >> shift) & 255u], 1ull);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      u64 c = acc;
      int d = 0;
      for (; d < 255 && c + sh.hist[d] < q; ++d) c += sh.hist[d];
      sh.digit = static_cast<uint32_t>(d);
      sh.acc = c;
    }
    __syncthreads();
    prefix |= sh.digit << shift;
    acc = sh.acc;
  }
  __syncthreads();  // every thread has its digits before the caller reuses the shared fields
  return static_cast<int>(prefix);
}

__device__ __forceinline__ u64 warp_inclusive_sum(u64 v) {
  const int lane = threadIdx.x & 31;
  for (int o = 1; o < 32; o <<= 1) {
    const u64 t = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += t;
  }
  return v;
}

__device__ __forceinline__ float key_value(uint32_t k) {  // the float a ranking key came from
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

template <typename T> __global__ void __launch_bounds__(kSampleThreads) sample_kernel(SampleParams p, bool staged) {
  __shared__ SampleShared sh;
  extern __shared__ __align__(16) unsigned char stage[];
  cuda::pdl_wait();
  cuda::pdl_trigger();
  const int64_t row = blockIdx.x;
  const T* g = static_cast<const T*>(p.x) + row * p.n;
  T* st = reinterpret_cast<T*>(stage);
  const int n = static_cast<int>(p.n), warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // 1. argmax's choice (the first maximum, NaN first), staging the row on the way
  Best b{-INFINITY, n};
  for (int i = threadIdx.x; i < n; i += kSampleThreads) {
    const T v = g[i];
    if (staged) st[i] = v;
    take(b, to_float(v), i);
  }
  const T* x = staged ? st : g;  // the later passes' row (the barrier below orders the staging)
  for (int o = 16; o > 0; o >>= 1) {
    const Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    if (before(other, b)) b = other;
  }
  if (lane == 0) sh.best[warp] = b;
  __syncthreads();
  b = sh.best[0];
  for (int w = 1; w < kSampleWarps; ++w)
    if (before(sh.best[w], b)) b = sh.best[w];
  const float temp = p.temperature[row];
  if (!(temp > 0.f) || !isfinite(b.v)) {
    if (threadIdx.x == 0) p.out[row] = b.i < n ? b.i : 0;
    return;
  }
  if (threadIdx.x == 0) p.out[row] = b.i;  // (the draw below overwrites it; a barrier separates the two)
  const float mx = b.v, inv = 1.f / temp;
  auto weight = [=](float v) -> u64 { return sampling::fixed_weight(__expf((v - mx) * inv)); };
  auto every = [](int, uint32_t) { return true; };
  // 2. top-k: the first k of the ranking
  Prefix cand;
  const int k = p.top_k ? p.top_k[row] : 0;
  if (k > 0 && k < n) {
    cand.key = select_key(x, n, every, [](float) { return 1ull; }, static_cast<u64>(k), sh);
    const u64 q = static_cast<u64>(k) - sh.acc, tied = sh.equal;
    __syncthreads();
    if (q < tied) cand.last = select_index(x, n, every, cand.key, q, sh);
  }
  // 3. top-p: the shortest prefix of those holding P of their weight
  Prefix kept = cand;
  const float P = p.top_p ? p.top_p[row] : 1.f;
  if (P < 1.f) {
    if (threadIdx.x == 0) sh.acc = 0;
    __syncthreads();
    u64 s = 0;
    for (int i = threadIdx.x; i < n; i += kSampleThreads) {
      const float v = to_float(x[i]);
      if (cand.has(i, sampling::key_of(v))) s += weight(v);
    }
    atomicAdd(&sh.acc, s);
    __syncthreads();
    const u64 S = sh.acc;
    __syncthreads();
    auto in_cand = [cand](int i, uint32_t kk) { return cand.has(i, kk); };
    kept.key = select_key(x, n, in_cand, weight, sampling::nucleus_target(P, S), sh);
    const u64 wk = weight(key_value(kept.key));
    const u64 rest = sampling::nucleus_target(P, S) - sh.acc, tied = sh.equal / wk;
    const u64 q = (rest + wk - 1) / wk;
    __syncthreads();
    // all of key K taken: up to top-k's own cut where it is top-k's threshold key, else every one
    kept.last = q < tied ? select_index(x, n, in_cand, kept.key, q, sh) : kept.key == cand.key ? cand.last : Prefix{}.last;
  }
  // 4. the draw
  const int chunk = (n + kSampleThreads - 1) / kSampleThreads;
  const int lo = min(n, static_cast<int>(threadIdx.x) * chunk), hi = min(n, lo + chunk);
  u64 s = 0;
  for (int i = lo; i < hi; ++i) {
    const float v = to_float(x[i]);
    if (kept.has(i, sampling::key_of(v))) s += weight(v);
  }
  const u64 incl = warp_inclusive_sum(s);
  if (lane == 31) sh.scan[warp] = incl;
  __syncthreads();
  if (warp == 0) sh.scan[lane] = warp_inclusive_sum(sh.scan[lane]);
  __syncthreads();
  const u64 base = (warp > 0 ? sh.scan[warp - 1] : 0) + incl - s, M = sh.scan[kSampleWarps - 1];
  const u64 r = sampling::landing(p.uniform[row], M);
  if (s > 0 && r >= base && r - base < s) {
    u64 run = base;
    for (int i = lo; i < hi; ++i) {
      const float v = to_float(x[i]);
      if (!kept.has(i, sampling::key_of(v))) continue;
      run += weight(v);
      if (run > r) {
        p.out[row] = i;
        break;
      }
    }
  }
}

}  // namespace

void sample_cuda(const SampleParams& p, void* stream) {
  if (p.rows > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "sampleTokens: too many rows for one launch");
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  int dev = 0, optin = 0;
  cuda::check(cudaGetDevice(&dev), "sampleTokens");
  cuda::check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "sampleTokens");
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    // the row in shared memory when it fits beside the block's static part
    const size_t bytes = static_cast<size_t>(p.n) * sizeof(T);
    const bool staged = bytes + sizeof(SampleShared) + 1024 <= static_cast<size_t>(optin);
    if (staged) cuda::set_smem_once<sample_kernel<T>>(bytes, "sampleTokens: shared memory");
    cuda::launch_pdl(sample_kernel<T>, dim3(static_cast<unsigned>(p.rows)), dim3(kSampleThreads), staged ? bytes : 0, st, p, staged);
  });
  cuda::check_launch("sampleTokens");
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
