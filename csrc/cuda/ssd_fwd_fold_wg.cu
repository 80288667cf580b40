// The SSD forward's output stage as a 64-token state walk inside the chunk (Hopper warpgroup
// products, sm_90a, bulk tensor copies): one block per (batch, chunk, HB heads of a group, 64-wide
// headdim tile) walks the chunk's row tiles r = 0, 1, ... in order, carrying the state entering
// the tile, S_r (64 headdim rows × NP, T, in shared memory; S_0 = the chunk's incoming state H_in
// from the state kernel):
//   Y_r     = rf ∘ (C_r · S_rᵀ) + (C_r·B_rᵀ ∘ L) · X_r           (then + D·x, gated, stored)
//   S_{r+1} = dec_r · S_r + (w ∘ X_r)ᵀ · B_r
// with ref = the token before the tile (cs_ref = 0, seg_ref = 0 before the chunk), end = the
// tile's last token, cs / seg the chunk's cumulative sums of dt'·A and segment numbers:
//   rf_t  = exp(cs_t − cs_ref)·[seg_t = seg_ref],   L_ts = exp(cs_t − cs_s)·dt'_s·[s ≤ t, seg_s = seg_t],
//   dec_r = exp(cs_end − cs_ref)·[seg_end = seg_ref], w_s = exp(cs_end − cs_s)·dt'_s·[seg_s = seg_end].
// Where the tile-parallel kernel (ssd_fwd_out_wg.cu) reads, per 64-row tile, H_in and every x
// slice up to its rows and a precomputed C·Bᵀ for each, this reads every C, B, x, z tile of the
// chunk once and H_in once per head, and computes the diagonal C_r·B_rᵀ itself (no C·Bᵀ kernel):
// ≈ half the L2 reads per chunk. Products (one warpgroup per head, warp w owning rows 16·w ..):
//   C_r·S_rᵀ, C_r·B_rᵀ — A (C rows) and B (S_r [p][n], B_r [token][n]) K-major from swizzled smem;
//   (C·Bᵀ ∘ L)·X_r      — A from registers (the C·Bᵀ accumulators masked in f32, packed), B = x;
//   (w ∘ X_r)ᵀ·B_r      — A from registers (ldmatrix.trans of x, scaled by the weights as T
//                         pairs), B = B_r N-major, accumulated onto dec_r·S_r loaded from smem.
// Rounding: the operands are T, the state is rounded to T at every tile edge (the tile-parallel
// kernel: at every chunk edge), every sum is f32.
// The tiles of row tile r + 1 (C, B; x, z per head) are copied by thread 0 once every warpgroup
// is done with those of r (one barrier per tile; two blocks per SM cover each other's copies);
// x and z, the ones that come from DRAM, were prefetched into L2 a tile earlier, and the tile's
// first products wait only for C and B.
// Launched as a programmatic dependent of the state kernel: a block copies its first tiles, then
// waits until the state kernel has stored its chunk's H_in and scalars (per-chunk counters, see
// signal_ready / wait_ready), so the walk runs beside the state kernel where the SMs have room.
// (H100, bf16 4 × 4096 × 80 × 64, dstate 128: outputs 0.293-0.296 ms against 0.322-0.326 for the
// C·Bᵀ and tile-parallel output kernels; forward 0.430-0.445 ms with the overlap — bench/NOTES.md.)
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

constexpr int kQ = kChunkedQ;
constexpr int kS = kFwdSlice;      // rows of a tile
constexpr int kNT = 128;           // one warpgroup per head
constexpr int kRegion = kS * 128;  // bytes of one 64-column SW128 region of a 64-row tile

__host__ __device__ constexpr size_t align1024(size_t v) { return (v + 1023) / 1024 * 1024; }

// Shared memory (byte offsets from a 1024-byte aligned base): the copy barriers, then C_r and B_r
// (NK regions each, shared by the block's heads), then per head (kHead bytes from kHeads): S_r (NK
// regions, at the head's start), x_r, z_r (one region each), the chunk's (cs·log2 e, dt') and
// segments. `bytes` includes the alignment slack.
template <int NK, int HB>
struct FoldSmem {
  static constexpr size_t kC = 1024, kB = kC + NK * kRegion, kHeads = kB + NK * kRegion;
  static constexpr size_t kX = NK * kRegion, kZ = kX + kRegion, kScal = kZ + kRegion,
                          kSeg = kScal + size_t(kQ) * 8, kHead = align1024(kSeg + size_t(kQ) * 4);
  static constexpr size_t kBytes = kHeads + HB * kHead + 1024;
};

}  // namespace

