// The SSD forward's output stage on Hopper warpgroup products (wgmma, sm_90a): the same
// algorithm, grid, tiles and rounding points as ssd_mma_out_kernel (ssd_fwd_mma.cu, whose
// comments give the decay factoring), with every matrix product one wgmma per 16-deep k step:
//   C·H_inᵀ   — A (C rows) and B (H_in) from 128-byte-swizzled shared memory (K-major),
//   (CB∘L)·X  — A (the masked, scaled C·Bᵀ fragments) from registers, B (the x slice) from
//               swizzled shared memory (N-major).
// A block's HB heads are HB warpgroups (128 threads each, one head per warpgroup); warp w of a
// warpgroup owns rows 16·w .. of the 64-row tile, exactly as in the mma.sync kernel, so the
// fragment code (masks, factors, epilogue) is shared. Where the mma.sync kernel spent four
// ldmatrix and eight mma per 16 × 64 × 16 step and warp, a warpgroup issues one instruction
// per 64 × 64 × 16 step; the products run asynchronously while the warps build the next
// A fragments. The tiles come by bulk tensor copies (TMA, four tensor maps per call) issued by one
// thread — cp.async where the maps don't encode —; one barrier per slice: slice j + 1 is copied,
// into the buffer of slice j − 1, once every warpgroup has waited for slice j − 1's products at
// slice j's barrier. Element-wise work in T pairs where it feeds a product (the column and decay
// factors multiply the C·Bᵀ fragments by packed bf16 / f16 products: one rounding of the factor
// more than the mma.sync kernel's f32 products, inside the operands' own rounding).
// (Measured on the H100 and lost: four heads per block, a persistent grid prefetching the next
// item's tiles, H_in multicast to clusters of the four row-tile blocks — bench/NOTES.md.)
#include <cstring>
#include "cuda/check.cuh"
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
constexpr int kS = kFwdSlice;      // rows of a tile, tokens of a slice
constexpr int kSlices = kQ / kS;
constexpr int kNT = 128;           // one warpgroup per head
constexpr int kRegion = kS * 128;  // bytes of one 64-column SW128 region of a 64-row tile

__host__ __device__ constexpr size_t align1024(size_t v) { return (v + 1023) / 1024 * 1024; }

// Shared memory (byte offsets from a 1024-byte aligned base): the copy barriers (TMA: group 0 and
// the two x buffers), then the work item's tiles: C rows (SW128, ⌈NP/64⌉ regions, shared by the
// block's heads), then per head H_in, two x slices, z (SW128), the per-token (cs, dt'), segments
// and column factors of the chunk. `bytes` includes the slack to align the dynamic shared memory.
struct WgOutSmem {
  int nk;  // 64-column regions of dstate
  size_t sC, sH, sX, sZ, sS, sSeg, sW, head, tiles, bytes;  // sC .. sW relative to the tiles' base
  __host__ __device__ WgOutSmem(int NP, int HB) {
    nk = (NP + 63) / 64;
    const size_t nTile = size_t(nk) * kRegion;
    sC = 0;
    const size_t base = nTile;
    size_t o = 0;
    sH = o, o += nTile;
    sX = o, o += 2 * kRegion;
    sZ = o, o += kRegion;
    sS = o, o = align128(o + size_t(kQ) * 8);
    sSeg = o, o = align128(o + size_t(kQ) * 4);
    sW = o, o = align128(o + size_t(kQ - kS) * 2);  // T pairs
    head = align1024(o);
    sH += base, sX += base, sZ += base, sS += base, sSeg += base, sW += base;
    tiles = base + HB * head;
    bytes = 1024 + tiles + 1024;
  }
};

// A block's work item: row tile r of chunk c of batch b, heads hb·HB .., headdim tile pt.
struct Item {
  int r, hb, pt, c, b;
};

}  // namespace

