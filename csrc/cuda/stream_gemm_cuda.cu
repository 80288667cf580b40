// Weight-streaming GEMM of batched decode (sm_90): out (M, N) = x (M, K) · w (N, K)ᵀ + bias for
// 8 < M <= 64 rows, bf16/f16 operands, f32 accumulation on tensor cores (mma.sync m16n8k16).
//
// At 64 rows the product is bound by reading w once; cuBLAS reaches 2.4-2.55 TB/s at the decode
// shapes (in_proj 64x10240x2560 21.5 µs, out_proj 64x2560x5120 10.2 µs, copy rate 2.99), and its
// kernels take no programmatic launch, so every projection is a hard kernel boundary. Here:
//  - one wave: block (t, s) owns weight rows [t·BN, t·BN + BN) (BN = 16 or 32 per consumer warp) over
//    K range s of S, the S blocks of a tile forming a cluster that sums its partial tiles through
//    distributed shared memory in rank order (deterministic); BN and S are picked so that the
//    blocks cover the SMs evenly (in_proj 64 tiles x 2, out_proj 16 x 8: 128 blocks of 160 rows;
//    Mamba-2's in_proj 61 x 2 of 176 rows);
//  - a producer warp streams 64-wide K slices of w (BN x 128 bytes) and x (64 x 128 bytes, rows
//    past M zero-filled) with TMA tensor copies (128-byte swizzle) into a ring of stages completing
//    on mbarriers, the consumer warps release each stage on a second mbarrier: no block barrier
//    in the K loop, ~5 stages (140 KB) of weights in flight per SM;
//  - the weight slices of the first stages are requested before the PDL wait (they do not depend
//    on the previous kernel), x's after it;
//  - a consumer warp computes 32 (or 16) weight rows x 64 tokens (the weights as the mma A
//    operand, 2 (1) m-tiles, the tokens as B, 8 n-tiles) from ldmatrix fragments.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include "cuda/bulk_copy.cuh"
#include "cuda/bulk_store.cuh"
#include "cuda/check.cuh"
#include "cuda/cluster.cuh"
#include "cuda/load_any.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "cuda/stream_gemm.h"

namespace ss {
namespace {

using namespace cuda::mma;

// A consumer warp computes MT m-tiles (16·MT weight rows) x 64 tokens; BN = 16·MT·cw rows a block.
// MT = 2 reads x from shared memory half as often per weight byte; MT = 1 gives 16-row steps of
// BN where no 32-row step covers the SMs (Mamba-2's in_proj: 176 rows x 2 splits, 91%).
struct StreamTraits {
  static constexpr int kMaxM = 64, BK = 64;  // tokens (8 n-tiles); K of a TMA box (128-byte rows)
  static constexpr int kMaxWarps = 12, kMaxStages = 8, kMaxSplit = 8;
  static constexpr int kMaxRows = 256;  // a TMA box's rows
  static constexpr uint32_t kXBytes = kMaxM * BK * 2;
  static constexpr size_t kSmemMax = 227 * 1024 - 1024;  // the opt-in, less room for the static barriers
  // A stage holds KS boxes of w ([bn][64] each) and then KS boxes of x: K = 64·KS per stage.
  __host__ __device__ static constexpr uint32_t w_bytes(int bn) { return static_cast<uint32_t>(bn) * BK * 2; }
  __host__ __device__ static constexpr uint32_t stage_bytes(int bn, int ks) { return (w_bytes(bn) + kXBytes) * ks; }
  __host__ __device__ static constexpr int red_pitch(int bn) { return bn + 4; }  // f32 [token][row]: conflict-free writes
  __host__ __device__ static constexpr uint32_t red_bytes(int bn) { return static_cast<uint32_t>(kMaxM) * red_pitch(bn) * 4; }
};

// The width-4 conv step of linearConvUpdate on output columns [lo, lo + channels) (state null:
// none): state (M, channels, 3), taps (channels, 4), bias (channels) or null, all in T.
struct ConvEpilogue {
  void* state = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;
  int64_t lo = 0, channels = 0;
  bool silu = false;
};

// 2-D TMA load of the box at (c0 = inner, c1 = outer) of tensor map `map` into shared memory,
// completing on `bar`.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar, uint64_t policy) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3}], [%4], %5;" ::"r"(
          cuda::shared_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(cuda::shared_addr(bar)), "l"(policy)
      : "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ uint64_t l2_evict_last() {
  uint64_t pol = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(pol));
#endif
  return pol;
}