// The fold kernel's tensor maps (TMA): x and z as (P, H, L, batch), B and C as (N, G, L, batch),
// the chunk states as (NP, batch·H·nc·PP); 64 × 64 boxes.
struct FoldMaps {
  CUtensorMap x, z, B, C, St;
};

// grid nc·batch·⌈P/64⌉·H/HB (blocks of one (batch, chunk) adjacent: they share C and B through
// L2), 128·HB threads.
// NK: 64-column regions of dstate (NP ≤ 64·NK).
template <typename T, int NK, int HB>
__global__ void __launch_bounds__(kNT * HB, HB == 2 ? 2 : 3)
    ssd_fold_kernel(Dev d, const float2* scal, const int* segs, const unsigned* ready,
                    const __grid_constant__ FoldMaps maps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Lay = FoldSmem<NK, HB>;
  constexpr float kLog2e = 1.4426950408889634f;  // the staged cumulative sums are in log2 units
  const int tid = threadIdx.x, lane = tid & 31, hs = tid / kNT, ht = tid % kNT, w = ht >> 5;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  const uint32_t aBase = smem_addr(smem);
  // the row tile's C and B; its x and z (needed from the third product on); the heads' H_in
  const uint32_t barA = aBase, barX = aBase + 8, barH = aBase + 16;

  const int ntp = (d.P + kS - 1) / kS, nhb = d.H / HB;
  const int hb = blockIdx.x % nhb, pt = (blockIdx.x / nhb) % ntp, rest = blockIdx.x / (nhb * ntp);
  // chunks in the state kernel's order (with readiness counters, the first ones are ready first)
  const int b = rest % d.batch, c = rest / d.batch;
  const int t0 = c * kQ, q = min(kQ, d.L - t0), R = (q + kS - 1) / kS;  // row tiles with rows
  const int h = hb * HB + hs, g = h / d.hpg;  // the block's heads share g
  const int p0 = pt * kS, pw = min(kS, d.P - p0);

  const uint32_t aC = aBase + Lay::kC, aB = aBase + Lay::kB;
  const uint32_t aHead0 = aBase + Lay::kHeads, aHead = aHead0 + hs * Lay::kHead;
  const uint32_t aS = aHead, aX = aHead + Lay::kX;
  unsigned char* head = smem + Lay::kHeads + hs * Lay::kHead;
  const unsigned char* sX = head + Lay::kX;
  const unsigned char* sZ = head + Lay::kZ;
  float2* sScal = reinterpret_cast<float2*>(head + Lay::kScal);
  int* sSeg = reinterpret_cast<int*>(head + Lay::kSeg);

  // Row tile r's C, B (on barA) and every head's x, z (on barX), by thread 0.
  auto load_tile = [&](int r) {
    const int row = t0 + r * kS;
    mbar_arrive_expect_tx(barA, 2 * NK * kRegion);
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      tma::load_4d(aC + k * kRegion, &maps.C, 64 * k, g, row, b, barA);
      tma::load_4d(aB + k * kRegion, &maps.B, 64 * k, g, row, b, barA);
    }
    mbar_arrive_expect_tx(barX, HB * (d.z ? 2 : 1) * kRegion);
#pragma unroll
    for (int j = 0; j < HB; ++j) {
      const uint32_t hd = aHead0 + j * Lay::kHead;
      tma::load_4d(hd + Lay::kX, &maps.x, p0, hb * HB + j, row, b, barX);
      if (d.z) tma::load_4d(hd + Lay::kZ, &maps.z, p0, hb * HB + j, row, b, barX);
    }
  };
  // Row tile r's x and z into L2 (read from DRAM while tile r − 1 computes; its load_tile then
  // finds them there).
  auto prefetch_tile = [&](int r) {
    const int row = t0 + r * kS;
#pragma unroll
    for (int j = 0; j < HB; ++j) {
      tma::prefetch_4d(&maps.x, p0, hb * HB + j, row, b);
      if (d.z) tma::prefetch_4d(&maps.z, p0, hb * HB + j, row, b);
    }
  };
  if (tid == 0) {
    mbar_init(barA, 1);
    mbar_init(barX, 1);
    mbar_init(barH, 1);
    mbar_init_fence();
    load_tile(0);
    if (R > 1) prefetch_tile(1);
  }
  // Launched as a programmatic dependent of the state kernel: the inputs above are copied before
  // the wait, the chunk states and scalars after it — after the state kernel has stored those of
  // this chunk (ready: counters per chunk; the state kernel runs on), or after all of it.
  if (ready) {
    if (tid == 0)
      for (int j = 0; j < HB; ++j) wait_ready(ready + (int64_t(b) * d.H + hb * HB + j) * d.nc + c, unsigned(ntp));
    __syncthreads();
  } else {
    pdl_wait();
  }
  if (tid == 0) {
    mbar_arrive_expect_tx(barH, HB * NK * kRegion);
#pragma unroll
    for (int j = 0; j < HB; ++j) {
      const int srow = ((b * d.H + hb * HB + j) * d.nc + c) * d.PP + p0;
#pragma unroll
      for (int k = 0; k < NK; ++k)
        tma::load_2d(aHead0 + j * Lay::kHead + k * kRegion, &maps.St, 64 * k, srow, barH);
    }
  }
  // The chunk's scalars (cs in log2 units: the factors are exp2 of differences), two tokens per
  // thread and step: every token of the row tiles with rows (past L: dt' = 0, cs constant).
  {
    const int64_t so = (int64_t(b) * d.H + h) * d.Lpad + t0;
    for (int i2 = ht; i2 < R * kS / 2; i2 += kNT) {
      const float4 v = __ldg(reinterpret_cast<const float4*>(scal + so) + i2);
      reinterpret_cast<float4*>(sScal)[i2] = make_float4(v.x * kLog2e, v.y, v.z * kLog2e, v.w);
      reinterpret_cast<int2*>(sSeg)[i2] =
          segs ? make_int2(__ldg(segs + so + 2 * i2), __ldg(segs + so + 2 * i2 + 1)) : make_int2(0, 0);
    }
  }
  __syncthreads();  // the barriers are initialised, the scalars staged

  const int gq = lane >> 2, tq = 2 * (lane & 3);
  const RC aq = a_addr_t(lane);  // ldmatrix.trans addresses (token row, p column) of the (w ∘ X)ᵀ fragments
  // this lane's pair of S_r (or of any [64][NK·64] SW128 tile) at rows 16·w + gq + 8·hf, columns
  // 64·k + 8·ni + tq, + 1
  const uint32_t rb = (16 * w + gq) * 128 + tq * 2;
  auto pair_off = [&](int k, int hf, int ni) { return uint32_t(k * kRegion) + rb + uint32_t(hf * 1024 + ((ni ^ gq) << 4)); };
  // S_{r+1} goes back to shared memory as 8 × 8 matrices (stmatrix: one instruction per four
  // pairs; matrix j of step q is (hf, ni) = (j % 2, 2q + j / 2)): the row this lane addresses for
  // step q of region k is row 16·w + 8·hf + lane % 8 of matrix lane / 8
  const uint32_t srow = aS + (16 * w + 8 * ((lane >> 3) & 1) + (lane & 7)) * 128;
  auto s_row = [&](int k, int q) { return srow + uint32_t(k * kRegion) + uint32_t(((2 * q + (lane >> 4)) ^ (lane & 7)) << 4); };

  mbar_wait(barH, 0);  // H_in has landed (S_0)
  for (int r = 0; r < R; ++r) {
    mbar_wait(barA, r & 1);  // row tile r's C, B have landed (S_r: H_in, or written below)
    if (tid == 0 && r + 2 < R) prefetch_tile(r + 2);
    // CB = C_r·B_rᵀ, then Y = C_r·S_rᵀ (B_r and S_r stored [·][n]: B operands N × K, K-major), two
    // commit groups: the mask is applied to CB while Y's products run.
    float y[32], cb[32];
    wg::fence();
#pragma unroll
    for (int kk = 0; kk < 4 * NK; ++kk) {
      const uint32_t off = (kk >> 2) * kRegion + (kk & 3) * 32;
      wg::mma_ss<T, 0, 0>(cb, wg::sw128_desc(aC + off), wg::sw128_desc(aB + off), kk > 0);
    }
    wg::commit();
#pragma unroll
    for (int kk = 0; kk < 4 * NK; ++kk) {
      const uint32_t off = (kk >> 2) * kRegion + (kk & 3) * 32;
      wg::mma_ss<T, 0, 0>(y, wg::sw128_desc(aC + off), wg::sw128_desc(aS + off), kk > 0);
    }
    wg::commit();

    // This lane's rows (chunk positions) and the tile's reference / end scalars, meanwhile.
    const int row_lo = r * kS + 16 * w + gq, row_hi = row_lo + 8;
    const float cs_ref = r ? sScal[r * kS - 1].x : 0.f;
    const int seg_ref = r ? sSeg[r * kS - 1] : 0;
    const float cs_lo = sScal[row_lo].x, cs_hi = sScal[row_hi].x;
    const int seg_lo = sSeg[row_lo], seg_hi = sSeg[row_hi];
    const float rf_lo = seg_lo == seg_ref ? exp2f(cs_lo - cs_ref) : 0.f;
    const float rf_hi = seg_hi == seg_ref ? exp2f(cs_hi - cs_ref) : 0.f;

    wg::wait<1>();  // CB is done (Y may still run)
    wg::fence_acc(cb);
    // The A fragments of (CB ∘ L): k step kk covers token columns 16·kk ..; accumulator tile ni =
    // 2·kk + hf holds columns 8·ni + tq, + 1 of rows row_lo (e 0, 1) and row_hi (e 2, 3). Masked
    // entries are selected, never multiplied (the exponent is positive above the diagonal);
    // token tiles past the warp's rows are zero.
    uint32_t a[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      if (kk <= w) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          const int ni = 2 * kk + hf, s0 = r * kS + 8 * ni + tq;
          const float4 f = masked_weights(sScal, sSeg, s0, row_lo, row_hi, seg_lo, seg_hi, cs_lo, cs_hi);
          a[kk][2 * hf] = pack2<T>(cb[4 * ni] * f.x, cb[4 * ni + 1] * f.y);
          a[kk][2 * hf + 1] = pack2<T>(cb[4 * ni + 2] * f.z, cb[4 * ni + 3] * f.w);
        }
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) a[kk][e] = 0u;
      }
    }
    wg::wait<0>();  // Y is done
    wg::fence_acc(y);