// The output kernel's tensor maps (TMA): x and z as (P, H, L, batch), C as (N, G, L, batch), the
// chunk states as (NP, batch·H·nc·PP); 64 × 64 boxes.
struct OutMaps {
  CUtensorMap x, z, C, St;
};

// One block per work item (kSlices·⌈P/64⌉·H/HB per (chunk, batch)), 128·HB threads (see
// ssd_mma_out_kernel). TMA: the tiles come by bulk tensor copies issued by thread 0, completing
// on three barriers (group 0: C rows, H_in, z, slices 0 and 1; then one per x buffer); else every
// thread copies with cp.async.
template <typename T, int HB, bool TMA>
__global__ void __launch_bounds__(kNT * HB, HB == 2 ? 2 : 3)
    ssd_wg_out_kernel(Dev d, const uint4* cbf, const float2* scal, const int* segs, const __grid_constant__ OutMaps maps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int NT = kNT * HB;
  constexpr float kLog2e = 1.4426950408889634f;  // the staged cumulative sums are in log2 units
  const int tid = threadIdx.x, lane = tid & 31, hs = tid / kNT, ht = tid % kNT, w = ht >> 5;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  const WgOutSmem lay(d.NP, HB);
  const int NP = d.NP, ncols = lay.nk * 64;
  const int64_t xs = d.x_str.token, zs = d.z_str.token, cstr = d.C_str.token;
  const uint32_t aBar = smem_addr(smem), aTiles = aBar + 1024;
  // Barrier i (0: group 0, 1 / 2: x buffer 0 / 1); the phase a wait expects: group 0 and x buffer
  // 0 are used once, x buffer 1 by slices 1 and 3.
  auto bar = [&](int i) { return aBar + 8 * i; };
  Item it;
  {
    const int ntp = (d.P + kS - 1) / kS, nhb = d.H / HB, gx = kSlices * ntp * nhb;
    const int x = blockIdx.x % gx, rest = blockIdx.x / gx;
    it.r = kSlices - 1 - x % kSlices;  // heaviest row tiles first
    it.hb = (x / kSlices) % nhb, it.pt = (x / kSlices) / nhb;
    it.c = rest % d.nc, it.b = rest / d.nc;
  }
  if (it.r * kS >= min(kQ, d.L - it.c * kQ)) return;  // rows past the sequence
  if (TMA && tid == 0) {
    // group 0 (C rows; per head H_in, z, slice 0) and slice 1, by thread 0
#pragma unroll
    for (int k = 0; k < 3; ++k) mbar_init(bar(k), 1);
    mbar_init_fence();
    const int t0 = it.c * kQ, g = it.hb * HB / d.hpg, p0 = it.pt * kS;
    const uint32_t bytes = lay.nk * kRegion + HB * ((lay.nk + 2) * kRegion) - (d.z ? 0 : HB * kRegion);
    mbar_arrive_expect_tx(bar(0), bytes);
    for (int k = 0; k < lay.nk; ++k)
      tma::load_4d(aTiles + lay.sC + k * kRegion, &maps.C, 64 * k, g, t0 + it.r * kS, it.b, bar(0));
    for (int hh = 0; hh < HB; ++hh) {
      const uint32_t hd = aTiles + hh * lay.head;
      const int head = it.hb * HB + hh;
      const int row = ((it.b * d.H + head) * d.nc + it.c) * d.PP + p0;
      for (int k = 0; k < lay.nk; ++k) tma::load_2d(hd + lay.sH + k * kRegion, &maps.St, 64 * k, row, bar(0));
      if (d.z) tma::load_4d(hd + lay.sZ, &maps.z, p0, head, t0 + it.r * kS, it.b, bar(0));
      tma::load_4d(hd + lay.sX, &maps.x, p0, head, t0, it.b, bar(0));
    }
    if (it.r >= 1) {
      mbar_arrive_expect_tx(bar(2), HB * kRegion);
      for (int hh = 0; hh < HB; ++hh)
        tma::load_4d(aTiles + hh * lay.head + lay.sX + kRegion, &maps.x, p0, it.hb * HB + hh, t0 + kS, it.b, bar(2));
    }
  }
  if (TMA) __syncthreads();  // the barriers are initialised before anyone waits on them
  const int r = it.r, hb = it.hb, pt = it.pt, c = it.c, b = it.b;
  const int t0 = c * kQ, q = min(kQ, d.L - t0);
  const int h = hb * HB + hs, g = h / d.hpg;  // the block's heads share g
  unsigned char* tiles = smem + 1024;
  unsigned char* hsm = tiles + hs * lay.head;  // this head's region
  T* sC = reinterpret_cast<T*>(tiles + lay.sC);
  T* sH = reinterpret_cast<T*>(hsm + lay.sH);
  T* sX = reinterpret_cast<T*>(hsm + lay.sX);
  T* sZ = reinterpret_cast<T*>(hsm + lay.sZ);
  float2* sS = reinterpret_cast<float2*>(hsm + lay.sS);
  int* sSeg = reinterpret_cast<int*>(hsm + lay.sSeg);
  uint32_t* sW2 = reinterpret_cast<uint32_t*>(hsm + lay.sW);
  const int p0 = pt * kS, pw = min(kS, d.P - p0);
  const int rv = min(kS, q - r * kS);
  const T* xc = static_cast<const T*>(d.x) + d.x_str.at(b, t0) + int64_t(h) * d.P + p0;
  const T* Cc = static_cast<const T*>(d.C) + d.C_str.at(b, t0) + int64_t(g) * d.N;
  const T* zc = d.z ? static_cast<const T*>(d.z) + d.z_str.at(b, t0) + int64_t(h) * d.P + p0 : nullptr;
  const uint32_t aC = smem_addr(sC), aH = smem_addr(sH), aX = smem_addr(sX);
  const uint32_t aX0 = smem_addr(tiles + lay.sX);  // head 0's x buffers (thread 0 copies for every head)

  // Slice j ≥ 2 (of every head of the block) into buffer j & 1.
  auto load_slice = [&](int j) {
    if (TMA) {
      if (tid == 0) {
        mbar_arrive_expect_tx(bar(1 + (j & 1)), HB * kRegion);
#pragma unroll
        for (int hh = 0; hh < HB; ++hh)
          tma::load_4d(aX0 + hh * lay.head + (j & 1) * kRegion, &maps.x, p0, hb * HB + hh, t0 + j * kS, b,
                       bar(1 + (j & 1)));
      }
      return;
    }
    copy_tile_sw128<kNT>(ht, reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(sX) + (j & 1) * kRegion),
                         xc + int64_t(j) * kS * xs, xs, min(kS, q - j * kS), kS, pw, kS);
  };
  if (!TMA) {  // group 0: C rows, H_in, z, slice 0; group 1: slice 1
    copy_tile_sw128<NT>(tid, sC, Cc + int64_t(r) * kS * cstr, cstr, rv, kS, d.N, ncols);
    const T* hin = static_cast<const T*>(d.St) + ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP + int64_t(p0) * NP;
    copy_tile_sw128<kNT>(ht, sH, hin, NP, kS, kS, NP, ncols);
    if (zc) copy_tile_sw128<kNT>(ht, sZ, zc + int64_t(r) * kS * zs, zs, rv, kS, pw, kS);
    load_slice(0);
    __pipeline_commit();
    if (r >= 1) load_slice(1);
    __pipeline_commit();
  }

  // The chunk's scalars up to this tile's last row, and the earlier tokens' column factors
  // (as T pairs: the A fragments of an earlier slice are scaled two tokens per instruction),
  // two tokens per thread and step.
  const int64_t so = (int64_t(b) * d.H + h) * d.Lpad + t0;
  const float cs_ref = r ? __ldg(&scal[so + r * kS - 1].x) : 0.f;
  const int seg_ref = (r && segs) ? __ldg(segs + so + r * kS - 1) : 0;
  for (int i2 = ht; i2 < (r + 1) * kS / 2; i2 += kNT) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(scal + so) + i2);  // (cs, dt') of two tokens
    const int2 sg = segs ? make_int2(__ldg(segs + so + 2 * i2), __ldg(segs + so + 2 * i2 + 1)) : make_int2(0, 0);
    reinterpret_cast<float4*>(sS)[i2] = make_float4(v.x * kLog2e, v.y, v.z * kLog2e, v.w);  // cs in log2 units
    reinterpret_cast<int2*>(sSeg)[i2] = sg;
    if (2 * i2 < r * kS)
      sW2[i2] = pack2<T>(sg.x == seg_ref ? __expf(cs_ref - v.x) * v.y : 0.f, sg.y == seg_ref ? __expf(cs_ref - v.z) * v.w : 0.f);
  }
  const float e_ref = seg_ref == 0 ? __expf(cs_ref) : 0.f;

  // This warp's C·Bᵀ fragments: token tiles ≤ its row tile 4·r + w.
  const int mt = 4 * r + w;
  const uint4* cbw = cbf + (((int64_t(b) * d.nc + c) * d.G + g) * kFwdTiles16 + mt) * kFwdTiles16 * 32 + lane;
  uint4 cb[4];

  const int row_lo = r * kS + 16 * w + (lane >> 2), row_hi = row_lo + 8;  // this lane's rows (chunk positions)
  const int tq = 2 * (lane & 3);                                        // its first column in a 16×8 tile

  float acc[32];
  // C·Bᵀ fragments of slice j (token tiles 4·j + st ≤ mt), loaded a slice ahead: in flight
  // through the previous slice's products and barrier.
  auto load_cb = [&](int j) {
#pragma unroll
    for (int st = 0; st < 4; ++st)
      if (4 * j + st <= mt) cb[st] = __ldg(cbw + (4 * j + st) * 32);
  };
  load_cb(0);
  for (int j = 0; j <= r; ++j) {
    if (j > 0) wg::wait<0>();  // slice j − 1's products are done: its buffer is free after the barrier
    if (TMA) {
      mbar_wait(bar(j == 0 ? 0 : 1 + (j & 1)), j == 3);  // group 0 (C rows, H_in, z, slice 0) / slice j has landed
    } else if (j == 0) {
      __pipeline_wait_prior(1);  // group 0 has landed
    } else {
      __pipeline_wait_prior(0);  // slice j has landed
    }
    wg::fence_proxy_async();  // ... visible to the tensor cores' reads
    __syncthreads();
    if (j > 0) {
      if (j + 1 <= r) load_slice(j + 1);  // into the buffer of slice j − 1
      if (!TMA) __pipeline_commit();
    }
    if (j == 0) {
      // C·H_inᵀ (H_in stored [p][n]: B as N × K, K-major), into fresh accumulators.
      wg::fence();
      for (int kk = 0; kk < NP / 16; ++kk) {
        const uint32_t off = (kk >> 2) * kRegion + (kk & 3) * 32;
        wg::mma_ss<T, 0, 0>(acc, wg::sw128_desc(aC + off), wg::sw128_desc(aH + off), kk > 0);
      }
      wg::commit();
    }
    // The A fragments of slice j (built while the products before them run).
    uint32_t a[4][4];
    float rf_lo = 0.f, rf_hi = 0.f;
    if (j < r) {
      // An earlier slice: the C·Bᵀ fragments scaled by the column factors w·dt' (in T: one
      // rounding of the factor more than in f32, within the operands' own rounding).
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint32_t wl = sW2[(j * kS + 16 * kk + tq) / 2], wh = sW2[(j * kS + 16 * kk + 8 + tq) / 2];
        a[kk][0] = mul2<T>(cb[kk].x, wl), a[kk][1] = mul2<T>(cb[kk].y, wl);
        a[kk][2] = mul2<T>(cb[kk].z, wh), a[kk][3] = mul2<T>(cb[kk].w, wh);
      }
    } else {
      // The tile's own slice: (CB ∘ L), exp(cs_t − cs_s)·dt'_s where s ≤ t on the same segment,
      // else 0 (selected, never multiplied: the exponent is positive above the diagonal); token
      // tiles past the warp's rows are zero.
      const float cs_lo = sS[row_lo].x, cs_hi = sS[row_hi].x, cs_ref2 = cs_ref * kLog2e;  // (log2 units)
      const int seg_lo = sSeg[row_lo], seg_hi = sSeg[row_hi];
      rf_lo = seg_lo == seg_ref ? exp2f(cs_lo - cs_ref2) : 0.f;
      rf_hi = seg_hi == seg_ref ? exp2f(cs_hi - cs_ref2) : 0.f;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        if (kk <= w) {
          const uint32_t u[4] = {cb[kk].x, cb[kk].y, cb[kk].z, cb[kk].w};
#pragma unroll
          for (int hf = 0; hf < 2; ++hf) {  // token columns 16·kk + 8·hf + tq, + 1
            const int s0 = j * kS + 16 * kk + 8 * hf + tq;
            // the factors of rows row_lo (x, y) and row_hi (z, w), applied as T pairs
            const float4 f = masked_weights(sS, sSeg, s0, row_lo, row_hi, seg_lo, seg_hi, cs_lo, cs_hi);
            a[kk][2 * hf] = mul2<T>(u[2 * hf], pack2<T>(f.x, f.y));
            a[kk][2 * hf + 1] = mul2<T>(u[2 * hf + 1], pack2<T>(f.z, f.w));
          }
        } else {
#pragma unroll
          for (int e = 0; e < 4; ++e) a[kk][e] = 0u;
        }
      }
    }
    if (j < r) load_cb(j + 1);  // (cb is consumed: the A fragments hold slice j)
    if (j == 0 || j == r) {  // the accumulators are scaled: every product so far must be done
      wg::wait<0>();
      wg::fence_acc(acc);
      if (j == 0)
#pragma unroll
        for (int i = 0; i < 32; ++i) acc[i] *= e_ref;
      if (j == r)  // the row factors of everything so far
#pragma unroll
        for (int i = 0; i < 32; ++i) acc[i] *= (i & 2) ? rf_hi : rf_lo;
    }
    wg::fence();
    const uint32_t xb = aX + (j & 1) * kRegion;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wg::mma_rs<T, 1>(acc, a[kk], wg::sw128_desc(xb + kk * 2048));
    wg::commit();  // (waited for at the next slice or before the epilogue)
  }
  wg::wait<0>();
  wg::fence_acc(acc);

  // Epilogue: + D·x (x of these rows is slice r's buffer, swizzled), gate, store.
  const unsigned char* Xr = reinterpret_cast<const unsigned char*>(sX) + (r & 1) * kRegion;
  // (row 16·w + g + 8·hf has swizzle phase g = lane / 4: its column piece ni lies at ni ^ g)
  const int gq = lane >> 2;
  const uint32_t rb = (16 * w + gq) * 128 + tq * 2;
  store_y<T>(d, acc, Xr, zc ? reinterpret_cast<const unsigned char*>(sZ) : nullptr,
             [&](int hf, int ni) { return rb + uint32_t(hf * 1024 + ((ni ^ gq) << 4)); }, b, h, t0, r, p0, pw, rv, w,
             lane);
