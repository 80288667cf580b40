// The SSD forward's state stage on Hopper warpgroup products (wgmma, sm_90a): the same walk
// as ssd_mma_state_kernel (ssd_fwd_mma.cu: the state in f32 accumulators for the whole sequence,
// chunk scalars, the state entering every chunk stored as T, its decay across the chunk), with
// one warpgroup per (batch, head, 64 × 128 tile of the state) — 128 dstate columns instead of 64,
// so each x slice is read once per head, not once per dstate tile — and the per-slice update
//   H += (w ∘ X)ᵀ · B_s
// as four wgmma m64n128k16: A = (w ∘ X)ᵀ from registers (ldmatrix.trans of the x slice, scaled by
// the token weights there, as packed T pairs: no shared-memory pass, no barrier for it), B = the B
// slice [token][n] N-major from 128-byte-swizzled shared memory. The slices come by bulk tensor
// copies (TMA) where the maps encode, else cp.async. Three slice buffers: a slice's copies are issued
// two slices before it is used, into the buffer of the slice before, whose products each thread
// waits for at the one barrier per slice; the products of a slice run while the next slice's
// copies land. Warp w of a warpgroup owns state rows 16·w .. (headdim), all 128 columns.
// HS heads of one group per block (HS warpgroups) share the B slices: one copy of each B slice
// per HS heads (B is 2/3 of a one-head block's L2 reads).
#include "cuda/check.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_fwd_tiles.cuh"
#include "cuda/ssd_launch.h"
#include "cuda/tensor_map.h"
#include "cuda/tma.cuh"
#include "cuda/wgmma.cuh"

