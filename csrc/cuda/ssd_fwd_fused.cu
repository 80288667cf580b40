// SSD forward for 16-bit inputs in one kernel, for dstate ≤ 128 (ssd_fwd_mma.cu takes larger
// dstate): one block of four warps per (batch, head, 64-wide headdim tile) walks the sequence in
// 64-token chunks. The state (headdim tile × dstate, f32) lives in the warps' mma accumulators
// the whole time and each chunk's output is emitted as the walk passes it, so no chunk state,
// C·Bᵀ or per-token scalar goes through global memory, and x is read once.
//
// Per chunk (tokens s ≤ t of the chunk; cs_t the inclusive cumsum of dt'·A inside the chunk,
// seg_t the number of sequence restarts inside the chunk up to t):
//   y_t   = e_t·C_t·H_inᵀ + Σ_{s ≤ t, seg_s = seg_t} (C_t·B_s)·exp(cs_t − cs_s)·dt'_s·x_s + D·x_t
//           (times silu(z_t)),  e_t = exp(cs_t)·[seg_t = 0]
//   H_out = dec·H_in + Σ_s w_s·x_sᵀ·B_s,  w_s = exp(cs_end − cs_s)·dt'_s·[seg_s = seg_end],
//           dec = exp(cs_end)·[seg_end = 0]
// Every factor is ≤ 1 for A ≤ 0; the mask is selected, never multiplied, so an exponent that
// overflows above the diagonal is discarded.
//
// Warp roles: for the output warp w owns 16 rows of the chunk (all 64 headdim columns); for the
// state it owns a 32 × 64 tile (headdim rows 32·(w & 1).., dstate columns 64·(w >> 1)..). The
// 64-token chunk keeps the quadratic part to the diagonal 64 × 64 block: C·B_sᵀ of the chunk is
// recomputed from the C and B tiles already in shared memory (no C·Bᵀ pass).
//
// Pipeline: x double-buffered (the next chunk's x is copied from the top of a chunk), C and B
// single-buffered (the next chunk's are copied once every warp is past the chunk's products, in
// flight during the epilogue); three blocks per SM (≈ 70 KB of shared memory each) overlap each
// other's waits. Two barriers per chunk.
//
// Rounding: the mma operands are T (x·w, C, B, the masked C·Bᵀ, the state entering the chunk);
// every sum is f32.
#include "cuda/check.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_fwd_tiles.cuh"
#include "cuda/ssd_launch.h"
#include "cuda/ssd_stages.h"