#else
  __trap();  // launched only where the sm_90a code runs (wgmma_available)
#endif
}

bool wgmma_available() {
  static const bool built = std::strstr(STATESPACE_CUDA_ARCHS, "90a") != nullptr;
  return built && cuda::compute_capability() == 90;
}

namespace {

template <typename T>
void preload_wg() {
  preload_kernels<ssd_wg_out_kernel<T, 1, true>, ssd_wg_out_kernel<T, 2, true>, ssd_wg_out_kernel<T, 1, false>,
                  ssd_wg_out_kernel<T, 2, false>>();
}
const bool g_preload = register_wgmma_preload<preload_wg<__half>, preload_wg<__nv_bfloat16>>();

template <typename T, int HB, bool TMA>
bool launch_variant(const Dev& d, const uint4* cbf, const float2* scal, const int* segs, const OutMaps& maps,
                    cudaStream_t stream) {
  const size_t bytes = WgOutSmem(d.NP, HB).bytes;
  if (d.hpg % HB != 0 || bytes > kMaxSmem) return false;
  const int ntp = (d.P + kS - 1) / kS;
  const int items = kSlices * ntp * (d.H / HB) * d.nc * d.batch;
  set_smem_once<ssd_wg_out_kernel<T, HB, TMA>>(bytes);
  ssd_wg_out_kernel<T, HB, TMA><<<items, HB * kNT, bytes, stream>>>(d, cbf, scal, segs, maps);
  return true;
}

template <typename T, bool TMA>
bool launch_tma(const Dev& d, const uint4* cbf, const float2* scal, const int* segs, const OutMaps& maps,
                cudaStream_t stream) {
  return launch_variant<T, 2, TMA>(d, cbf, scal, segs, maps, stream) ||
         launch_variant<T, 1, TMA>(d, cbf, scal, segs, maps, stream);
}

}  // namespace