namespace ss::cuda::ssd {

namespace {

using namespace ss::cuda::mma;

constexpr int kS = kFwdSlice;
constexpr int kNT = 128;           // threads per head (a warpgroup)
constexpr int kNW = 128;           // dstate columns of a block's tile
constexpr int kStages = 3;         // slice buffers
constexpr int kRegion = kS * 128;  // one 64-row × 64-column SW128 region

// Shared memory (from a 1024-byte aligned base): per stage the B slice (two regions: columns
// 0-63, 64-127) and the HS heads' x slices (one region each), then per head the chunk's token
// weights, per-warp scan totals, the stages' copy barriers; the size includes the alignment
// slack. HS 1: ≈ 74 KB (3 blocks per SM); HS 2: ≈ 98 KB (2 blocks).
template <int HS>
struct StateWgSmem {
  static constexpr size_t kStage = size_t(2 + HS) * kRegion, kW = kStages * kStage, kRed = kW + HS * (kChunkedQ / 2) * 4,
                          kBar = kRed + 2 * 8 * 4, kBytes = kBar + 8 * kStages + 1024;
};

}  // namespace

// grid (⌈NP/128⌉·⌈P/64⌉, H/HS, batch), 128·HS threads (warpgroup k: head HS·blockIdx.y + k).
// TMA: the slices come by bulk tensor copies (xmap: x as (P, H, L, batch), bmap: B as (N, G, L,
// batch), 64 × 64 boxes), issued by thread 0 and completing on a barrier per stage; else by every
// thread's cp.async (the maps unused).
template <typename T, bool TMA, int HS>
__global__ void __launch_bounds__(kNT * HS, HS == 1 ? 3 : 2)
    ssd_wg_state_kernel(Dev d, float2* scal, int* segs, const __grid_constant__ CUtensorMap xmap,
                        const __grid_constant__ CUtensorMap bmap, unsigned* ready) {
  pdl_trigger();  // its dependent (the state walk, or the C·Bᵀ kernel) may start in the slots left free
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kQ = kChunkedQ, kSlices = kQ / kS, NWARP = kNT / 32, E = kQ / kNT;  // E: tokens per thread in the scans
  using Lay = StateWgSmem<HS>;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  const int tid = threadIdx.x, hs = tid / kNT, ht = tid % kNT, lane = tid & 31, warp = ht >> 5;
  // stage k: B (two regions) at k·kStage, then head j's x slice at region 2 + j
  uint32_t* sW2 = reinterpret_cast<uint32_t*>(smem + Lay::kW) + hs * (kQ / 2);  // this head's token weights as T pairs
  float* sRedA = reinterpret_cast<float*>(smem + Lay::kRed) + NWARP * hs;
  int* sRedS = reinterpret_cast<int*>(smem + Lay::kRed + 32) + NWARP * hs;

  const int ntn = (d.NP + kNW - 1) / kNW;
  const int nt = blockIdx.x % ntn, pt = blockIdx.x / ntn;
  const int n0 = nt * kNW, p0 = pt * kS;
  const int h = blockIdx.y * HS + hs, b = blockIdx.z, g = h / d.hpg;  // the block's heads share g
  const int tq = 2 * (lane & 3);
  const bool writer = nt == 0 && pt == 0;  // one block per (batch, head) stores the scalars
  const float A = d.A[h], bias = d.dt_bias ? d.dt_bias[h] : 0.f;

  // The running state in the wgmma accumulator layout: acc[4·ni + e] is state row
  // p0 + 16·warp + lane/4 + 8·(e/2), column n0 + 8·ni + tq + e % 2.
  float acc[2 * kNW / 4];
  const int prow = p0 + 16 * warp + (lane >> 2);
#pragma unroll
  for (int i = 0; i < 2 * kNW / 4; ++i) acc[i] = 0.f;  // (+ h0 at the first chunk boundary)

  const int nsl = (d.L + kS - 1) / kS;  // slices of the whole sequence
  const int64_t xs = d.x_str.token, bs = d.B_str.token;
  const T* xb = static_cast<const T*>(d.x) + d.x_str.at(b, 0) + int64_t(h) * d.P + p0;
  const T* Bb = static_cast<const T*>(d.B) + d.B_str.at(b, 0) + int64_t(g) * d.N + n0;
  const uint32_t aS = smem_addr(smem), aBar = aS + Lay::kBar;
  if (TMA) {
    if (tid == 0) {
#pragma unroll
      for (int k = 0; k < kStages; ++k) mbar_init(aBar + 8 * k, 1);
      mbar_init_fence();
    }
    __syncthreads();
  }
  auto load_slice = [&](int s) {
    if (TMA) {
      if (tid == 0 && s < nsl) {
        const uint32_t st = aS + (s % kStages) * Lay::kStage, bar = aBar + 8 * (s % kStages);
        mbar_arrive_expect_tx(bar, Lay::kStage);
        tma::load_4d(st, &bmap, n0, g, s * kS, b, bar);
        tma::load_4d(st + kRegion, &bmap, n0 + 64, g, s * kS, b, bar);
#pragma unroll
        for (int j = 0; j < HS; ++j) tma::load_4d(st + (2 + j) * kRegion, &xmap, p0, h - hs + j, s * kS, b, bar);
      }
      return;
    }
    if (s < nsl) {
      const int rv = min(kS, d.L - s * kS);
      unsigned char* st = smem + (s % kStages) * Lay::kStage;
      copy_tile_sw128<kNT * HS>(tid, reinterpret_cast<T*>(st), Bb + int64_t(s) * kS * bs, bs, rv, kS, min(kNW, d.N - n0),
                                kNW);
      copy_tile_sw128<kNT>(ht, reinterpret_cast<T*>(st + (2 + hs) * kRegion), xb + int64_t(s) * kS * xs, xs, rv, kS,
                           min(kS, d.P - p0), kS);
    }
    __pipeline_commit();  // (empty groups too: the wait counts stay uniform)
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) load_slice(s);

  // This thread's E tokens of a chunk (E·tid ..), fetched a chunk ahead.
  ChunkTokens<E> tok;
  tok.fetch(d, b, h, bias, 0, ht);

  // ldmatrix.trans addresses of this lane for the A fragments (w ∘ X)ᵀ: x stored [token][p].
  const RC aq = a_addr_t(lane);  // (token row, p column) inside a 16 × 16 piece

  const int64_t PPN = int64_t(d.PP) * d.NP;
  for (int c = 0; c < d.nc; ++c) {
    // ---- chunk scalars: inclusive scans of dt'·A and of the restart flags over the chunk
    const ChunkScan<E> sc = chunk_scan<E, NWARP>(d, tok, c, A, ht, sRedA, sRedS, [&] {
      if (c + 1 < d.nc) tok.fetch(d, b, h, bias, c + 1, ht);
    });
    static_assert(E == 2, "a thread's tokens are one weight pair");
    sW2[ht] = pack2<T>(sc.weight(0), sc.weight(1));
    if (writer) {
      const int64_t so = (int64_t(b) * d.H + h) * d.Lpad + int64_t(c) * kQ + E * ht;
#pragma unroll
      for (int e = 0; e < E; ++e) sc.store(e, scal, segs, so + e);
    }
    const float dec = sc.decay();

    // ---- the state entering chunk c (16 bytes per lane through quad_transpose), then its decay
    wg::wait<0>();
    wg::fence_acc(acc);
    if (c == 0 && d.h0) {
      // The initial state, loaded here, after a wait, where ptxas sees the accumulators defined
      // outside the products' pipeline (loaded before the first product, it serialises every one).
      const float* h0 = d.h0 + ((int64_t(b) * d.H + h) * d.P + prow) * d.N + n0 + tq;
#pragma unroll
      for (int i = 0; i < 2 * kNW / 4; ++i) {
        const int dp = 8 * ((i >> 1) & 1), dn = 8 * (i >> 2) + (i & 1);
        if (prow + dp < d.P && n0 + tq + dn < d.N) acc[i] = __ldg(h0 + int64_t(dp) * d.N + dn);
      }
    }
    T* st = static_cast<T*>(d.St) + ((int64_t(b) * d.H + h) * d.nc + c) * PPN;
#pragma unroll
    for (int np = 0; np < kNW / 16; ++np) {
      const int n16 = n0 + 16 * np;  // 16 columns: whole or past NP (a multiple of 16)
      if (n16 < d.NP) {
        uint32_t v[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int i = 4 * (2 * np + (k & 1)) + 2 * (k >> 1);
          v[k] = pack2<T>(acc[i], acc[i + 1]);
        }
        quad_transpose(v, lane & 3);
        const int p = p0 + 16 * warp + (lane >> 2) + ((lane & 3) >> 1) * 8, n = n16 + (lane & 1) * 8;
        *reinterpret_cast<uint4*>(st + int64_t(p) * d.NP + n) = make_uint4(v[0], v[1], v[2], v[3]);
      }
    }
#pragma unroll
    for (int i = 0; i < 2 * kNW / 4; ++i) acc[i] *= dec;

    // ---- H += (w ∘ X)ᵀ·B over the chunk's slices
    const int s_end = min(nsl, (c + 1) * kSlices);
    for (int s = c * kSlices; s < s_end; ++s) {
      wg::wait<0>();                       // the previous slice's products are done (its buffer is free)
      if (TMA)
        mbar_wait(aBar + 8 * (s % kStages), (s / kStages) & 1);  // slice s has landed
      else
        __pipeline_wait_prior(kStages - 2);  // slice s has landed (the next one may still be in flight)
      wg::fence_proxy_async();               // ... visible to the tensor cores' reads
      __syncthreads();                     // ... for every thread's copies and products; the weights are complete
      load_slice(s + kStages - 1);         // into the buffer of slice s − 1
      if (ready && s == c * kSlices && ht == 0)  // chunk c's incoming state and scalars are stored
        signal_ready(ready + (int64_t(b) * d.H + h) * d.nc + c);
      const uint32_t sbuf = aS + (s % kStages) * Lay::kStage, xbuf = sbuf + (2 + hs) * kRegion;
      const uint32_t* w2 = sW2 + (s % kSlices) * (kS / 2);
      uint32_t af[4][4];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        ldsm_x4_t(af[kk], xbuf + wg::sw128_offset(16 * kk + aq.r, 16 * warp + aq.c, kS));
        // a fragment register holds tokens (2t, 2t + 1) of one row: one packed multiply by
        // their weight pair (rounded to T once more than the f32 product, within its rounding)
        const uint32_t wl = w2[8 * kk + tq / 2], wh = w2[8 * kk + 4 + tq / 2];  // tokens of af[0, 1], af[2, 3]
        af[kk][0] = mul2<T>(af[kk][0], wl), af[kk][1] = mul2<T>(af[kk][1], wl);
        af[kk][2] = mul2<T>(af[kk][2], wh), af[kk][3] = mul2<T>(af[kk][3], wh);
      }
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wg::mma_rs<T, 1>(acc, af[kk], wg::sw128_desc(sbuf + kk * 2048, kRegion));
      wg::commit();  // (waited for at the next slice or the next chunk's boundary)
    }
  }