namespace ss::cuda::ssd {

namespace {

using namespace ss::cuda::mma;

constexpr int kQ = 64;        // tokens per chunk; also the headdim tile
constexpr int kNT = 128;      // threads per block: 4 warps
constexpr int kLdX = kQ + 8;  // leading dimension of the x tiles (16-byte row skew)

// Shared memory: two x tiles, the chunk's C and B rows (two of each with DB), the state
// entering the chunk (T, headdim × NP) and the chunk's per-token scalars.
struct FusedSmem {
  int ldN;
  size_t sX, sC, sB, sH, sCs, sDt, sSeg, sW, bytes;
  __host__ __device__ FusedSmem(int NP, int ts, bool db) {
    ldN = NP + 8;
    const size_t nTile = size_t(kQ) * ldN * ts;
    size_t o = 0;
    sX = o, o = align128(o + 2 * size_t(kQ) * kLdX * ts);
    sC = o, o = align128(o + (db ? 2 : 1) * nTile);
    sB = o, o = align128(o + (db ? 2 : 1) * nTile);
    sH = o, o = align128(o + nTile);
    sCs = o, o += kQ * 4;
    sDt = o, o += kQ * 4;
    sSeg = o, o += kQ * 4;
    sW = o, o += kQ * 4;
    bytes = o;
  }
};

// Two T values of a row as one b32 (lo first): one 32-bit load when the pair is whole and
// aligned, else element by element (0 past cols).
template <typename T>
__device__ __forceinline__ uint32_t load_pair(const T* p, int col, int cols, bool pairs) {
  if (pairs) return __ldg(reinterpret_cast<const unsigned int*>(p));
  const float lo = to_float(__ldg(p)), hi = col + 1 < cols ? to_float(__ldg(p + 1)) : 0.f;
  return pack2<T>(lo, hi);
}

// A b32 pair scaled by (w.x, w.y), rounded back to T.
template <typename T>
__device__ __forceinline__ uint32_t scale2(uint32_t v, float2 w) {
  const float2 f = unpack2<T>(v);
  return pack2<T>(f.x * w.x, f.y * w.y);
}

}  // namespace

// grid (⌈P/64⌉, H, batch), 128 threads. rot_div: the SM count; the blocks that share an SM
// (linear ids ≈ rot_div apart) give the heavier output rows (more of the diagonal block) to
// different warps, so each scheduler of the SM gets a similar share.
// DB: C and B double-buffered too (copied a chunk ahead with x), for grids of at most two blocks
// per SM (≈ 105 KB of shared memory): a block that has an SM (nearly) to itself has no other
// block to cover the copy of C and B behind its epilogue.
template <typename T, bool DB>
__global__ void __launch_bounds__(kNT, 3) ssd_fused_fwd_kernel(Dev d, int rot_div) {
  extern __shared__ __align__(128) unsigned char smem[];
  const FusedSmem lay(d.NP, sizeof(T), DB);
  const int ldN = lay.ldN, NP = d.NP;
  T* sX = reinterpret_cast<T*>(smem + lay.sX);
  T* sC0 = reinterpret_cast<T*>(smem + lay.sC);
  T* sB0 = reinterpret_cast<T*>(smem + lay.sB);
  T* sH = reinterpret_cast<T*>(smem + lay.sH);
  float* sCs = reinterpret_cast<float*>(smem + lay.sCs);
  float* sDt = reinterpret_cast<float*>(smem + lay.sDt);
  int* sSeg = reinterpret_cast<int*>(smem + lay.sSeg);
  float* sW = reinterpret_cast<float*>(smem + lay.sW);

  const int pt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / d.hpg;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int p0 = pt * kQ, pw = min(kQ, d.P - p0);
  const int lin = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const int mt = (warp + lin / rot_div) & 3;  // output rows 16·mt.. of every chunk
  const int wm = warp & 1, wn = warp >> 1;    // state rows 32·wm.., columns 64·wn..
  const float A = d.A[h], bias = d.dt_bias ? d.dt_bias[h] : 0.f;

  const int64_t xs = int64_t(d.H) * d.P, bs = int64_t(d.G) * d.N;
  const T* xb = static_cast<const T*>(d.x) + (int64_t(b) * d.L * d.H + h) * d.P + p0;
  const T* zb = d.z ? static_cast<const T*>(d.z) + (int64_t(b) * d.L * d.H + h) * d.P + p0 : nullptr;
  T* yb = static_cast<T*>(d.y) + (int64_t(b) * d.L * d.H + h) * d.P + p0;
  const T* Bb = static_cast<const T*>(d.B) + (int64_t(b) * d.L * d.G + g) * d.N;
  const T* Cb = static_cast<const T*>(d.C) + (int64_t(b) * d.L * d.G + g) * d.N;

  // The running state in the accumulator layout; each_state(f) calls f(element, p, n) with the
  // element's headdim and dstate indices (possibly past P / N).
  float S[2][8][4];
  auto each_state = [&](auto&& f) {
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int ni = 0; ni < 8; ++ni)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          f(S[mi][ni][e], p0 + 32 * wm + 16 * mi + acc_row(lane, e), 64 * wn + 8 * ni + acc_col(lane, e));
  };
  each_state([&](float& s, int p, int n) {
    s = (d.h0 && p < d.P && n < d.N) ? d.h0[((int64_t(b) * d.H + h) * d.P + p) * d.N + n] : 0.f;
  });

  const int nc = (d.L + kQ - 1) / kQ;
  auto load_x = [&](int c) {
    copy_tile<kNT>(tid, sX + (c & 1) * kQ * kLdX, kLdX, xb + int64_t(c) * kQ * xs, xs, min(kQ, d.L - c * kQ), kQ, pw, kQ);
  };
  auto bc_buf = [&](int c) { return DB ? (c & 1) * kQ * ldN : 0; };
  auto load_bc = [&](int c) {
    const int rv = min(kQ, d.L - c * kQ);
    copy_tile<kNT>(tid, sC0 + bc_buf(c), ldN, Cb + int64_t(c) * kQ * bs, bs, rv, kQ, d.N, NP);
    copy_tile<kNT>(tid, sB0 + bc_buf(c), ldN, Bb + int64_t(c) * kQ * bs, bs, rv, kQ, d.N, NP);
  };