#pragma unroll
    for (int i = 0; i < 32; ++i) y[i] *= (i & 2) ? rf_hi : rf_lo;
    // Y += (CB ∘ L)·X_r (x stored [token][p]: B N-major).
    mbar_wait(barX, r & 1);  // row tile r's x, z have landed
    wg::fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wg::mma_rs<T, 1>(y, a[kk], wg::sw128_desc(aX + kk * 2048));
    wg::commit();

    wg::wait<0>();
    wg::fence_acc(y);

    // Epilogue: + D·x, gate, store (x, z of these rows: this tile's, swizzled).
    store_y<T>(d, y, sX, d.z ? sZ : nullptr, [&](int hf, int ni) { return pair_off(0, hf, ni); }, b, h, t0, r, p0, pw,
               min(kS, q - r * kS), w, lane);

    const bool more = r + 1 < R;
    if (more) {
      // S_{r+1} = dec_r·S_r + (w ∘ X_r)ᵀ·B_r. A = (w ∘ X_r)ᵀ: ldmatrix.trans of x, the weights as T
      // pairs (one packed multiply per fragment register: tokens 2t, 2t + 1 of one headdim row).
      const float cs_end = sScal[r * kS + kS - 1].x;
      const int seg_end = sSeg[r * kS + kS - 1];
      const float dec = seg_end == seg_ref ? exp2f(cs_end - cs_ref) : 0.f;
      auto wpair = [&](int s) {  // weights of tokens s, s + 1 as a T pair
        const float4 sc = *reinterpret_cast<const float4*>(sScal + s);
        return pack2<T>(sSeg[s] == seg_end ? exp2f(cs_end - sc.x) * sc.y : 0.f,
                        sSeg[s + 1] == seg_end ? exp2f(cs_end - sc.z) * sc.w : 0.f);
      };
      uint32_t af[4][4];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        ldsm_x4_t(af[kk], aX + wg::sw128_offset(16 * kk + aq.r, 16 * w + aq.c, kS));
        const uint32_t wl = wpair(r * kS + 16 * kk + tq), wh = wpair(r * kS + 16 * kk + 8 + tq);
        af[kk][0] = mul2<T>(af[kk][0], wl), af[kk][1] = mul2<T>(af[kk][1], wl);
        af[kk][2] = mul2<T>(af[kk][2], wh), af[kk][3] = mul2<T>(af[kk][3], wh);
      }
      // Accumulated onto dec_r·S_r (C_r·S_rᵀ is done with it; built after the epilogue, y is dead).
      float st[NK][32];