// The decode step's width-4 causal conv on 8 channels c0..c0+7 of token `tok` (x: their new
// values, the product as stored; replaced by the conv outputs), as causal_conv1d_update's 16-byte
// kernel computes it: y = act(bias + Σ_k w[c, k]·window[k]) over the 3 state values and x, the
// state shifted in place. (16-bit state, taps and bias in T; channels, lo multiples of 8.)
template <typename T> __device__ __forceinline__ void conv_step(const ConvEpilogue& cv, int tok, int64_t c0, T (&x)[8]) {
  constexpr int W = 4;
  uint4* sp = reinterpret_cast<uint4*>(static_cast<T*>(cv.state) + (tok * cv.channels + c0) * (W - 1));
  uint4 su[W - 1], wv[W];
#pragma unroll
  for (int k = 0; k < W - 1; ++k) su[k] = sp[k];
#pragma unroll
  for (int k = 0; k < W; ++k) wv[k] = __ldg(reinterpret_cast<const uint4*>(static_cast<const T*>(cv.weight) + c0 * W) + k);
  const uint4 bv = cv.bias ? __ldg(reinterpret_cast<const uint4*>(static_cast<const T*>(cv.bias) + c0)) : make_uint4(0, 0, 0, 0);
  const T* ws = reinterpret_cast<const T*>(wv);
  const T* bs = reinterpret_cast<const T*>(&bv);
  T* ss = reinterpret_cast<T*>(su);
#pragma unroll
  for (int c = 0; c < 8; ++c) {
    float acc = cv.bias ? cuda::to_float(bs[c]) : 0.f;
#pragma unroll
    for (int k = 0; k < W - 1; ++k) acc += cuda::to_float(ws[c * W + k]) * cuda::to_float(ss[c * (W - 1) + k]);
    acc += cuda::to_float(ws[c * W + W - 1]) * cuda::to_float(x[c]);
    ss[c * (W - 1)] = ss[c * (W - 1) + 1];
    ss[c * (W - 1) + 1] = ss[c * (W - 1) + 2];
    ss[c * (W - 1) + 2] = x[c];
    x[c] = cuda::from_float<T>(cv.silu ? cuda::silu_f(acc) : acc);
  }
#pragma unroll
  for (int k = 0; k < W - 1; ++k) sp[k] = su[k];
}

