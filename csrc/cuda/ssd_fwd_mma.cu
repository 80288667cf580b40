// SSD forward for 16-bit inputs on tensor cores (mma.sync m16n8k16, f32 accumulation, operands
// through ldmatrix from padded shared memory), three kernels over 256-token chunks. Where the
// build has sm_90a code and the device runs it, kernels 1 and 3 are replaced by their warpgroup-
// product (wgmma) and bulk-tensor-copy (TMA) versions, ssd_fwd_state_wg.cu and ssd_fwd_out_wg.cu
// (same grids' roles, same rounding points), and kernels 2 and 3 together by the state walk
// inside each chunk of ssd_fwd_fold_wg.cu where dstate ≤ 128 and the tensor maps encode; the
// kernels here are the fallback elsewhere:
//
//  1. ssd_mma_state_kernel — one block per (batch, head, 64×64 tile of the state (headdim × dstate)),
//     walking the whole sequence in 64-token slices (cp.async double buffering). The state lives
//     in the mma accumulators (f32) the whole time; per chunk:
//       chunk scalars (dt', inclusive cumsum of dt'·A, segments; dt of the next chunk prefetched),
//       the state entering the chunk written (as T) to St, then
//       H ← dec·H + Xᵀ·(w ∘ B),  w_s = exp(cs_end − cs_s)·dt'_s (0 off the last segment),
//                                  dec = exp(cs_end) (0 when a sequence restarts inside).
//     So chunk states and the inter-chunk pass are one kernel: no chunk-local state round trip.
//     It also stores (cs, dt') per token (and segments with seqIdx) for kernel 3; finalStates.
//  2. ssd_mma_cb_kernel — C·Bᵀ once per (batch, chunk, group), lower 16×16 tiles, stored as T in
//     mma A-fragment order (a warp reads its 16×16 tile with one coalesced 16-byte load per
//     lane), shared by the group's heads.
//  3. ssd_mma_out_kernel — one block per (batch, chunk, 1 or 2 heads, 64-row tile, 64-wide headdim
//     tile), four warps of 16 rows per head: Y = e_in·(C·H_inᵀ), then for every 64-token slice s
//     at or before the rows, the C·Bᵀ fragments with the decay / causal / segment mask applied
//     (see the kernel), the A operand of Y += (CB ∘ L)·X_s; + D·x, gated by silu(z).
//
// Launch order states, C·Bᵀ, outputs; the C·Bᵀ kernel (independent of the states) is a
// programmatic dependent launch on a small persistent grid that runs in the slots the state
// kernel leaves free, and waits for it only at its end. Accumulator
// tiles go to global memory 16 bytes per lane (mma::quad_transpose): 4-byte fragment stores
// write every 32-byte sector in two halves.
//
// Rounding: the mma operands are T (x·w, C·Bᵀ, the masked C·Bᵀ, the passed states); every sum is f32.
#include <algorithm>
#include "cuda/check.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_fwd_tiles.cuh"
#include "cuda/ssd_launch.h"
#include "cuda/ssd_stages.h"