#pragma unroll
      for (int k = 0; k < NK; ++k)
#pragma unroll
        for (int ni = 0; ni < 8; ++ni)
#pragma unroll
          for (int hf = 0; hf < 2; ++hf) {
            const float2 v = unpack2<T>(*reinterpret_cast<const uint32_t*>(head + pair_off(k, hf, ni)));
            st[k][4 * ni + 2 * hf] = v.x * dec, st[k][4 * ni + 2 * hf + 1] = v.y * dec;
          }
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
#pragma unroll
        for (int k = 0; k < NK; ++k) wg::mma_rs<T, 1>(st[k], af[kk], wg::sw128_desc(aB + k * kRegion + kk * 2048));
      wg::commit();
      wg::wait<0>();
#pragma unroll
      for (int k = 0; k < NK; ++k) {
        wg::fence_acc(st[k]);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          uint32_t v[4];
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int i = 4 * (2 * q + (j >> 1)) + 2 * (j & 1);
            v[j] = pack2<T>(st[k][i], st[k][i + 1]);
          }
          wg::stsm_x4(s_row(k, q), v);
        }
      }
      wg::fence_proxy_async();  // S_{r+1} visible to the tensor cores' reads after the barrier
    }
    __syncthreads();  // every warpgroup is done with row tile r's C, B, x, z; S_{r+1} is complete
    if (more && tid == 0) load_tile(r + 1);  // (x, z prefetched into L2 during tile r − 1)
  }