bool encode_forward_maps(const Dev& d, bool bf16, CUtensorMap* x, CUtensorMap* z, CUtensorMap* B, CUtensorMap* C,
                         CUtensorMap* St) {
  const uint32_t box4[4] = {64, 1, 64, 1}, box2[2] = {64, 64};
  // (row, head or group, token, batch), strided as the inputs are (rows contiguous)
  auto rows4 = [&](CUtensorMap* map, const void* base, int row, int rows, const SsdTokenStrides& s) {
    const uint64_t dims[4] = {uint64_t(row), uint64_t(rows), uint64_t(d.L), uint64_t(d.batch)};
    const uint64_t strides[3] = {uint64_t(row) * 2, uint64_t(s.token) * 2, uint64_t(s.batch) * 2};
    return encode_tile_map_16_cached(map, bf16, base, 4, dims, strides, box4);
  };
  const uint64_t sd[2] = {uint64_t(d.NP), uint64_t(d.batch) * d.H * d.nc * d.PP};
  const uint64_t sst[1] = {uint64_t(d.NP) * 2};
  return (!x || rows4(x, d.x, d.P, d.H, d.x_str)) && (!z || !d.z || rows4(z, d.z, d.P, d.H, d.z_str)) &&
         (!B || rows4(B, d.B, d.N, d.G, d.B_str)) && (!C || rows4(C, d.C, d.N, d.G, d.C_str)) &&
         (!St || encode_tile_map_16_cached(St, bf16, d.St, 2, sd, sst, box2));
}

template <typename T>
bool launch_out_wgmma(const Dev& d, const void* cb, const float2* scal, const int* segs, cudaStream_t stream) {
  if (!wgmma_available()) return false;
  const uint4* cbf = static_cast<const uint4*>(cb);
  // Bulk tensor copies where the driver encodes the maps (16-byte aligned rows, addresses and
  // strides: P and N multiples of 8, views 16-byte aligned); the same kernel with cp.async otherwise.
  constexpr bool bf16 = std::is_same_v<T, __nv_bfloat16>;
  OutMaps maps{};
  const bool tma = encode_forward_maps(d, bf16, &maps.x, &maps.z, nullptr, &maps.C, &maps.St);
  return tma ? launch_tma<T, true>(d, cbf, scal, segs, maps, stream) : launch_tma<T, false>(d, cbf, scal, segs, maps, stream);
}

template bool launch_out_wgmma<__half>(const Dev&, const void*, const float2*, const int*, cudaStream_t);
template bool launch_out_wgmma<__nv_bfloat16>(const Dev&, const void*, const float2*, const int*, cudaStream_t);

}  // namespace ss::cuda::ssd