namespace ss::cuda::ssd {

namespace {

using namespace ss::cuda::mma;

constexpr int kQ = kChunkedQ;      // tokens per chunk
constexpr int kS = kFwdSlice;      // tokens per slice; rows / columns of every tile
constexpr int kSlices = kQ / kS;   // slices per chunk
constexpr int kNT = 128;           // threads per block: 4 warps
constexpr int kLd = kS + 8;        // leading dimension of 64-column tiles (16-byte row skew)

// Shared memory of the state kernel (NW: dstate tile width): double-buffered x and B slices (T),
// per-token weights w, per-warp scan totals.
struct StateSmem {
  int ldB;
  size_t sX, sB, sW, sRed, bytes;
  __host__ __device__ StateSmem(int ts, int NW) {
    ldB = NW + 8;
    size_t o = 0;
    sX = o, o = align128(o + 2 * size_t(kS) * kLd * ts);
    sB = o, o = align128(o + 2 * size_t(kS) * ldB * ts);
    sW = o, o = align128(o + size_t(kQ) * 4);
    sRed = o, o = align128(o + 2 * 8 * 4);  // per-warp totals (≤ 8 warps): cumsum, segment count
    bytes = o;
  }
};

// Shared memory of the C·Bᵀ kernel: the C rows of a row tile, the B rows of one slice.
struct CbSmem {
  int ldN;
  size_t sC, sB, bytes;
  __host__ __device__ CbSmem(int NP, int ts) {
    ldN = NP + 8;
    size_t o = 0;
    sC = o, o = align128(o + size_t(kS) * ldN * ts);
    sB = o, o = align128(o + size_t(kS) * ldN * ts);
    bytes = o;
  }
};
constexpr int kCbPairs = kSlices * (kSlices + 1) / 2;  // (row tile r, slice j ≤ r) pairs of a chunk

// C·Bᵀ in fragment order (T): per (batch, chunk, group), 16 × 16 tiles of 16×16 (row tile mt,
// token tile st ≤ mt), each 32 lanes × 16 bytes: the lane's accumulators of the two 16×8 halves
// as four pairs, i.e. exactly the mma A fragment of the tile.
constexpr int kTiles16 = kFwdTiles16;
__host__ __device__ constexpr int64_t cb_frag_bytes() { return int64_t(kTiles16) * kTiles16 * 32 * 16; }

// Shared memory of the output kernel (NP: dstate padded to 16): C rows (shared by the block's
// heads), then per head H_in, double-buffered x slices, z, the per-token (cs, dt'), segments and
// column factors of the chunk.
struct OutSmem {
  int ldN;
  size_t sC, sH, sX, sZ, sS, sSeg, sW, head, bytes;  // per-head offsets relative to the head's region
  __host__ __device__ OutSmem(int NP, int ts, int HB) {
    ldN = NP + 8;
    const size_t nTile = size_t(kS) * ldN * ts, xTile = size_t(kS) * kLd * ts;
    sC = 0;
    const size_t base = align128(nTile);
    size_t o = 0;
    sH = o, o = align128(o + nTile);
    sX = o, o = align128(o + 2 * xTile);
    sZ = o, o = align128(o + xTile);
    sS = o, o = align128(o + size_t(kQ) * 8);
    sSeg = o, o = align128(o + size_t(kQ) * 4);
    sW = o, o = align128(o + size_t(kQ - kS) * 4);  // tokens before the last row tile
    head = o;
    sH += base, sX += base, sZ += base, sS += base, sSeg += base, sW += base;
    bytes = base + HB * head;
  }
};

constexpr int kStateNW = 64;             // dstate tile width of the state kernel

}  // namespace

// grid (⌈NP/NW⌉·⌈P/64⌉, H, batch), 2·NW threads: warp (wm, wn) owns state rows 32·wm.. (headdim)
// and columns 32·wn.. (dstate) of the block's 64 × NW tile: 2 × 4 accumulator tiles of 16×8.
// (Measured on the H100: 128-wide tiles, x read once per head, were no faster and need a register
// cap that spills; the benchmark grid of 64-wide tiles is one wave at 5 blocks per SM.)
template <typename T, int NW>
__global__ void __launch_bounds__(2 * NW, 5) ssd_mma_state_kernel(Dev d, float2* scal, int* segs) {
  pdl_trigger();  // the C·Bᵀ kernel may start in the slots this grid leaves free
  constexpr int NT = 2 * NW, NWARP = NT / 32, WN = NW / 32, E = kQ / NT;  // E: tokens per thread in the scans
  extern __shared__ __align__(128) unsigned char smem[];
  const StateSmem lay(sizeof(T), NW);
  const int ldB = lay.ldB;
  T* sX = reinterpret_cast<T*>(smem + lay.sX);
  T* sB = reinterpret_cast<T*>(smem + lay.sB);
  float* sW = reinterpret_cast<float*>(smem + lay.sW);
  float* sRedA = reinterpret_cast<float*>(smem + lay.sRed);
  int* sRedS = reinterpret_cast<int*>(smem + lay.sRed + 32);

  const int ntn = (d.NP + NW - 1) / NW;
  const int nt = blockIdx.x % ntn, pt = blockIdx.x / ntn;
  const int n0 = nt * NW, p0 = pt * kS;
  const int h = blockIdx.y, b = blockIdx.z, g = h / d.hpg;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WN, wn = warp % WN;
  const bool writer = nt == 0 && pt == 0;  // one block per (batch, head) stores the scalars
  const float A = d.A[h], bias = d.dt_bias ? d.dt_bias[h] : 0.f;

  // The running state, in the accumulator layout (f32); each_state(f) calls f(element, p, n)
  // on every element with its headdim and dstate indices (possibly past P / N).
  float acc[2][4][4];
  auto each_state = [&](auto&& f) {
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int ni = 0; ni < 4; ++ni)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          f(acc[mi][ni][e], p0 + 32 * wm + 16 * mi + acc_row(lane, e), n0 + 32 * wn + 8 * ni + acc_col(lane, e));
  };
  each_state([&](float& a, int p, int n) {
    a = (d.h0 && p < d.P && n < d.N) ? d.h0[((int64_t(b) * d.H + h) * d.P + p) * d.N + n] : 0.f;
  });