  // Raw dt' inputs and restart flags of tokens 2·lane, 2·lane + 1 of a chunk, fetched a chunk ahead.
  float raw[2];
  int flag[2];
  auto fetch = [&](int c) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int64_t t = int64_t(c) * kQ + 2 * lane + e;
      raw[e] = t < d.L ? __ldg(d.dt + (int64_t(b) * d.L + t) * d.H + h) + bias : 0.f;
      flag[e] = (d.seq_idx && t > 0 && t < d.L) ? int(__ldg(d.seq_idx + int64_t(b) * d.L + t) !=
                                                      __ldg(d.seq_idx + int64_t(b) * d.L + t - 1))
                                                : 0;
    }
  };
  // The chunk's scalars from the fetched inputs: every warp scans (the same arithmetic, so the
  // same values) and gets the decay across the chunk; warp 0 stores the per-token values.
  auto scan = [&](int c) -> float {
    float dtp[2], cs[2];
    int sg[2];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float der;
      dtp[e] = int64_t(c) * kQ + 2 * lane + e < d.L ? dt_forward(d, raw[e], &der) : 0.f;  // 0 past the end
    }
    cs[0] = dtp[0] * A, cs[1] = cs[0] + dtp[1] * A;
    sg[0] = flag[0], sg[1] = flag[0] + flag[1];
    float ia = cs[1];
    int is = sg[1];
#pragma unroll
    for (int off = 1; off < 32; off *= 2) {
      const float ya = __shfl_up_sync(0xffffffffu, ia, off);
      const int ys = __shfl_up_sync(0xffffffffu, is, off);
      if (lane >= off) ia += ya, is += ys;
    }
    const float pa = ia - cs[1];
    const int ps = is - sg[1];
    const float cs_end = __shfl_sync(0xffffffffu, ia, 31);
    const int seg_end = __shfl_sync(0xffffffffu, is, 31);
    if (warp == 0) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float c_ = cs[e] + pa;
        const int s_ = sg[e] + ps;
        sCs[2 * lane + e] = c_, sDt[2 * lane + e] = dtp[e], sSeg[2 * lane + e] = s_;
        sW[2 * lane + e] = s_ == seg_end ? __expf(cs_end - c_) * dtp[e] : 0.f;
      }
    }
    return seg_end == 0 ? __expf(cs_end) : 0.f;
  };
  // The state entering the next chunk into sH (T), then its decay across that chunk.
  auto pass_state = [&](float dec) {
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int ni = 0; ni < 8; ++ni) {
        const int p = 32 * wm + 16 * mi + acc_row(lane, 0), n = 64 * wn + 8 * ni + acc_col(lane, 0);
        float* s = S[mi][ni];
        if (64 * wn + 8 * ni < NP) {
          *reinterpret_cast<uint32_t*>(sH + p * ldN + n) = pack2<T>(s[0], s[1]);
          *reinterpret_cast<uint32_t*>(sH + (p + 8) * ldN + n) = pack2<T>(s[2], s[3]);
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) s[e] *= dec;
      }
  };

  load_x(0);
  load_bc(0);
  __pipeline_commit();
  fetch(0);
  pass_state(scan(0));

  const RC aq = a_addr(lane), aqt = a_addr_t(lane), bnk = b_addr_nk(lane), bkn = b_addr_kn(lane);
  const int r_lo = 16 * mt + (lane >> 2), r_hi = r_lo + 8;  // this lane's output rows in the chunk
  const int tq = 2 * (lane & 3);                          // its first column in a 16×8 tile
  const bool pairs = d.P % 2 == 0;
  const float d_head = (d.D && !d.d_per_channel) ? __ldg(d.D + h) : 0.f;
  const float* d_chan = (d.D && d.d_per_channel) ? d.D + h * d.P + p0 : nullptr;

  for (int c = 0; c < nc; ++c) {
    const int t0 = c * kQ, q = min(kQ, d.L - t0);
    __pipeline_wait_prior(0);  // x, C, B of chunk c
    __syncthreads();           // ... from every thread; sH and the scalars of chunk c
    if (c + 1 < nc) {
      load_x(c + 1);  // the other buffer: last read in chunk c − 1
      if (DB) load_bc(c + 1);
      fetch(c + 1);
    }
    __pipeline_commit();
    const T* X = sX + (c & 1) * kQ * kLdX;
    const T* sC = sC0 + bc_buf(c);
    const T* sB = sB0 + bc_buf(c);
    const T* cRow = sC + (16 * mt + aq.r) * ldN + aq.c;  // this lane's A fragments of C

    // z of this lane's outputs: into L2 now, read in the epilogue.
    if (zb && (lane & 3) == 0) {
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int r = r_lo + 8 * hf;
        if (r < q) asm volatile("prefetch.global.L2 [%0];" ::"l"(zb + int64_t(t0 + r) * xs));
      }
    }

    // ---- state: H_out = dec·H_in (already scaled) + (w ∘ X)ᵀ·B, w applied to the A fragments