// Grid (tiles, S), clusters (1, S); blockDim = (cw + 1) warps: cw consumers, then the producer.
// Block (t, s): weight rows [t·BN, t·BN + BN), K range [s·kc, s·kc + kc) (kc a multiple of 64).
template <typename T, int MT, int KS>
__global__ void __launch_bounds__((StreamTraits::kMaxWarps + 1) * 32, 1)
    stream_gemm_kernel(const __grid_constant__ CUtensorMap tw, const __grid_constant__ CUtensorMap tx, GemmParams p, ConvEpilogue cv, int nstages, int kc) {
  using Tr = StreamTraits;
  extern __shared__ unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t full[Tr::kMaxStages], empty[Tr::kMaxStages];
  // 128-byte swizzled tiles need 1024-byte aligned stages.
  unsigned char* base = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  constexpr int kRows = 16 * MT;  // a consumer warp's weight rows
  const int cw = blockDim.x / 32 - 1, BN = cw * kRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int S = gridDim.y, rank = blockIdx.y;
  constexpr int SK = KS * Tr::BK;  // K per stage
  const int n0 = blockIdx.x * BN, k0 = rank * kc, nk = kc / SK;
  const uint32_t wbytes = Tr::w_bytes(BN), sbytes = Tr::stage_bytes(BN, KS), xoff = KS * wbytes;
  float* red = reinterpret_cast<float*>(base + static_cast<size_t>(nstages) * sbytes);  // [64][BN + 4]
  if (threadIdx.x == 0) {
    for (int s = 0; s < nstages; ++s) {
      cuda::mbar_init(&full[s], 1);
      cuda::mbar_init(&empty[s], static_cast<uint32_t>(cw));
    }
    cuda::mbar_init_fence();
  }
  __syncthreads();

  float acc[MT][8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.f;

  if (warp == cw) {  // the producer
    if (lane == 0) {
      const uint64_t pol_w = cuda::l2_evict_first(), pol_x = l2_evict_last();
      const int pre = min(nstages, nk);
      for (int i = 0; i < pre; ++i) {  // weights: parameters, requested before the wait
        cuda::mbar_arrive_expect_tx(&full[i], sbytes);
        for (int j = 0; j < KS; ++j)
          tma_load_2d(base + static_cast<size_t>(i) * sbytes + j * wbytes, &tw, k0 + i * SK + j * Tr::BK, n0, &full[i], pol_w);
      }
      cuda::pdl_wait();
      cuda::pdl_trigger();
      for (int i = 0; i < pre; ++i)
        for (int j = 0; j < KS; ++j)
          tma_load_2d(base + static_cast<size_t>(i) * sbytes + xoff + j * Tr::kXBytes, &tx, k0 + i * SK + j * Tr::BK, 0, &full[i], pol_x);
      for (int i = pre; i < nk; ++i) {
        const int s = i % nstages;
        cuda::mbar_wait(&empty[s], static_cast<uint32_t>((i / nstages - 1) & 1));  // the consumers released its last use
        cuda::mbar_arrive_expect_tx(&full[s], sbytes);
        unsigned char* st = base + static_cast<size_t>(s) * sbytes;
        for (int j = 0; j < KS; ++j) tma_load_2d(st + j * wbytes, &tw, k0 + i * SK + j * Tr::BK, n0, &full[s], pol_w);
        for (int j = 0; j < KS; ++j) tma_load_2d(st + xoff + j * Tr::kXBytes, &tx, k0 + i * SK + j * Tr::BK, 0, &full[s], pol_x);
      }
    } else {
      cuda::pdl_wait();
      cuda::pdl_trigger();
      // The conv epilogue's reads (state, taps, bias of the columns this block finalises) into L2
      // while the product streams: one bulk prefetch per token row and one per parameter run.
      if (cv.state && lane == 1) {
        const int octs = BN / 8, items = Tr::kMaxM * octs, per = (items + S - 1) / S;
        const int i0 = rank * per, i1 = min(i0 + per, items);
        const int64_t c_lo = max(static_cast<int64_t>(n0), cv.lo), c_hi = min(static_cast<int64_t>(n0 + BN), cv.lo + cv.channels);
        if (i0 < i1 && c_lo < c_hi) {
          const int64_t c0 = c_lo - cv.lo, nc = c_hi - c_lo;
          for (int tok = i0 / octs; tok <= (i1 - 1) / octs && tok < p.M; ++tok)
            cuda::bulk_prefetch_l2(static_cast<const T*>(cv.state) + (tok * cv.channels + c0) * 3, static_cast<uint32_t>(nc * 3 * sizeof(T)));
          cuda::bulk_prefetch_l2(static_cast<const T*>(cv.weight) + c0 * 4, static_cast<uint32_t>(nc * 4 * sizeof(T)));
          if (cv.bias) cuda::bulk_prefetch_l2(static_cast<const T*>(cv.bias) + c0, static_cast<uint32_t>(nc * sizeof(T)));
        }
      }
    }
  } else {  // consumer warp: weight rows kRows·warp .. + kRows - 1 of the tile, all 64 tokens
    cuda::pdl_wait();
    cuda::pdl_trigger();
    // ldmatrix addresses (128-byte rows, 16-byte chunk c of row r at c ^ (r & 7)): A rows
    // kRows·warp + 16·mt + (lane & 15), chunk 2·kk + lane / 16; B (x rows = tokens) 16·np + (lane & 7)
    // + 8·(lane / 16), chunk 2·kk + (lane / 8) % 2. Every row's low 3 bits are lane & 7.
    const uint32_t l7 = lane & 7;
    const uint32_t a_row = static_cast<uint32_t>(warp * kRows + (lane & 15)) * 128, a_hi = lane >> 4;
    const uint32_t b_row = static_cast<uint32_t>((lane & 7) + (lane >> 4) * 8) * 128, b_hi = (lane >> 3) & 1;
    const uint32_t base_s = cuda::shared_addr(base);
    for (int i = 0; i < nk; ++i) {
      const int s = i % nstages;
      cuda::mbar_wait(&full[s], static_cast<uint32_t>((i / nstages) & 1));
      const uint32_t st_s = base_s + static_cast<uint32_t>(s) * sbytes;
#pragma unroll
      for (int kk = 0; kk < SK / 16; ++kk) {
        // box kk / 4 of the stage, its 16-wide step kk % 4
        const uint32_t wa = st_s + (kk / 4) * wbytes, xa = st_s + xoff + (kk / 4) * Tr::kXBytes;
        const uint32_t ca = ((2 * (kk % 4) + a_hi) ^ l7) << 4, cb = ((2 * (kk % 4) + b_hi) ^ l7) << 4;
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ldsm_x4(a[mt], wa + a_row + mt * 16 * 128 + ca);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          ldsm_x4(b, xa + b_row + np * 16 * 128 + cb);
          const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma16816<T>(acc[mt][2 * np], a[mt], b0);
            mma16816<T>(acc[mt][2 * np + 1], a[mt], b1);
          }
        }
      }
      __syncwarp();
      if (lane == 0) cuda::mbar_arrive(&empty[s]);
    }
    // acc[mt][nt]: rows kRows·warp + 16·mt + g (+ 8), tokens 8·nt + 2q (+ 1)
    const int g = lane / 4, q = lane % 4, pitch = Tr::red_pitch(BN);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          red[(8 * nt + 2 * q + (e & 1)) * pitch + warp * kRows + 16 * mt + g + 8 * (e >> 1)] = acc[mt][nt][e];
  }
  cuda::cluster_sync();  // the S partial tiles of the cluster are complete and visible

  // Block `rank` finalises items [rank·per, rank·per + per) of the tile's 64 tokens x BN / 8 columns
  // of 8 (16 bytes of output).
  const int octs = BN / 8, items = Tr::kMaxM * octs, per = (items + S - 1) / S, pitch = Tr::red_pitch(BN);
  const int M = static_cast<int>(p.M);
  T* out = static_cast<T*>(p.out);
  const bool vec_out = p.N % 8 == 0 && reinterpret_cast<uintptr_t>(p.out) % 16 == 0;
  for (int item = rank * per + static_cast<int>(threadIdx.x); item < min(rank * per + per, items); item += blockDim.x) {
    const int tok = item / octs, row = (item % octs) * 8;
    const int64_t n = static_cast<int64_t>(n0) + row;
    if (tok >= M || n >= p.N) continue;
    const uint32_t at = cuda::shared_addr(red + tok * pitch + row);
    const float4 v0 = cuda::cluster_sum_f4(at, S), v1 = cuda::cluster_sum_f4(at + 16, S);
    const float vals[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
    T o[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = cuda::from_float<T>(vals[e] + (p.bias && n + e < p.N ? cuda::load_any(p.bias, p.bias_dtype, n + e) : 0.f));
    if (cv.state && n >= cv.lo && n < cv.lo + cv.channels) conv_step<T>(cv, tok, n - cv.lo, o);
    if (vec_out) {
      *reinterpret_cast<uint4*>(out + tok * p.N + n) = *reinterpret_cast<const uint4*>(o);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (n + e < p.N) out[tok * p.N + n + e] = o[e];
    }
  }
  cuda::cluster_sync();  // no block leaves while another still reads its partial tile
}

// The decomposition: m-tiles per consumer warp, consumer warps per block (BN = 16·MT·cw rows),
// the K split S, 64-wide boxes per stage KS.
struct StreamPlan {
  int MT = 0, cw = 0, S = 0, KS = 0, nstages = 0;
  int64_t tiles = 0;
  int bn() const { return 16 * MT * cw; }
  size_t smem() const { return 1024 + static_cast<size_t>(nstages) * StreamTraits::stage_bytes(bn(), KS) + StreamTraits::red_bytes(bn()); }
};

int current_device() {
  int d = 0;
  cudaGetDevice(&d);
  return d;
}

int device_major(int device) {
  static std::atomic<int> cache[64];
  if (device < 0 || device >= 64) return 0;
  int v = cache[device].load(std::memory_order_relaxed);
  if (v == 0) {
    cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, device);
    cache[device].store(v, std::memory_order_relaxed);
  }
  return v;
}