  const int nsl = (d.L + kS - 1) / kS;  // slices of the whole sequence
  const int64_t xs = d.x_str.token, bs = d.B_str.token;
  const T* xb = static_cast<const T*>(d.x) + d.x_str.at(b, 0) + int64_t(h) * d.P + p0;
  const T* Bb = static_cast<const T*>(d.B) + d.B_str.at(b, 0) + int64_t(g) * d.N + n0;
  auto load_slice = [&](int s) {
    if (s < nsl) {
      const int rv = min(kS, d.L - s * kS), buf = s & 1;
      copy_tile<NT>(tid, sX + buf * kS * kLd, kLd, xb + int64_t(s) * kS * xs, xs, rv, kS, min(kS, d.P - p0), kS);
      copy_tile<NT>(tid, sB + buf * kS * ldB, ldB, Bb + int64_t(s) * kS * bs, bs, rv, kS, min(NW, d.N - n0), NW);
    }
    __pipeline_commit();  // (empty groups too: the wait counts stay uniform)
  };
  load_slice(0);
  load_slice(1);

  // This thread's E tokens of a chunk (E·tid ..), fetched a chunk ahead.
  ChunkTokens<E> tok;
  tok.fetch(d, b, h, bias, 0, tid);

  const int64_t PPN = int64_t(d.PP) * d.NP;
  for (int c = 0; c < d.nc; ++c) {
    // ---- chunk scalars: inclusive scans of dt'·A and of the restart flags over the chunk
    const ChunkScan<E> sc = chunk_scan<E, NWARP>(d, tok, c, A, tid, sRedA, sRedS, [&] {
      if (c + 1 < d.nc) tok.fetch(d, b, h, bias, c + 1, tid);
    });
    const int64_t so = (int64_t(b) * d.H + h) * d.Lpad + int64_t(c) * kQ + E * tid;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      sW[E * tid + e] = sc.weight(e);
      if (writer) sc.store(e, scal, segs, so + e);
    }
    const float dec = sc.decay();

    // ---- the state entering chunk c, then its decay across the chunk
    // (16 bytes per lane through quad_transpose: whole 32-byte sectors)
    T* st = static_cast<T*>(d.St) + ((int64_t(b) * d.H + h) * d.nc + c) * PPN;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        const int n16 = n0 + 32 * wn + 16 * np;  // 16 columns: whole or past NP (a multiple of 16)
        if (n16 < d.NP) {
          uint32_t v[4];
#pragma unroll
          for (int k = 0; k < 4; ++k) v[k] = pack2<T>(acc[mi][2 * np + (k & 1)][(k >> 1) * 2], acc[mi][2 * np + (k & 1)][(k >> 1) * 2 + 1]);
          quad_transpose(v, lane & 3);
          const int p = p0 + 32 * wm + 16 * mi + (lane >> 2) + ((lane & 3) >> 1) * 8, n = n16 + (lane & 1) * 8;
          *reinterpret_cast<uint4*>(st + int64_t(p) * d.NP + n) = make_uint4(v[0], v[1], v[2], v[3]);
        }
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[mi][2 * np + j][e] *= dec;
      }

    // ---- H += Xᵀ·(w ∘ B) over the chunk's slices
    const int s_end = min(nsl, (c + 1) * kSlices);
    for (int s = c * kSlices; s < s_end; ++s) {
      __pipeline_wait_prior(1);  // slice s has landed (s + 1 may still be in flight)
      __syncthreads();           // ... for every thread's copies; sW is complete
      T* X = sX + (s & 1) * kS * kLd;
      const T* Bt = sB + (s & 1) * kS * ldB;
      {  // x ∘ w in place, once per block (every warp along dstate reads the same x fragments)
        const float* w = sW + (s % kSlices) * kS;
        for (int i = tid; i < kS * kS / 8; i += NT) {
          uint4* v = reinterpret_cast<uint4*>(X + (i >> 3) * kLd + (i & 7) * 8);
          const float ws = w[i >> 3];
          uint4 u = *v;
          uint32_t* e = reinterpret_cast<uint32_t*>(&u);
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const float2 f = unpack2<T>(e[k]);
            e[k] = pack2<T>(f.x * ws, f.y * ws);
          }
          *v = u;
        }
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kS / 16; ++kk) {
        // A = (w ∘ X)ᵀ (m = headdim, k = token)
        uint32_t af[2][4];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
          const RC a = a_addr_t(lane);
          ldsm_x4_t(af[mi], X + (kk * 16 + a.r) * kLd + 32 * wm + 16 * mi + a.c);
        }