#pragma unroll
    for (int kk = 0; kk < kQ / 16; ++kk) {
      const float2 wl = *reinterpret_cast<const float2*>(sW + 16 * kk + tq);
      const float2 wh = *reinterpret_cast<const float2*>(sW + 16 * kk + 8 + tq);
      uint32_t af[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        ldsm_x4_t(af[mi], X + (16 * kk + aqt.r) * kLdX + 32 * wm + 16 * mi + aqt.c);  // (w∘X)ᵀ: m = p, k = token
        af[mi][0] = scale2<T>(af[mi][0], wl), af[mi][1] = scale2<T>(af[mi][1], wl);
        af[mi][2] = scale2<T>(af[mi][2], wh), af[mi][3] = scale2<T>(af[mi][3], wh);
      }
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        if (64 * wn + 16 * np < NP) {
          uint32_t bf[4];
          ldsm_x4_t(bf, sB + (16 * kk + bkn.r) * ldN + 64 * wn + 16 * np + bkn.c);  // B stored [token][n]: (k, n)
          const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
#pragma unroll
          for (int mi = 0; mi < 2; ++mi) {
            mma16816<T>(S[mi][2 * np], af[mi], b0);
            mma16816<T>(S[mi][2 * np + 1], af[mi], b1);
          }
        }
      }
    }

    // ---- output rows r_lo, r_hi: e·(C·H_inᵀ) ...
    float Y[8][4];
#pragma unroll
    for (int ni = 0; ni < 8; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) Y[ni][e] = 0.f;
    for (int k = 0; k < NP; k += 16) {
      uint32_t a[4];
      ldsm_x4(a, cRow + k);
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t bf[4];
        ldsm_x4(bf, sH + (16 * np + bnk.r) * ldN + k + bnk.c);  // H_in stored [p][n]: (n-dim, k-dim)
        const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
        mma16816<T>(Y[2 * np], a, b0);
        mma16816<T>(Y[2 * np + 1], a, b1);
      }
    }
    const float cs_lo = sCs[r_lo], cs_hi = sCs[r_hi];
    const int seg_lo = sSeg[r_lo], seg_hi = sSeg[r_hi];
    {
      const float e_lo = seg_lo == 0 ? __expf(cs_lo) : 0.f, e_hi = seg_hi == 0 ? __expf(cs_hi) : 0.f;
#pragma unroll
      for (int ni = 0; ni < 8; ++ni) Y[ni][0] *= e_lo, Y[ni][1] *= e_lo, Y[ni][2] *= e_hi, Y[ni][3] *= e_hi;
    }
    // ... + (C·Bᵀ ∘ L)·X over the token tiles st ≤ mt of the diagonal block
    for (int st = 0; st <= mt; ++st) {
      float cb[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
      for (int k = 0; k < NP; k += 16) {
        uint32_t a[4], bf[4];
        ldsm_x4(a, cRow + k);
        ldsm_x4(bf, sB + (16 * st + bnk.r) * ldN + k + bnk.c);  // B stored [token][n]: (n-dim, k-dim)
        const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
        mma16816<T>(cb[0], a, b0);
        mma16816<T>(cb[1], a, b1);
      }
      // mask and decay on the accumulators, re-packed as the A fragment of the token tile
      uint32_t am[4];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int s0 = 16 * st + 8 * j + tq;  // tokens s0, s0 + 1
        const float2 cs_s = *reinterpret_cast<const float2*>(sCs + s0);
        const float2 dt_s = *reinterpret_cast<const float2*>(sDt + s0);
        const int sg0 = sSeg[s0], sg1 = sSeg[s0 + 1];
        const float v0 = (s0 <= r_lo && sg0 == seg_lo) ? cb[j][0] * __expf(cs_lo - cs_s.x) * dt_s.x : 0.f;
        const float v1 = (s0 + 1 <= r_lo && sg1 == seg_lo) ? cb[j][1] * __expf(cs_lo - cs_s.y) * dt_s.y : 0.f;
        const float v2 = (s0 <= r_hi && sg0 == seg_hi) ? cb[j][2] * __expf(cs_hi - cs_s.x) * dt_s.x : 0.f;
        const float v3 = (s0 + 1 <= r_hi && sg1 == seg_hi) ? cb[j][3] * __expf(cs_hi - cs_s.y) * dt_s.y : 0.f;
        am[2 * j] = pack2<T>(v0, v1), am[2 * j + 1] = pack2<T>(v2, v3);
      }
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t bf[4];
        ldsm_x4_t(bf, X + (16 * st + bkn.r) * kLdX + 16 * np + bkn.c);  // X stored [token][p]: (k, n)
        const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
        mma16816<T>(Y[2 * np], am, b0);
        mma16816<T>(Y[2 * np + 1], am, b1);
      }
    }

    __syncthreads();  // every warp is past chunk c's C, B, sH and scalars: copy the next C and B
    if (!DB && c + 1 < nc) load_bc(c + 1);  // (in flight during the epilogue and the next chunk's scan)
    __pipeline_commit();

    // ---- epilogue: + D·x (x is double-buffered), gate, store
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int r = r_lo + 8 * hf;
      if (r >= q) continue;
      T* yrow = yb + int64_t(t0 + r) * xs;