// A/B switch for one device run: STATESPACE_STREAM_BK=64 stages one 64-wide box of K per operand,
// otherwise two (128 k: 256 contiguous bytes of each weight row per stage).
int stage_boxes() {
  const char* v = std::getenv("STATESPACE_STREAM_BK");
  return v && v[0] == '6' ? 1 : 2;
}

template <typename T, int MT, int KS> void allow_smem() {
  static std::atomic<uint64_t> opted{0};
  const int device = current_device();
  const uint64_t bit = device >= 0 && device < 64 ? uint64_t{1} << device : 0;
  if (bit && (opted.load(std::memory_order_relaxed) & bit)) return;
  cuda::check(cudaFuncSetAttribute(stream_gemm_kernel<T, MT, KS>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(StreamTraits::kSmemMax)),
              "linear (stream): shared memory");
  opted.fetch_or(bit, std::memory_order_relaxed);
}

// How many clusters of S blocks of this shape the GPU holds at once (a cluster's blocks share a
// GPC: clusters of 8 blocks of ~210 KB do not all fit, and the ones left over ran as a second
// wave: out_proj 22.7 µs against cuBLAS's 10.2 in run 1). Cached per configuration (the
// shared memory is a function of it).
template <int MT, int KS> int max_clusters(int cw, int S, size_t smem) {
  static std::atomic<int> cache[StreamTraits::kMaxWarps + 1][4];
  int lg = 0;
  while ((1 << lg) < S) ++lg;
  int v = cache[cw][lg].load(std::memory_order_relaxed);
  if (v) return v - 1;
  allow_smem<__nv_bfloat16, MT, KS>();
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(1, static_cast<unsigned>(S));
  cfg.blockDim = dim3(static_cast<unsigned>((cw + 1) * 32));
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = static_cast<unsigned>(S);
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, stream_gemm_kernel<__nv_bfloat16, MT, KS>, &cfg) != cudaSuccess) {
    cudaGetLastError();
    n = 0;
  }
  cache[cw][lg].store(n + 1, std::memory_order_relaxed);
  return n;
}