#pragma unroll
        for (int np = 0; np < 2; ++np) {
          uint32_t bf[4];
          const RC bq = b_addr_kn(lane);
          ldsm_x4_t(bf, Bt + (kk * 16 + bq.r) * ldB + 32 * wn + 16 * np + bq.c);
          const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
#pragma unroll
          for (int mi = 0; mi < 2; ++mi) {
            mma16816<T>(acc[mi][2 * np], af[mi], b0);
            mma16816<T>(acc[mi][2 * np + 1], af[mi], b1);
          }
        }
      }
      __syncthreads();  // every warp is done with this buffer (and, at the chunk's end, with sW)
      load_slice(s + 2);
    }
  }

  if (d.final_states)
    each_state([&](float& a, int p, int n) {
      if (p < d.P && n < d.N) d.final_states[((int64_t(b) * d.H + h) * d.P + p) * d.N + n] = a;
    });
}

// `items` = kCbPairs·nc·batch·G work items (row tile r, slice j ≤ r, chunk, batch, group), 128
// threads, block i takes items i, i + gridDim.x, ...: warp w computes the 16-row tile mt = 4·r + w
// against the token tiles st = 4·j .. 4·j + 3 ≤ mt. Launched as a programmatic dependent of the
// state kernel (which reads nothing it writes), on a grid small enough to run in the slots the
// state kernel leaves free; it completes only once the state kernel has (the output kernel reads
// both).
template <typename T>
__global__ void __launch_bounds__(kNT) ssd_mma_cb_kernel(Dev d, uint4* cbf, int items) {
  extern __shared__ __align__(128) unsigned char smem[];
  const CbSmem lay(d.NP, sizeof(T));
  T* sC = reinterpret_cast<T*>(smem + lay.sC);
  T* sB = reinterpret_cast<T*>(smem + lay.sB);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, ldN = lay.ldN;
  const int64_t bs = d.B_str.token, cstr = d.C_str.token;
  const RC aq = a_addr(lane), bq = b_addr_nk(lane);
  for (int it = blockIdx.x; it < items; it += gridDim.x) {
    int x = it % kCbPairs, r = 0;
    const int rest = it / kCbPairs, c = rest % d.nc, b = rest / d.nc / d.G, g = rest / d.nc % d.G;
    while (x > r) x -= r + 1, ++r;
    const int j = x;
    const int t0 = c * kQ, q = min(kQ, d.L - t0);
    if (r * kS >= q) continue;
    __syncthreads();  // the previous item's tiles are read
    const T* Bc = static_cast<const T*>(d.B) + d.B_str.at(b, t0) + int64_t(g) * d.N;
    const T* Cc = static_cast<const T*>(d.C) + d.C_str.at(b, t0) + int64_t(g) * d.N;
    copy_tile<kNT>(threadIdx.x, sC, ldN, Cc + int64_t(r) * kS * cstr, cstr, min(kS, q - r * kS), kS, d.N, d.NP);
    copy_tile<kNT>(threadIdx.x, sB, ldN, Bc + int64_t(j) * kS * bs, bs, min(kS, q - j * kS), kS, d.N, d.NP);
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncthreads();
    const int mt = 4 * r + w;
    uint4* out = cbf + (((int64_t(b) * d.nc + c) * d.G + g) * kTiles16 + mt) * kTiles16 * 32 + lane;
    for (int s4 = 0; s4 < 4; ++s4) {
      const int st = 4 * j + s4;
      if (st > mt) break;
      float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
      for (int k = 0; k < d.NP; k += 16) {
        uint32_t a[4], bf[4];
        ldsm_x4(a, sC + (16 * w + aq.r) * ldN + k + aq.c);
        ldsm_x4(bf, sB + (16 * s4 + bq.r) * ldN + k + bq.c);  // B stored [token][n]: (n-dim, k-dim)
        const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
        mma16816<T>(acc[0], a, b0);
        mma16816<T>(acc[1], a, b1);
      }
      out[st * 32] = make_uint4(pack2<T>(acc[0][0], acc[0][1]), pack2<T>(acc[0][2], acc[0][3]),
                                pack2<T>(acc[1][0], acc[1][1]), pack2<T>(acc[1][2], acc[1][3]));
    }
  }
  pdl_wait();
}