  wg::wait<0>();
  wg::fence_acc(acc);
  if (d.final_states) {
    float* fs = d.final_states + ((int64_t(b) * d.H + h) * d.P + prow) * d.N + n0 + tq;
#pragma unroll
    for (int i = 0; i < 2 * kNW / 4; ++i) {
      const int dp = 8 * ((i >> 1) & 1), dn = 8 * (i >> 2) + (i & 1);
      if (prow + dp < d.P && n0 + tq + dn < d.N) fs[int64_t(dp) * d.N + dn] = acc[i];
    }
  }
#else
  __trap();  // launched only where the sm_90a code runs (wgmma_available)
#endif
}

namespace {
template <typename T>
void preload_state() {
  preload_kernels<ssd_wg_state_kernel<T, true, 1>, ssd_wg_state_kernel<T, true, 2>, ssd_wg_state_kernel<T, false, 1>>();
}
const bool g_preload = register_wgmma_preload<preload_state<__half>, preload_state<__nv_bfloat16>>();

template <typename T, bool TMA, int HS>
void launch_hs(const Dev& d, float2* scal, int* segs, unsigned* ready, const CUtensorMap& xmap, const CUtensorMap& bmap,
               cudaStream_t stream) {
  const int ntp = (d.P + kS - 1) / kS;
  const dim3 grid((d.NP + kNW - 1) / kNW * ntp, d.H / HS, d.batch);
  constexpr size_t bytes = StateWgSmem<HS>::kBytes;
  set_smem_once<ssd_wg_state_kernel<T, TMA, HS>>(bytes);
  ssd_wg_state_kernel<T, TMA, HS><<<grid, kNT * HS, bytes, stream>>>(d, scal, segs, xmap, bmap, ready);
}

// Two heads per block where a group's heads pair up and the paired grid still gives every SM a
// block (1 × 2048 at 80 heads: 40 pairs, one head per block keeps 80 SMs walking). At 4 × 4096
// the 160 pairs leave 28 SMs walking four heads and 104 SMs two: alone that lost to one head per
// block (H100: states 0.164 vs 0.155 ms), but those 104 SMs then have room for a state-walk output
// block beside the state block, which the per-chunk counters put to work (forward 0.430-0.445 vs
// 0.458 ms). Tensor copies only (with cp.async the pair's kernel spills at its 128-register cap).
bool pair_heads(const Dev& d) {
  const int ntp = (d.P + kS - 1) / kS, ntn = (d.NP + kNW - 1) / kNW;
  return d.hpg % 2 == 0 && int64_t(ntn) * ntp * (d.H / 2) * d.batch >= sm_count();
}

}  // namespace

template <typename T>
bool launch_state_wgmma(const Dev& d, float2* scal, int* segs, unsigned* ready, cudaStream_t stream) {
  if (!wgmma_available()) return false;
  // Bulk tensor copies where the driver encodes the maps (16-byte aligned rows and strides: P and N
  // multiples of 8); the same kernel with cp.async otherwise.
  constexpr bool bf16 = std::is_same_v<T, __nv_bfloat16>;
  CUtensorMap xmap{}, bmap{};
  const bool tma = encode_forward_maps(d, bf16, &xmap, nullptr, &bmap, nullptr, nullptr);
  if (!tma)
    launch_hs<T, false, 1>(d, scal, segs, ready, xmap, bmap, stream);
  else if (pair_heads(d))
    launch_hs<T, true, 2>(d, scal, segs, ready, xmap, bmap, stream);
  else
    launch_hs<T, true, 1>(d, scal, segs, ready, xmap, bmap, stream);
  return true;
}

template bool launch_state_wgmma<__half>(const Dev&, float2*, int*, unsigned*, cudaStream_t);
template bool launch_state_wgmma<__nv_bfloat16>(const Dev&, float2*, int*, unsigned*, cudaStream_t);

}  // namespace ss::cuda::ssd