// One wave of tiles·S <= SMs blocks (and clusters that fit at once) whose busiest SM reads at most
// 1/0.9 of an even share of w (in_proj 64x10240x2560: 160 rows x 2 splits, 97%; out_proj
// 64x2560x5120: 80 x 4, 97%; Mamba-2's in_proj, N = 10576 = 661·16: 176 x 2, 91%); none (cuBLAS)
// when no split comes that close. The 32-row warps first at equal coverage.
StreamPlan plan(const GemmParams& p) {
  using Tr = StreamTraits;
  StreamPlan best;
  const int sms = cuda::sm_count(), KS = stage_boxes(), SK = KS * Tr::BK;
  double best_eff = 0.9;
  for (int MT = 2; MT >= 1; --MT)
    for (int cw = Tr::kMaxWarps; cw >= 3; --cw) {
      const int64_t BN = 16 * MT * cw, tiles = (p.N + BN - 1) / BN;
      if (BN > Tr::kMaxRows) continue;
      for (int S = 1; S <= Tr::kMaxSplit; S *= 2) {
        if (tiles * S > sms || p.K % (S * SK) != 0 || p.K / S < 2 * SK) continue;
        const double eff = static_cast<double>(p.N) * S / (static_cast<double>(sms) * BN);
        if (eff <= best_eff + 1e-9) continue;
        StreamPlan c;
        c.MT = MT;
        c.cw = cw;
        c.S = S;
        c.KS = KS;
        c.tiles = tiles;
        const size_t avail = Tr::kSmemMax - 1024 - Tr::red_bytes(c.bn());  // (1024: the stages' alignment)
        c.nstages = static_cast<int>(std::min<size_t>(Tr::kMaxStages, avail / Tr::stage_bytes(c.bn(), KS)));
        c.nstages = std::min<int>(c.nstages, static_cast<int>(p.K / S / SK));
        if (c.nstages < 2) continue;
        if (S > 1) {  // (asked with the deepest ring of this tile, the most shared memory it takes)
          StreamPlan deep = c;
          deep.nstages = static_cast<int>(std::min<size_t>(Tr::kMaxStages, avail / Tr::stage_bytes(c.bn(), KS)));
          const size_t sm = deep.smem();
          const int fit = MT == 2 ? (KS == 2 ? max_clusters<2, 2>(cw, S, sm) : max_clusters<2, 1>(cw, S, sm))
                                  : (KS == 2 ? max_clusters<1, 2>(cw, S, sm) : max_clusters<1, 1>(cw, S, sm));
          if (fit < tiles) continue;
        }
        best_eff = eff;
        best = c;
      }
    }
  return best;
}

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess || q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// A row-major (rows, cols) 16-bit matrix with rows ld elements apart, read in boxes of 64 columns
// x box_rows rows (128-byte swizzle; rows past the end read as zeros).
bool make_map(CUtensorMap* map, const void* ptr, DType dtype, int64_t rows, int64_t cols, int64_t ld, int box_rows) {
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * 2};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(StreamTraits::BK), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t elem[2] = {1, 1};
  const CUtensorMapDataType dt = dtype == DType::BFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  return encode_fn()(map, dt, 2, const_cast<void*>(ptr), dims, strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                     CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

bool enabled() {
  const char* v = std::getenv("STATESPACE_STREAM_GEMM");
  return !(v && v[0] == '0');
}

template <typename T, int MT, int KS> void launch(const GemmParams& p, const ConvEpilogue& cv, const StreamPlan& pl, cudaStream_t st) {
  using Tr = StreamTraits;
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldw = p.ldw ? p.ldw : p.K;
  CUtensorMap tw, tx;
  if (!make_map(&tw, p.weight, p.dtype, p.N, p.K, ldw, pl.bn()) || !make_map(&tx, p.x, p.dtype, p.M, p.K, ldx, Tr::kMaxM))
    fail("ERR_CUDA", ErrorKind::Plain, "linear (stream): tensor map rejected");
  auto kernel = stream_gemm_kernel<T, MT, KS>;
  const size_t smem = pl.smem();
  allow_smem<T, MT, KS>();
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(pl.tiles), static_cast<unsigned>(pl.S));
  cfg.blockDim = dim3(static_cast<unsigned>((pl.cw + 1) * 32));
  cfg.dynamicSmemBytes = smem;
  cfg.stream = st;
  cudaLaunchAttribute attr[2];
  int n = 0;
  attr[n].id = cudaLaunchAttributeClusterDimension;
  attr[n].val.clusterDim.x = 1;
  attr[n].val.clusterDim.y = static_cast<unsigned>(pl.S);
  attr[n].val.clusterDim.z = 1;
  ++n;
  if (cuda::pdl_enabled()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, tw, tx, p, cv, pl.nstages, static_cast<int>(p.K / pl.S));
  if (e != cudaSuccess && n > 1) {  // a driver that refuses PDL with clusters: plain launch
    cudaGetLastError();
    cfg.numAttrs = 1;
    e = cudaLaunchKernelEx(&cfg, kernel, tw, tx, p, cv, pl.nstages, static_cast<int>(p.K / pl.S));
  }
  cuda::check(e, "linear (stream)");
}

}  // namespace