// grid (kSlices·⌈P/64⌉·H/HB, nc, batch), 128·HB threads: HB heads of one group per block (they
// share the C rows in shared memory and, through L1, the C·Bᵀ fragments). Warp w of head slot hs
// owns rows 16·w.. of the 64-row tile r and all 64 headdim columns (8 accumulator tiles of 16×8).
// Row tiles are ordered heaviest first. (Measured on the H100: two heads per block, 16 warps per
// SM, beat one head (12 warps) and a variant walking all four row tiles per block (less L2 traffic
// but 8-16 warps per SM): 0.46 against 0.51 and 0.51 ms at the benchmark shape.)
//
// The decay of an earlier slice is factored through the token just before the tile,
// ref = 64·r − 1 (cs_ref = 0, seg_ref = 0 "before the chunk" when r = 0): for s ≤ ref < t,
//   exp(cs_t − cs_s)·[seg_s = seg_t] = rf_t · w_s,  rf_t = exp(cs_t − cs_ref)·[seg_t = seg_ref],
//                                               w_s = exp(cs_ref − cs_s)·[seg_s = seg_ref]
// (segments only grow), and e_in_t = rf_t · e_ref with e_ref = exp(cs_ref)·[seg_ref = 0]. So
//   Y = rf ∘ (e_ref·C·H_inᵀ + Σ_{earlier slices} (CB ∘ (w·dt'))·X_s) + (CB ∘ L)·X_diag:
// earlier slices scale the C·Bᵀ fragments by a per-token column factor only (no exp per
// element); the row factor is applied once. Every factor is ≤ 1 for A ≤ 0 (no overflow; where
// one underflows, the exact product is smaller still). The tile's own slice takes exp per element.
template <typename T, int HB>
__global__ void __launch_bounds__(kNT * HB, HB == 2 ? 2 : 3)
    ssd_mma_out_kernel(Dev d, const uint4* cbf, const float2* scal, const int* segs) {
  constexpr int NT = kNT * HB;
  const int r = kSlices - 1 - int(blockIdx.x % kSlices), rest = blockIdx.x / kSlices;
  const int nhb = d.H / HB, hb = rest % nhb, pt = rest / nhb;
  const int c = blockIdx.y, b = blockIdx.z;
  const int t0 = c * kQ, q = min(kQ, d.L - t0);
  if (r * kS >= q) return;  // rows past the sequence
  const int tid = threadIdx.x, lane = tid & 31, hs = tid / kNT, ht = tid % kNT, w = ht >> 5;
  const int h = hb * HB + hs, g = h / d.hpg;  // the block's heads share g
  extern __shared__ __align__(128) unsigned char smem[];
  const OutSmem lay(d.NP, sizeof(T), HB);
  unsigned char* hsm = smem + hs * lay.head;  // this head's region
  T* sC = reinterpret_cast<T*>(smem + lay.sC);
  T* sH = reinterpret_cast<T*>(hsm + lay.sH);
  T* sX = reinterpret_cast<T*>(hsm + lay.sX);
  T* sZ = reinterpret_cast<T*>(hsm + lay.sZ);
  float2* sS = reinterpret_cast<float2*>(hsm + lay.sS);
  int* sSeg = reinterpret_cast<int*>(hsm + lay.sSeg);
  float* sW = reinterpret_cast<float*>(hsm + lay.sW);
  const int NP = d.NP, ldN = lay.ldN;
  const int p0 = pt * kS, pw = min(kS, d.P - p0);
  const int rv = min(kS, q - r * kS);
  const int64_t xs = d.x_str.token, zs = d.z_str.token, cstr = d.C_str.token;
  const T* xc = static_cast<const T*>(d.x) + d.x_str.at(b, t0) + int64_t(h) * d.P + p0;
  const T* Cc = static_cast<const T*>(d.C) + d.C_str.at(b, t0) + int64_t(g) * d.N;
  const T* zc = d.z ? static_cast<const T*>(d.z) + d.z_str.at(b, t0) + int64_t(h) * d.P + p0 : nullptr;

  auto load_slice = [&](int j) {
    copy_tile<kNT>(ht, sX + (j & 1) * kS * kLd, kLd, xc + int64_t(j) * kS * xs, xs, min(kS, q - j * kS), kS, pw, kS);
  };
  // group 0: C rows, H_in, z, slice 0; group 1: slice 1
  copy_tile<NT>(tid, sC, ldN, Cc + int64_t(r) * kS * cstr, cstr, rv, kS, d.N, NP);
  const T* hin = static_cast<const T*>(d.St) + ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP + int64_t(p0) * NP;
  copy_tile<kNT>(ht, sH, ldN, hin, NP, kS, kS, NP, NP);
  if (zc) copy_tile<kNT>(ht, sZ, kLd, zc + int64_t(r) * kS * zs, zs, rv, kS, pw, kS);
  load_slice(0);
  __pipeline_commit();
  if (r >= 1) load_slice(1);
  __pipeline_commit();

  // The chunk's scalars up to this tile's last row, and the earlier tokens' column factors.
  const int64_t so = (int64_t(b) * d.H + h) * d.Lpad + t0;
  const float cs_ref = r ? __ldg(&scal[so + r * kS - 1].x) : 0.f;
  const int seg_ref = (r && segs) ? __ldg(segs + so + r * kS - 1) : 0;
  for (int i = ht; i < (r + 1) * kS; i += kNT) {
    const float2 v = __ldg(scal + so + i);
    const int sg = segs ? __ldg(segs + so + i) : 0;
    sS[i] = v, sSeg[i] = sg;
    if (i < r * kS) sW[i] = sg == seg_ref ? __expf(cs_ref - v.x) * v.y : 0.f;
  }
  const float e_ref = seg_ref == 0 ? __expf(cs_ref) : 0.f;

  // This warp's C·Bᵀ fragments of slice j: token tiles 4·j + st ≤ its row tile 4·r + w.
  const int mt = 4 * r + w;
  const uint4* cbw = cbf + (((int64_t(b) * d.nc + c) * d.G + g) * kTiles16 + mt) * kTiles16 * 32 + lane;
  uint4 cb[4];

  float acc[8][4];
#pragma unroll
  for (int ni = 0; ni < 8; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[ni][e] = 0.f;

  const RC aq = a_addr(lane), bnk = b_addr_nk(lane), bkn = b_addr_kn(lane);
  const T* cRow = sC + (16 * w + aq.r) * ldN + aq.c;  // this warp's A fragments of C
  const int row_lo = r * kS + 16 * w + (lane >> 2), row_hi = row_lo + 8;  // this lane's rows (chunk positions)
  const int tq = 2 * (lane & 3);                                        // its first column in a 16×8 tile

  // Y += A·X_j for the A fragment of token tile kk of slice j.
  auto mma_x = [&](const uint32_t (&a)[4], const T* Xt, int kk) {
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t bf[4];
      ldsm_x4_t(bf, Xt + (16 * kk + bkn.r) * kLd + 16 * np + bkn.c);  // X_s stored [token][p]: (k, n)
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
      mma16816<T>(acc[2 * np], a, b0);
      mma16816<T>(acc[2 * np + 1], a, b1);
    }
  };

  for (int j = 0; j <= r; ++j) {
#pragma unroll
    for (int st = 0; st < 4; ++st)  // in flight while waiting for the slice
      if (4 * j + st <= mt) cb[st] = __ldg(cbw + (4 * j + st) * 32);
    __pipeline_wait_prior(1);  // slice j (and at j = 0 everything of group 0) has landed
    __syncthreads();
    if (j == 0) {
      // e_ref·(C·H_inᵀ): H_in is stored [p][n], i.e. the B operand as (n-dim, k-dim).
      for (int k = 0; k < NP; k += 16) {
        uint32_t a[4];
        ldsm_x4(a, cRow + k);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t bf[4];
          ldsm_x4(bf, sH + (16 * np + bnk.r) * ldN + k + bnk.c);
          const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
          mma16816<T>(acc[2 * np], a, b0);
          mma16816<T>(acc[2 * np + 1], a, b1);
        }
      }
#pragma unroll
      for (int ni = 0; ni < 8; ++ni)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[ni][e] *= e_ref;
    }
    const T* Xt = sX + (j & 1) * kS * kLd;
    if (j < r) {
      // An earlier slice: the C·Bᵀ fragments scaled by the column factors w·dt'.
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const float2 wl = *reinterpret_cast<const float2*>(sW + j * kS + 16 * kk + tq);
        const float2 wh = *reinterpret_cast<const float2*>(sW + j * kS + 16 * kk + 8 + tq);
        const float2 f0 = unpack2<T>(cb[kk].x), f1 = unpack2<T>(cb[kk].y), f2 = unpack2<T>(cb[kk].z),
                     f3 = unpack2<T>(cb[kk].w);
        const uint32_t a[4] = {pack2<T>(f0.x * wl.x, f0.y * wl.y), pack2<T>(f1.x * wl.x, f1.y * wl.y),
                               pack2<T>(f2.x * wh.x, f2.y * wh.y), pack2<T>(f3.x * wh.x, f3.y * wh.y)};
        mma_x(a, Xt, kk);
      }
    } else {
      // The tile's own slice. First the row factors of everything so far.
      const float cs_lo = sS[row_lo].x, cs_hi = sS[row_hi].x;
      const int seg_lo = sSeg[row_lo], seg_hi = sSeg[row_hi];
      const float rf_lo = seg_lo == seg_ref ? __expf(cs_lo - cs_ref) : 0.f;
      const float rf_hi = seg_hi == seg_ref ? __expf(cs_hi - cs_ref) : 0.f;
#pragma unroll
      for (int ni = 0; ni < 8; ++ni) acc[ni][0] *= rf_lo, acc[ni][1] *= rf_lo, acc[ni][2] *= rf_hi, acc[ni][3] *= rf_hi;
      // (CB ∘ L): exp(cs_t − cs_s)·dt'_s where s ≤ t on the same segment, else 0 (selected,
      // never multiplied: the exponent is positive above the diagonal).
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        if (kk <= w) {
          const uint32_t u[4] = {cb[kk].x, cb[kk].y, cb[kk].z, cb[kk].w};
          uint32_t a[4];
#pragma unroll
          for (int hf = 0; hf < 2; ++hf) {  // token columns 16·kk + 8·hf + tq, + 1
            const int s0 = j * kS + 16 * kk + 8 * hf + tq;
            const float4 sc = *reinterpret_cast<const float4*>(sS + s0);  // (cs, dt') of s0, s0 + 1
            const int sg0 = sSeg[s0], sg1 = sSeg[s0 + 1];
            const float2 lo = unpack2<T>(u[2 * hf]), hi = unpack2<T>(u[2 * hf + 1]);  // rows row_lo, row_hi
            const float v0 = (s0 <= row_lo && sg0 == seg_lo) ? lo.x * __expf(cs_lo - sc.x) * sc.y : 0.f;
            const float v1 = (s0 + 1 <= row_lo && sg1 == seg_lo) ? lo.y * __expf(cs_lo - sc.z) * sc.w : 0.f;
            const float v2 = (s0 <= row_hi && sg0 == seg_hi) ? hi.x * __expf(cs_hi - sc.x) * sc.y : 0.f;
            const float v3 = (s0 + 1 <= row_hi && sg1 == seg_hi) ? hi.y * __expf(cs_hi - sc.z) * sc.w : 0.f;
            a[2 * hf] = pack2<T>(v0, v1), a[2 * hf + 1] = pack2<T>(v2, v3);
          }
          mma_x(a, Xt, kk);
        }
      }
    }
    if (j + 2 <= r) {
      __syncthreads();  // every warp is done with buffer j & 1
      load_slice(j + 2);
    }
    __pipeline_commit();
  }

  // Epilogue: + D·x (x of these rows is slice r's buffer), gate, store.
  const T* Xr = sX + (r & 1) * kS * kLd;
  const uint32_t rb = ((16 * w + (lane >> 2)) * kLd + tq) * sizeof(T);
  store_y<T>(d, &acc[0][0], reinterpret_cast<const unsigned char*>(Xr), zc ? reinterpret_cast<const unsigned char*>(sZ) : nullptr,
             [&](int hf, int ni) { return rb + uint32_t((8 * hf * kLd + 8 * ni) * sizeof(T)); }, b, h, t0, r, p0, pw,
             rv, w, lane);
}