#else
  __trap();  // launched only where the sm_90a code runs (wgmma_available)
#endif
}

namespace {

template <typename T>
void preload_fold() {
  preload_kernels<ssd_fold_kernel<T, 1, 1>, ssd_fold_kernel<T, 1, 2>, ssd_fold_kernel<T, 2, 1>, ssd_fold_kernel<T, 2, 2>>();
}
const bool g_preload = register_wgmma_preload<preload_fold<__half>, preload_fold<__nv_bfloat16>>();

template <typename T, int NK, int HB>
void launch_fold_hb(const Dev& d, const float2* scal, const int* segs, const unsigned* ready, const FoldMaps& maps,
                    cudaStream_t stream) {
  constexpr size_t bytes = FoldSmem<NK, HB>::kBytes;
  const int ntp = (d.P + kS - 1) / kS;
  set_smem_once<ssd_fold_kernel<T, NK, HB>>(bytes);
  launch_pdl(ssd_fold_kernel<T, NK, HB>, dim3(d.nc * d.batch * ntp * (d.H / HB)), dim3(kNT * HB), bytes, stream, d,
             scal, segs, ready, maps);
}

// Two heads per block (sharing C and B) where a group's heads pair up and the paired grid still
// fills two waves of two blocks per SM (4 × 4096 at 80 heads: 2560 blocks); else one head per
// block, three per SM (1 × 2048: 640 blocks instead of 320).
template <typename T, int NK>
void launch_fold_nk(const Dev& d, const float2* scal, const int* segs, const unsigned* ready, const FoldMaps& maps,
                    cudaStream_t stream) {
  const int64_t pairs = int64_t(d.nc) * d.batch * ((d.P + kS - 1) / kS) * (d.H / 2);
  if (d.hpg % 2 == 0 && pairs >= 4 * int64_t(sm_count()))
    launch_fold_hb<T, NK, 2>(d, scal, segs, ready, maps, stream);
  else
    launch_fold_hb<T, NK, 1>(d, scal, segs, ready, maps, stream);
}

// The maps of this call (through the per-thread cache), or false where they don't encode.
template <typename T>
bool fold_maps(const Dev& d, FoldMaps* maps) {
  return encode_forward_maps(d, std::is_same_v<T, __nv_bfloat16>, &maps->x, &maps->z, &maps->B, &maps->C, &maps->St);
}

}  // namespace

template <typename T>
bool fold_wgmma_fits(const Dev& d) {
  FoldMaps maps;
  return wgmma_available() && d.NP <= 128 && fold_maps<T>(d, &maps);
}

template <typename T>
void launch_fold_wgmma(const Dev& d, const float2* scal, const int* segs, const unsigned* ready, cudaStream_t stream) {
  FoldMaps maps{};
  fold_maps<T>(d, &maps);  // (encoded by fold_wgmma_fits: from the cache)
  if (d.NP <= 64)
    launch_fold_nk<T, 1>(d, scal, segs, ready, maps, stream);
  else
    launch_fold_nk<T, 2>(d, scal, segs, ready, maps, stream);
}

template bool fold_wgmma_fits<__half>(const Dev&);
template bool fold_wgmma_fits<__nv_bfloat16>(const Dev&);
template void launch_fold_wgmma<__half>(const Dev&, const float2*, const int*, const unsigned*, cudaStream_t);
template void launch_fold_wgmma<__nv_bfloat16>(const Dev&, const float2*, const int*, const unsigned*, cudaStream_t);

}  // namespace ss::cuda::ssd