#pragma unroll
      for (int ni = 0; ni < 8; ++ni) {
        const int pp = 8 * ni + tq;
        if (pp >= pw) continue;
        const bool two = pp + 1 < pw;
        const float2 xv = unpack2<T>(*reinterpret_cast<const uint32_t*>(X + r * kLdX + pp));  // zero past pw
        float v0 = Y[ni][2 * hf], v1 = Y[ni][2 * hf + 1];
        if (d_chan) {
          v0 += __ldg(d_chan + pp) * xv.x;
          if (two) v1 += __ldg(d_chan + pp + 1) * xv.y;
        } else {
          v0 += d_head * xv.x, v1 += d_head * xv.y;
        }
        if (zb) {
          const float2 zv = unpack2<T>(load_pair(zb + int64_t(t0 + r) * xs + pp, pp, pw, pairs));
          v0 *= silu_f(zv.x), v1 *= silu_f(zv.y);
        }
        if (pairs) {
          *reinterpret_cast<uint32_t*>(yrow + pp) = pack2<T>(v0, v1);
        } else {
          yrow[pp] = from_float<T>(v0);
          if (two) yrow[pp + 1] = from_float<T>(v1);
        }
      }
    }

    if (c + 1 < nc) pass_state(scan(c + 1));
  }

  if (d.final_states)
    each_state([&](float& s, int p, int n) {
      if (p < d.P && n < d.N) d.final_states[((int64_t(b) * d.H + h) * d.P + p) * d.N + n] = s;
    });
}

namespace {
const bool g_preload = (cuda::register_kernel_preload(
                            preload_kernels<ssd_fused_fwd_kernel<__half, false>, ssd_fused_fwd_kernel<__half, true>,
                                            ssd_fused_fwd_kernel<__nv_bfloat16, false>, ssd_fused_fwd_kernel<__nv_bfloat16, true>>),
                        true);
}  // namespace

template <typename T>
void launch_forward_fused(const Dev& d, cudaStream_t stream) {
  StageTimer timer("forward", stream);
  const int sms = std::max(1, cuda::sm_count());
  const dim3 grid((d.P + kQ - 1) / kQ, d.H, d.batch);
  if (int64_t(grid.x) * grid.y * grid.z <= 2 * sms) {
    const size_t bytes = FusedSmem(d.NP, sizeof(T), true).bytes;
    set_smem_once<ssd_fused_fwd_kernel<T, true>>(bytes);
    ssd_fused_fwd_kernel<T, true><<<grid, kNT, bytes, stream>>>(d, sms);
  } else {
    const size_t bytes = FusedSmem(d.NP, sizeof(T), false).bytes;
    set_smem_once<ssd_fused_fwd_kernel<T, false>>(bytes);
    ssd_fused_fwd_kernel<T, false><<<grid, kNT, bytes, stream>>>(d, sms);
  }
  check_launch("ssdChunkScan (fused forward)");
  timer.mark("fused walk");
}

template void launch_forward_fused<__half>(const Dev&, cudaStream_t);
template void launch_forward_fused<__nv_bfloat16>(const Dev&, cudaStream_t);

}  // namespace ss::cuda::ssd