namespace {
template <typename T>
void preload_mma() {
  preload_kernels<ssd_mma_cb_kernel<T>, ssd_mma_state_kernel<T, kStateNW>, ssd_mma_out_kernel<T, 1>, ssd_mma_out_kernel<T, 2>>();
}
const bool g_preload = (cuda::register_kernel_preload([] {
                          preload_mma<__half>();
                          preload_mma<__nv_bfloat16>();
                        }),
                        true);
}  // namespace

template <typename T>
void launch_forward_mma(const Dev& d, void* cb, float2* scal, int* segs, unsigned* ready, cudaStream_t stream) {
  StageTimer timer("forward", stream);
  uint4* cbf = reinterpret_cast<uint4*>(cb);
  const int ntp = (d.P + kS - 1) / kS;
  // On sm_90a the outputs by a state walk inside each chunk (ssd_fwd_fold_wg.cu), which needs no
  // C·Bᵀ, beside the state kernel: its blocks start on a chunk once the state kernel has passed it
  // (per-chunk counters, zeroed here; without programmatic launches the output kernel runs after
  // the state kernel and needs none).
  const bool fold = fold_wgmma_fits<T>(d);
  unsigned* counters = fold && pdl_enabled() ? ready : nullptr;
  if (counters)
    check(cudaMemsetAsync(counters, 0, sizeof(unsigned) * d.batch * d.H * d.nc, stream), "ssdChunkScan: counters");
  if (!launch_state_wgmma<T>(d, scal, segs, counters, stream)) {
    const size_t bytes = StateSmem(sizeof(T), kStateNW).bytes;
    set_smem_once<ssd_mma_state_kernel<T, kStateNW>>(bytes);
    ssd_mma_state_kernel<T, kStateNW><<<dim3((d.NP + kStateNW - 1) / kStateNW * ntp, d.H, d.batch), 2 * kStateNW,
                                         bytes, stream>>>(d, scal, segs);
  }
  check_launch("ssdChunkScan chunk states");
  timer.mark("states and passing");

  if (fold) {
    launch_fold_wgmma<T>(d, scal, segs, counters, stream);
    check_launch("ssdChunkScan chunk outputs");
    timer.mark("chunk outputs (state walk)");
    return;
  }
  // Else C·Bᵀ and a tile-parallel output kernel.

  // C·Bᵀ beside the state kernel (a programmatic launch: it reads nothing that kernel writes), on
  // one block per SM: the slots the state kernel's single wave leaves free.
  {
    const size_t cb_bytes = CbSmem(d.NP, sizeof(T)).bytes;
    const int items = kCbPairs * d.nc * d.batch * d.G;
    set_smem_once<ssd_mma_cb_kernel<T>>(cb_bytes);
    launch_pdl(ssd_mma_cb_kernel<T>, dim3(std::min(items, sm_count())), dim3(kNT), cb_bytes, stream, d, cbf, items);
  }
  check_launch("ssdChunkScan C·Bᵀ");
  timer.mark("C·Bᵀ");

  // On sm_90a the warpgroup-product kernel (ssd_fwd_out_wg.cu); else (or where it does not fit)
  // two heads per block when a group's heads pair up (they share C and C·Bᵀ) and it fits.
  if (launch_out_wgmma<T>(d, cbf, scal, segs, stream)) {
    check_launch("ssdChunkScan chunk outputs");
    timer.mark("chunk outputs");
    return;
  }
  const size_t pair_bytes = OutSmem(d.NP, sizeof(T), 2).bytes;
  if (d.hpg % 2 == 0 && pair_bytes <= kMaxSmem) {
    set_smem_once<ssd_mma_out_kernel<T, 2>>(pair_bytes);
    ssd_mma_out_kernel<T, 2><<<dim3(kSlices * ntp * (d.H / 2), d.nc, d.batch), 2 * kNT, pair_bytes, stream>>>(d, cbf, scal, segs);
  } else {
    const size_t bytes = OutSmem(d.NP, sizeof(T), 1).bytes;
    set_smem_once<ssd_mma_out_kernel<T, 1>>(bytes);
    ssd_mma_out_kernel<T, 1><<<dim3(kSlices * ntp * d.H, d.nc, d.batch), kNT, bytes, stream>>>(d, cbf, scal, segs);
  }
  check_launch("ssdChunkScan chunk outputs");
  timer.mark("chunk outputs");
}

template void launch_forward_mma<__half>(const Dev&, void*, float2*, int*, unsigned*, cudaStream_t);
template void launch_forward_mma<__nv_bfloat16>(const Dev&, void*, float2*, int*, unsigned*, cudaStream_t);
int64_t forward_mma_cb_bytes(const Dev& d) { return int64_t(d.batch) * d.nc * d.G * cb_frag_bytes(); }

}  // namespace ss::cuda::ssd