bool stream_gemm_fits(const GemmParams& p) {
  const int64_t ldx = p.ldx ? p.ldx : p.K, ldw = p.ldw ? p.ldw : p.K;
  auto aligned16 = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  if (!enabled() || !(p.dtype == DType::BFloat16 || p.dtype == DType::Float16) || p.M <= kGemvMaxM || p.M > StreamTraits::kMaxM || p.N < 1 ||
      p.K < 1 || p.x_col_major || p.w_col_major || ldx % 8 != 0 || ldw % 8 != 0 || p.K >= (int64_t{1} << 31) || p.N * p.M >= (int64_t{1} << 31) ||
      !aligned16(p.x) || !aligned16(p.weight) || device_major(current_device()) < 9 || encode_fn() == nullptr)
    return false;
  return plan(p).cw > 0;
}

namespace {
void run(const GemmParams& p, const ConvEpilogue& cv, void* stream) {
  const StreamPlan pl = plan(p);
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  auto go = [&](auto tag) {
    using T = decltype(tag);
    if (pl.MT == 2)
      pl.KS == 2 ? launch<T, 2, 2>(p, cv, pl, st) : launch<T, 2, 1>(p, cv, pl, st);
    else
      pl.KS == 2 ? launch<T, 1, 2>(p, cv, pl, st) : launch<T, 1, 1>(p, cv, pl, st);
  };
  if (p.dtype == DType::BFloat16)
    go(__nv_bfloat16{});
  else
    go(__half{});
  cuda::check_launch("linear (stream)");
}
}  // namespace

void stream_gemm_cuda(const GemmParams& p, void* stream) { run(p, ConvEpilogue{}, stream); }

bool stream_gemm_conv_cuda(const GemmParams& p, const GemvConv& c, void* stream) {
  const char* v = std::getenv("STATESPACE_STREAM_CONV");
  if (v && v[0] == '0') return false;
  auto a16 = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  const bool ok = c.width == 4 && c.state_dtype == p.dtype && c.weight_dtype == p.dtype && (!c.bias || c.bias_dtype == p.dtype) && c.lo % 8 == 0 &&
                  c.channels % 8 == 0 && c.channels > 0 && c.lo + c.channels <= p.N && a16(c.state) && a16(c.weight) && (!c.bias || a16(c.bias)) &&
                  p.M * c.channels * 3 < (int64_t{1} << 31) && stream_gemm_fits(p);
  if (!ok) return false;
  ConvEpilogue cv;
  cv.state = c.state;
  cv.weight = c.weight;
  cv.bias = c.bias;
  cv.lo = c.lo;
  cv.channels = c.channels;
  cv.silu = c.silu;
  run(p, cv, stream);
  return true;
}

}  // namespace ss
