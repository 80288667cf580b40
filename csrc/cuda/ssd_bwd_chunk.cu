// SSD backward, 16-bit inputs: the chunk gradients on tensor cores (mma.sync m16n8k16, f32
// accumulation), for headdim ≤ 64 and dstate ≤ 128 (padded to 16); other sizes and float32 run
// ssd_bwd_chunk_kernel (ssd_bwd.cu).
//
// One block of 16 warps per (64-token chunk, run of d.HB heads of a group, batch: a whole group
// on large grids, see chunk_gradient_heads). B, C and C·Bᵀ (kept in shared memory) are loaded /
// formed once; the per-head scalars are formed a head ahead by an otherwise idle warp; the heads
// follow in order with their tiles (x, dout, z, S0 = state entering the chunk, S1 = dL/dstate at
// its end) double-buffered by cp.async, and dB / dC of the run accumulate in registers across the
// heads (deterministic: every sum has a fixed order, no atomics; written to dB / dC directly when
// the run is the whole group: chunk_gradients_direct). Per head, with Lexp[t,s] = exp(cs_t − cs_s) for s ≤ t on
// one sequence (else 0), dYX = dy·xᵀ·diag(dt'):
//   A  M = CB∘Lexp, N2 = Lexp∘dYX (shared memory, 16-bit), row / column sums of CB∘Lexp∘dYX
//   B  CH = C·S0ᵀ: V_t = e_in_t·dy_t·CH_t; with z, y = e_in·CH + (M·diag(dt'))·x + D·x → dz
//   C  d(dt'x) = e_out∘(B·S1ᵀ) + Mᵀ·dy → dx, dL/d(dt') (U_s = e_out_s·dt'_s·x_s·(B·S1ᵀ)_s for dcs)
//   D  dB += N2ᵀ·C + diag(e_out·dt')·x·S1,   dC += N2·B + diag(e_in)·dy·S0
//   then one warp: dcs → reverse cumsum → ddt, dA / ddtBias partials.
// Phases A and D: warp w computes rows 16·(w / 4), column quarter (w − w / 4) mod 4; phases B
// and C: warps 0-7 phase B, 8-15 phase C, rows 16·(w % 4), column half w / 4 % 2.
#include "cuda/check.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_bwd_tiles.cuh"
#include "cuda/ssd_launch.h"

namespace ss::cuda::ssd {

namespace {

constexpr int kQ = 64;          // tokens per chunk (Traits<T>::Q of the 16-bit types)
constexpr int kNT = 512;        // threads per block
constexpr int kSlots = 3;       // per-head scalar slots: head hh − 1 (its tail), hh, hh + 1 (being formed)
constexpr int kMaxPC = 64;      // headdim padded to 16
constexpr int kMaxNP = 128;     // dstate padded to 16
// Warps with no product in phase A (tiles above the diagonal: row strip < column quarter): 1, 2,
// 3, 4, 7, 9. Warp 3 runs the previous head's dcs tail, warp 9 forms the next head's scalars, the
// other four the decay term Σ S1∘S0 of the head (each a 16-row strip, on tensor cores).
constexpr int kTailWarp = 3, kScalarWarp = 9, kRedWarps = 4;

// Shared memory (byte offsets). Per head, two buffers of {x, dout, z, S0, S1}; dy = dout·silu(z)
// formed once per head; the per-head partial sums in two sets (by head parity: a head's dcs
// tail runs while the next head's products fill the other set). The kernel uses one layout, the
// one of the largest tiles (headdim 64, dstate 128, with z): it runs one block per SM whatever the
// problem (its registers), so smaller problems lose nothing, and every offset and leading
// dimension is a compile-time constant (sized by the runtime headdim / dstate, the offsets were
// recomputed in the head loop, 64-bit, under the register cap).
struct MmaGradLayout {
  static constexpr int ldN = kMaxNP + 8, ldP = kMaxPC + 8, ldM = kQ + 8;
  size_t sB = 0, sC = 0, sM = 0, sN2 = 0, sMd = 0, sDy = 0, sCB = 0, buf0 = 0, buf_bytes = 0;
  size_t oX = 0, oDout = 0, oZ = 0, oH0 = 0, oG = 0;                  // inside a buffer
  size_t sDtp = 0, sDer = 0, sCs = 0, sSeg = 0, sEin = 0, sEout = 0, sD = 0;  // kSlots × kQ each (sSeg: kQ)
  // partial sums (inside a set): row, col (phase A, by column quarter / row strip) and dp (by row
  // strip) 4 × kQ each, v, u, ddt (phases B / C, by column half) 2 × kQ each, red one per red warp
  size_t parts0 = 0, parts_bytes = 0, oRow = 0, oCol = 0, oV = 0, oU = 0, oDdt = 0, oDP = 0, oRed = 0, bytes = 0;
  __host__ __device__ constexpr MmaGradLayout(int ts) {
    size_t o = 0;
    auto place = [&](size_t n) { const size_t at = o; o = align128(o + n); return at; };
    sB = place(size_t(kQ) * ldN * ts);
    sC = place(size_t(kQ) * ldN * ts);
    sM = place(size_t(kQ) * ldM * ts);
    sN2 = place(size_t(kQ) * ldM * ts);
    sMd = place(size_t(kQ) * ldM * ts);
    sDy = place(size_t(kQ) * ldP * ts);  // without z, dy is dout in the head's buffer
    sCB = place(size_t(kNT) * 8 * 4);    // C·Bᵀ fragments, 8 floats per thread
    size_t b0 = o;
    oX = place(size_t(kQ) * ldP * ts) - b0;
    oDout = place(size_t(kQ) * ldP * ts) - b0;
    oZ = place(size_t(kQ) * ldP * ts) - b0;
    oH0 = place(size_t(kMaxPC) * ldN * ts) - b0;
    oG = place(size_t(kMaxPC) * ldN * ts) - b0;
    buf0 = b0, buf_bytes = o - b0;
    o += buf_bytes;  // the second buffer
    const size_t sc = size_t(kSlots) * kQ * 4;
    sDtp = place(sc), sDer = place(sc), sCs = place(sc), sEin = place(sc), sEout = place(sc);
    sD = place(sc);  // D at each channel (kMaxPC == kQ)
    sSeg = place(size_t(kQ) * 4);  // the chunk's segments: the same for every head
    b0 = o;
    const size_t quarters = 4 * kQ * 4, halves = 2 * kQ * 4;
    oRow = place(quarters) - b0, oCol = place(quarters) - b0, oDP = place(quarters) - b0;
    oV = place(halves) - b0, oU = place(halves) - b0, oDdt = place(halves) - b0;
    oRed = place(size_t(kRedWarps) * 4) - b0;
    parts0 = b0, parts_bytes = o - b0;
    o += parts_bytes;  // the second set
    bytes = o;
  }
};
static_assert(MmaGradLayout(2).bytes <= kMaxSmem, "one block per SM");
static_assert(kMaxPC == kQ, "D in the per-head scalar slots");

// Two adjacent 16-bit elements as floats, and back.
template <typename T>
__device__ __forceinline__ float2 ld2(const T* p) {
  return mma::unpack2<T>(*reinterpret_cast<const uint32_t*>(p));
}
template <typename T>
__device__ __forceinline__ void st2(T* p, float lo, float hi) {
  *reinterpret_cast<uint32_t*>(p) = mma::pack2<T>(lo, hi);
}

// dy = dout·silu(z) over a 64 × PC tile. OWN: on the pieces this thread copied itself (the
// cp.async mapping of tile_copy, walk: both tiles copied 16 bytes at a time), so its own wait
// suffices and no barrier is needed before; else on any elements (after a barrier).
template <typename T, bool OWN>
__device__ void form_dy(T* dy, const T* dout, const T* z, int ld, int PC, TileWalk<kNT, T> walk) {
  if constexpr (OWN) {
    constexpr int V = 16 / sizeof(T);
    const int vcols = PC / V, dr = int(walk.step & 0xffffu), dc = int(walk.step >> 16);
    for (int r = int(walk.start & 0xffffu), cv = int(walk.start >> 16); r < kQ; r += dr, cv += dc) {
      if (cv >= vcols) cv -= vcols, ++r;
      if (r >= kQ) break;
      const int o = r * ld + cv * V;  // one 16-byte piece: whole-row accesses, no bank conflicts
      const uint4 dv4 = *reinterpret_cast<const uint4*>(dout + o), zv4 = *reinterpret_cast<const uint4*>(z + o);
      const uint32_t dw[4] = {dv4.x, dv4.y, dv4.z, dv4.w}, zw[4] = {zv4.x, zv4.y, zv4.z, zv4.w};
      uint32_t out[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float2 dv = mma::unpack2<T>(dw[k]), zv = mma::unpack2<T>(zw[k]);
        out[k] = mma::pack2<T>(dv.x * silu_f(zv.x), dv.y * silu_f(zv.y));
      }
      *reinterpret_cast<uint4*>(dy + o) = make_uint4(out[0], out[1], out[2], out[3]);
    }
  } else {
    for (int idx = threadIdx.x; idx < kQ * PC; idx += kNT) {
      const int o = (idx / PC) * ld + idx % PC;
      dy[o] = from_float<T>(to_float(dout[o]) * silu_f(to_float(z[o])));
    }
  }
}

// Sum over the four lanes of a fragment row group (lanes 4g..4g+3), the same on each.
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
// Sum over the eight row groups (lanes with the same lane % 4).
__device__ __forceinline__ float column_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 4);
  v += __shfl_xor_sync(0xffffffffu, v, 8);
  return v + __shfl_xor_sync(0xffffffffu, v, 16);
}

// acc[j] (two adjacent n-tiles, 16 columns) += A·B over k in [k0, k1), A 16 rows × k, B k × 16.
// A_T: A stored [k][m] (else [m][k]); B_KN: B stored [k][n] (else [n][k]).
template <typename T, bool A_T, bool B_KN>
__device__ __forceinline__ void warp_mma16(float (&acc)[2][4], const T* A, int lda, const T* B, int ldb, int k0, int k1,
                                           int lane) {
  using namespace mma;
  const RC ra = A_T ? a_addr_t(lane) : a_addr(lane);
  const RC rb = B_KN ? b_addr_kn(lane) : b_addr_nk(lane);
  // this lane's 32-bit shared addresses at k0, stepped by constants (recomputed from the row and
  // column every step, the addresses cost more instructions than the ldmatrix and mma)
  uint32_t pa = smem_addr(A_T ? A + (k0 + ra.r) * lda + ra.c : A + ra.r * lda + k0 + ra.c);
  uint32_t pb = smem_addr(B_KN ? B + (k0 + rb.r) * ldb + rb.c : B + rb.r * ldb + k0 + rb.c);
  const uint32_t sa = uint32_t(A_T ? 16 * lda : 16) * sizeof(T), sb = uint32_t(B_KN ? 16 * ldb : 16) * sizeof(T);
#pragma unroll 2  // smaller code than the default unrolling (instruction-cache stalls), two steps in flight
  for (int k = k0; k < k1; k += 16, pa += sa, pb += sb) {
    uint32_t a[4], bb[4];
    if constexpr (A_T) ldsm_x4_t(a, pa);
    else ldsm_x4(a, pa);
    if constexpr (B_KN) ldsm_x4_t(bb, pb);
    else ldsm_x4(bb, pb);
    const uint32_t b0[2] = {bb[0], bb[1]}, b1[2] = {bb[2], bb[3]};
    mma16816<T>(acc[0], a, b0);
    mma16816<T>(acc[1], a, b1);
  }
}

// Same for 32 output columns (two 16-column groups; columns past the tiles' sizes read the zero
// padding of shared memory), A loaded once per k-step.
// SCALE: A's rows multiplied by w_lo (rows 0-7 of the strip: lane / 4) and w_hi (rows 8-15) in
// the fragment — a row-scaled product without a second accumulator. The weights are rounded to T
// and multiply the fragment's pairs in T (one packed multiply per register, where unpacking,
// two f32 products and packing took five).
// B_KN: B stored [k][n] (else [n][k]). U: k-steps unrolled (in flight).
template <typename T, bool A_T, bool SCALE = false, bool B_KN = true, int U = 2>
__device__ __forceinline__ void warp_mma32(float (&acc)[2][2][4], const T* A, int lda, const T* B, int ldb, int k0,
                                           int k1, int lane, float w_lo = 1.f, float w_hi = 1.f) {
  using namespace mma;
  const RC ra = A_T ? a_addr_t(lane) : a_addr(lane);
  const RC rb = B_KN ? b_addr_kn(lane) : b_addr_nk(lane);
  const uint32_t w2[2] = {pack2<T>(w_lo, w_lo), pack2<T>(w_hi, w_hi)};
  // 32-bit shared addresses at k0 stepped by constants, as in warp_mma16; group jj's B at a
  // constant offset (16 columns: 32 bytes [k][n], 16 rows [n][k])
  uint32_t pa = smem_addr(A_T ? A + (k0 + ra.r) * lda + ra.c : A + ra.r * lda + k0 + ra.c);
  uint32_t pb = smem_addr(B_KN ? B + (k0 + rb.r) * ldb + rb.c : B + rb.r * ldb + k0 + rb.c);
  const uint32_t sa = uint32_t(A_T ? 16 * lda : 16) * sizeof(T), sb = uint32_t(B_KN ? 16 * ldb : 16) * sizeof(T);
  const uint32_t sg = uint32_t(B_KN ? 16 : 16 * ldb) * sizeof(T);
#pragma unroll U  // smaller code than the default unrolling (instruction-cache stalls)
  for (int k = k0; k < k1; k += 16, pa += sa, pb += sb) {
    uint32_t a[4];
    if constexpr (A_T) ldsm_x4_t(a, pa);
    else ldsm_x4(a, pa);
    if constexpr (SCALE) {
#pragma unroll
      for (int r = 0; r < 4; ++r) a[r] = mul2<T>(a[r], w2[r & 1]);  // a[0], a[2]: row lane / 4; a[1], a[3]: + 8
    }
#pragma unroll
    for (int jj = 0; jj < 2; ++jj) {
      uint32_t bb[4];
      if constexpr (B_KN) ldsm_x4_t(bb, pb + jj * sg);
      else ldsm_x4(bb, pb + jj * sg);
      const uint32_t b0[2] = {bb[0], bb[1]}, b1[2] = {bb[2], bb[3]};
      mma16816<T>(acc[jj][0], a, b0);
      mma16816<T>(acc[jj][1], a, b1);
    }
  }
}

// sum[hi] += Σ over this lane's columns of tile[t][p]·acc[t][p], rows t = r0 + g + 8·hi of a
// 16 × 16 accumulator pair (columns p0 ..); quad_sum completes the row.
template <typename T>
__device__ __forceinline__ void row_dots(float (&sum)[2], const float (&acc)[2][4], const T* tile, int ld, int r0, int p0,
                                         int lane) {
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int hi = 0; hi < 2; ++hi) {
      const int t = r0 + lane / 4 + hi * 8, p = p0 + j * 8 + (lane % 4) * 2;
      const float2 v = ld2(tile + t * ld + p);
      sum[hi] += v.x * acc[j][hi * 2] + v.y * acc[j][hi * 2 + 1];
    }
}
// acc's rows scaled: rows g by lo, rows g + 8 by hi.
__device__ __forceinline__ void scale_rows(float (&acc)[2][4], float lo, float hi) {
#pragma unroll
  for (int j = 0; j < 2; ++j) acc[j][0] *= lo, acc[j][1] *= lo, acc[j][2] *= hi, acc[j][3] *= hi;
}

// The partial sums of one head (one parity set).
struct Parts {
  float *row, *col, *v, *u, *ddt, *dp, *red;
  __device__ Parts(unsigned char* base, const MmaGradLayout& l)
      : row(reinterpret_cast<float*>(base + l.oRow)), col(reinterpret_cast<float*>(base + l.oCol)),
        v(reinterpret_cast<float*>(base + l.oV)), u(reinterpret_cast<float*>(base + l.oU)),
        ddt(reinterpret_cast<float*>(base + l.oDdt)), dp(reinterpret_cast<float*>(base + l.oDP)),
        red(reinterpret_cast<float*>(base + l.oRed)) {}
};

// One warp: the chunk's segment numbers (sequence restarts counted from its start; rows past the
// end repeat the last), lane l: tokens 2l, 2l + 1. All zero without seqIdx.
__device__ void chunk_segments(const Dev& d, int b, int t0, int q, int* seg, int lane) {
  int s[2], fs = 0;
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int i = 2 * lane + e;
    const int64_t t = t0 + i;
    if (d.seq_idx && i < q && t > 0) fs += d.seq_idx[int64_t(b) * d.L + t] != d.seq_idx[int64_t(b) * d.L + t - 1];
    s[e] = fs;
  }
  int xs = fs;
  for (int off = 1; off < 32; off *= 2) {
    const int ys = __shfl_up_sync(0xffffffffu, xs, off);
    if (lane >= off) xs += ys;
  }
#pragma unroll
  for (int e = 0; e < 2; ++e) seg[2 * lane + e] = xs - fs + s[e];
}

// One warp: head h's chunk scalars as chunk_scalars forms them (same operations in the same
// order): dt' (0 past the end), d dt'/d dt, the inclusive cumsum of dt'·A, e_in, e_out; lane l:
// tokens 2l, 2l + 1. seg: the chunk's segments (chunk_segments). Dv: D at channels 0..kQ − 1
// (0 past the headdim or without D).
__device__ void head_scalars(const Dev& d, int b, int h, int t0, int q, const int* seg, float* dtp, float* der,
                             float* cs, float* ein, float* eout, float* Dv, int lane) {
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int p = 2 * lane + e;
    Dv[p] = d.D && p < d.P ? d.D[d.d_per_channel ? h * d.P + p : h] : 0.f;
  }
  const float a = d.A[h], bias = d.dt_bias ? d.dt_bias[h] : 0.f;
  float part[2], fa = 0.f;
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int i = 2 * lane + e;
    float v = 0.f, g = 0.f;
    if (i < q) v = dt_forward(d, dt_at(d, b, t0 + i, h) + bias, &g);
    dtp[i] = v, der[i] = g;
    fa += v * a;
    part[e] = fa;
  }
  float xa = fa;
  for (int off = 1; off < 32; off *= 2) {
    const float ya = __shfl_up_sync(0xffffffffu, xa, off);
    if (lane >= off) xa += ya;
  }
  float c[2];
#pragma unroll
  for (int e = 0; e < 2; ++e) c[e] = xa - fa + part[e], cs[2 * lane + e] = c[e];
  const float c_end = __shfl_sync(0xffffffffu, c[1], 31);
  const int seg_end = seg[kQ - 1];
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int i = 2 * lane + e;
    ein[i] = seg[i] == 0 ? __expf(c[e]) : 0.f;
    eout[i] = seg[i] == seg_end ? __expf(c_end - c[e]) : 0.f;
  }
}

// One warp, after a head's products: dcs → reverse cumsum (lane l: rows 2l, 2l+1) → ddt, and the
// head's dA / ddtBias / dD partials of this chunk. Fixed orders throughout.
__device__ void head_tail(const Dev& d, const Parts& pt, int b, int h, int c, int t0, int q, const float* dtp,
                          const float* der, const float* cs, const int* seg, int lane) {
  float dcs[2], ddtp[2], usum = 0.f;
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int s = 2 * lane + e;
    float row = 0.f, col = 0.f, v = 0.f, u = 0.f, xd = 0.f;
#pragma unroll
    for (int k = 0; k < 4; ++k) row += pt.row[k * kQ + s], col += pt.col[k * kQ + s];  // by column quarter / row strip
#pragma unroll
    for (int k = 0; k < 2; ++k) v += pt.v[k * kQ + s], u += pt.u[k * kQ + s], xd += pt.ddt[k * kQ + s];  // by column half
    dcs[e] = row - col + v - u;
    ddtp[e] = xd;
    usum += u;
  }
  float gh = 0.f;
  if (lane < kRedWarps) gh = pt.red[lane];
  for (int off = 16; off > 0; off /= 2) {
    usum += __shfl_xor_sync(0xffffffffu, usum, off);
    gh += __shfl_xor_sync(0xffffffffu, gh, off);
  }
  const float decay = seg[kQ - 1] == 0 ? __expf(cs[kQ - 1]) : 0.f;
#pragma unroll
  for (int e = 0; e < 2; ++e)
    if (2 * lane + e == q - 1) dcs[e] += usum + decay * gh;
  // suffix sums: da_s = Σ_{s' ≥ s} dcs_s'
  const float tot = dcs[0] + dcs[1];
  float x = tot;
  for (int off = 1; off < 32; off *= 2) {
    const float y = __shfl_down_sync(0xffffffffu, x, off);
    if (lane + off < 32) x += y;
  }
  const float after = x - tot;
  const float da[2] = {after + tot, after + dcs[1]};
  const float a = d.A[h];
  float dA_acc = 0.f, dbias_acc = 0.f;
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int s = 2 * lane + e;
    if (s < q) {
      dA_acc += dtp[s] * da[e];
      const float graw = (ddtp[e] + a * da[e]) * der[s];
      d.ddt[(int64_t(b) * d.L + t0 + s) * d.H + h] = graw;
      dbias_acc += graw;
    }
  }
  for (int off = 16; off > 0; off /= 2) {
    dA_acc += __shfl_xor_sync(0xffffffffu, dA_acc, off);
    dbias_acc += __shfl_xor_sync(0xffffffffu, dbias_acc, off);
  }
  const int64_t k = (int64_t(b) * d.H + h) * d.nc + c;
  if (lane == 0) d.dA_part[k] = dA_acc, d.dbias_part[k] = dbias_acc;
  if (d.D)
    for (int p = lane; p < d.P; p += 32)
      d.dD_part[k * d.P + p] = pt.dp[p] + pt.dp[kQ + p] + pt.dp[2 * kQ + p] + pt.dp[3 * kQ + p];
}

}  // namespace

template <typename T>
__global__ void __launch_bounds__(kNT, 1) ssd_bwd_chunk_mma_kernel(Dev d) {
  extern __shared__ __align__(128) unsigned char smem[];
  const bool has_z = d.z != nullptr;
  constexpr MmaGradLayout lay(sizeof(T));
  auto at = [&](size_t o) { return reinterpret_cast<T*>(smem + o); };
  auto atf = [&](size_t o) { return reinterpret_cast<float*>(smem + o); };
  T* sB = at(lay.sB);
  T* sC = at(lay.sC);
  T* sM = at(lay.sM);
  T* sN2 = at(lay.sN2);
  T* sMd = at(lay.sMd);
  float* sDtpA = atf(lay.sDtp);
  float* sDerA = atf(lay.sDer);
  float* sCsA = atf(lay.sCs);
  int* sSeg = reinterpret_cast<int*>(smem + lay.sSeg);
  float* sEinA = atf(lay.sEin);
  float* sEoutA = atf(lay.sEout);
  float* sDA = atf(lay.sD);
  constexpr int ldN = MmaGradLayout::ldN, ldP = MmaGradLayout::ldP, ldM = MmaGradLayout::ldM;

  const int c = blockIdx.x, b = blockIdx.z, g = blockIdx.y / d.nhb, hb = blockIdx.y % d.nhb;
  const int h_begin = g * d.hpg + hb * d.HB, h_count = min(d.HB, d.hpg - hb * d.HB);
  const int t0 = c * kQ, q = min(kQ, d.L - t0);
  const int NP = d.NP, PC = d.PC, P = d.P;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // Row strip and column quarter: quarter (warp − strip) mod 4, so that each scheduler (warp % 4)
  // holds 2-3 of the 10 tiles on or below the diagonal (with quarter = warp % 4 one scheduler held
  // 4 of them and another 1, and phase A lasted as long as the scheduler with 4).
  const int wr = warp / 4, wc = (warp - wr) & 3;
  const int r0 = wr * 16;
  const int gq = lane / 4, tq = lane % 4;  // fragment row group, column pair
  const int64_t xs = int64_t(d.H) * P;     // token stride of x, dout, z, dx, dz
  // this warp's share of Σ S1∘S0 (warps 1, 2, 4, 7: above the diagonal), else −1
  const int red_rank = warp == 1 ? 0 : warp == 2 ? 1 : warp == 4 ? 2 : warp == 7 ? 3 : -1;

  auto xo_of = [&](int h) { return ((int64_t(b) * d.L + t0) * d.H + h) * P; };
  // the head tiles' copy walks: made where used (the general copies only; the fast one and dy's
  // pieces at headdim 64 fold to constants), not held in registers through the kernel
  auto walk_p = [&] { return TileWalk<kNT, T>(PC); };
  auto walk_n = [&] { return TileWalk<kNT, T>(NP); };
  // The common case (headdim 64, dstate 128, a whole chunk, 16-byte aligned tiles): every thread
  // copies the same pieces of every head, one of x / dout / z and two of S0 / S1, at offsets
  // formed from its index (the general copies below cost ≈ 400 instructions per warp and head:
  // per tile the alignment checks, per piece a 64-bit multiply).
  auto aligned16 = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
  const bool fast_copy = PC == kMaxPC && P == kMaxPC && NP == kMaxNP && d.N == kMaxNP && q == kQ &&
                         aligned16(d.x) && aligned16(d.dout) && (!has_z || aligned16(d.z)) && aligned16(d.S0) &&
                         aligned16(d.S1);
  auto load_head = [&](int hh, int buf) {
    const int h = h_begin + hh;
    unsigned char* base = smem + lay.buf0 + buf * lay.buf_bytes;
    const int64_t xo = xo_of(h);
    if (fast_copy) {
      constexpr int kPieces = kMaxPC / 8, kPiecesN = kMaxNP / 8;  // 16-byte pieces per row
      static_assert(kQ * kPieces == kNT && kMaxPC * kPiecesN == 2 * kNT, "one x piece, two S pieces per thread");
      const int r = tid / kPieces, col = (tid % kPieces) * 8;
      const int64_t go = xo + r * xs + col;
      const int to = r * ldP + col;
      __pipeline_memcpy_async(reinterpret_cast<T*>(base + lay.oX) + to, static_cast<const T*>(d.x) + go, 16);
      __pipeline_memcpy_async(reinterpret_cast<T*>(base + lay.oDout) + to, static_cast<const T*>(d.dout) + go, 16);
      if (has_z) __pipeline_memcpy_async(reinterpret_cast<T*>(base + lay.oZ) + to, static_cast<const T*>(d.z) + go, 16);
      const int rs = tid / kPiecesN, cs = (tid % kPiecesN) * 8;
      const int64_t so = ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP + rs * kMaxNP + cs;
      const int tso = rs * ldN + cs;
      constexpr int kHalf = kMaxPC / 2;  // the second piece: 32 rows further
      __pipeline_memcpy_async(reinterpret_cast<T*>(base + lay.oH0) + tso, static_cast<const T*>(d.S0) + so, 16);
      __pipeline_memcpy_async(reinterpret_cast<T*>(base + lay.oH0) + tso + kHalf * ldN,
                              static_cast<const T*>(d.S0) + so + kHalf * kMaxNP, 16);
      __pipeline_memcpy_async(reinterpret_cast<T*>(base + lay.oG) + tso, static_cast<const T*>(d.S1) + so, 16);
      __pipeline_memcpy_async(reinterpret_cast<T*>(base + lay.oG) + tso + kHalf * ldN,
                              static_cast<const T*>(d.S1) + so + kHalf * kMaxNP, 16);
      __pipeline_commit();
      return;
    }
    tile_copy<kNT>(reinterpret_cast<T*>(base + lay.oX), ldP, static_cast<const T*>(d.x) + xo, xs, q, kQ, P, PC, walk_p());
    tile_copy<kNT>(reinterpret_cast<T*>(base + lay.oDout), ldP, static_cast<const T*>(d.dout) + xo, xs, q, kQ, P, PC, walk_p());
    if (has_z) tile_copy<kNT>(reinterpret_cast<T*>(base + lay.oZ), ldP, static_cast<const T*>(d.z) + xo, xs, q, kQ, P, PC, walk_p());
    const int64_t so = ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP;
    tile_copy<kNT>(reinterpret_cast<T*>(base + lay.oH0), ldN, static_cast<const T*>(d.S0) + so, NP, PC, PC, NP, NP, walk_n());
    tile_copy<kNT>(reinterpret_cast<T*>(base + lay.oG), ldN, static_cast<const T*>(d.S1) + so, NP, PC, PC, NP, NP, walk_n());
    __pipeline_commit();
  };
  // dout and z of every head copied 16 bytes at a time by the same threads: dy is formed
  // without a barrier of its own (the heads' tiles differ only by a multiple of P in offset).
  const bool own_dy = has_z && tile_vec(ldP, static_cast<const T*>(d.dout) + xo_of(h_begin), xs, P, PC) &&
                      tile_vec(ldP, static_cast<const T*>(d.z) + xo_of(h_begin), xs, P, PC) && P % 8 == 0;

  // Shared memory zeroed once: the tiles' padding (columns past the headdim / dstate, rows past
  // the headdim in S0 / S1) is never written after, so the products take whole 16-column groups
  // at any size (padding adds zeros; no per-group branches in the k-loops).
  static_assert(lay.bytes % 16 == 0, "16-byte zeroing");
  for (int i = tid; i < int(lay.bytes / 16); i += kNT) reinterpret_cast<uint4*>(smem)[i] = make_uint4(0u, 0u, 0u, 0u);
  __syncthreads();
  {  // B and C of the group with head 0's tiles, in flight while the scalars are formed
    const int64_t brow = (int64_t(b) * d.L + t0) * d.G + g;
    tile_copy<kNT>(sB, ldN, static_cast<const T*>(d.B) + brow * d.N, int64_t(d.G) * d.N, q, kQ, d.N, NP, walk_n());
    tile_copy<kNT>(sC, ldN, static_cast<const T*>(d.C) + brow * d.N, int64_t(d.G) * d.N, q, kQ, d.N, NP, walk_n());
    load_head(0, 0);
  }
  // Per-head scalars in kSlots slots by head % kSlots: head 0's now, head hh + 1's by the scalar
  // warp during head hh's phase A (any run length; the slot it fills was last read by head hh − 2).
  auto slot = [&](float* base, int hh) { return base + (hh % kSlots) * kQ; };
  auto form_scalars = [&](int hh) {
    head_scalars(d, b, h_begin + hh, t0, q, sSeg, slot(sDtpA, hh), slot(sDerA, hh), slot(sCsA, hh), slot(sEinA, hh),
                 slot(sEoutA, hh), slot(sDA, hh), lane);
  };
  if (warp == kScalarWarp) {
    chunk_segments(d, b, t0, q, sSeg, lane);
    __syncwarp();
    form_scalars(0);
  }
  __syncthreads();

  // dB / dC of this warp's rows r0.., columns n0.. (two 16-column groups), summed over the heads.
  const int n0 = wc * 32;
  const bool ncols = n0 < NP;  // any of its dstate columns inside dstate (the rest: zero padding)
  float accB[2][2][4] = {}, accC[2][2][4] = {};
  const int c0 = wc * 16;
  const bool lower = wc <= wr;  // tiles above the diagonal are all zero

  for (int hh = 0; hh < h_count; ++hh) {
    const int h = h_begin + hh, buf = hh & 1;
    if (hh + 1 < h_count) {
      load_head(hh + 1, buf ^ 1);  // that buffer's last reader (head hh − 1) passed the barrier below
      __pipeline_wait_prior(1);
    } else {
      __pipeline_wait_prior(0);
    }
    unsigned char* base = smem + lay.buf0 + buf * lay.buf_bytes;
    const T* sX = reinterpret_cast<const T*>(base + lay.oX);
    const T* sDout = reinterpret_cast<const T*>(base + lay.oDout);
    const T* sZ = reinterpret_cast<const T*>(base + lay.oZ);
    const T* sH0 = reinterpret_cast<const T*>(base + lay.oH0);
    const T* sG = reinterpret_cast<const T*>(base + lay.oG);
    T* sDyW = at(lay.sDy);
    const T* sDy = has_z ? sDyW : sDout;
    if (own_dy) form_dy<T, true>(sDyW, sDout, sZ, ldP, PC, fast_copy ? TileWalk<kNT, T>(kMaxPC) : walk_p());  // sDy's readers (head hh − 1) are past the barrier below
    __syncthreads();
    if (has_z && !own_dy) {
      form_dy<T, false>(sDyW, sDout, sZ, ldP, PC, walk_p());
      __syncthreads();
    }
    const float* dtp = slot(sDtpA, hh);
    const float* cs = slot(sCsA, hh);
    const int* seg = sSeg;
    const float* ein = slot(sEinA, hh);
    const float* eout = slot(sEoutA, hh);
    const float* Dv = slot(sDA, hh);
    const Parts pt(smem + lay.parts0 + buf * lay.parts_bytes, lay);
    // ---- A: dYX, the masks M, N2 (and M·diag(dt') for the gate), row / column sums of W. Tiles
    //      above the diagonal are never read (every product's k range stops at the diagonal):
    //      their warps only zero their partial sums and form Σ S1∘S0 instead.
    if (!lower) {
      if (lane < 16) pt.row[wc * kQ + r0 + lane] = 0.f, pt.col[wr * kQ + c0 + lane] = 0.f;
      if (warp == kScalarWarp && hh + 1 < h_count) form_scalars(hh + 1);
      if (red_rank >= 0) {  // Σ S1∘S0 over rows 16·red_rank: the trace of that strip's S1·S0ᵀ (tensor cores)
        static_assert(kRedWarps * 16 == kMaxPC, "a 16-row strip of the state per red warp");
        const int p0 = red_rank * 16;  // rows past the headdim: zero padding
        float gh[2][4] = {};
        warp_mma16<T, false, false>(gh, sG + p0 * ldN, ldN, sH0 + p0 * ldN, ldN, 0, NP, lane);
        // diagonal: row g, column 2t + e (n-tile 0) and row g + 8, column 8 + 2t + e (n-tile 1)
        float part = 0.f;
#pragma unroll
        for (int e = 0; e < 2; ++e)
          if (gq == 2 * tq + e) part += gh[0][e] + gh[1][2 + e];
        for (int off = 16; off > 0; off /= 2) part += __shfl_xor_sync(0xffffffffu, part, off);
        if (lane == 0) pt.red[red_rank] = part;
      }
    } else {
      // C·Bᵀ at this warp's tile of the 64×64 masks (rows r0, columns 16·wc): formed once per
      // block, kept in shared memory in fragment order (each lane its own 8 values) rather than in
      // 8 registers for the whole kernel
      float4* cb_keep = reinterpret_cast<float4*>(smem + lay.sCB) + tid * 2;
      float cb[2][4] = {};
      if (hh == 0) {
        warp_mma16<T, false, false>(cb, sC + r0 * ldN, ldN, sB + c0 * ldN, ldN, 0, NP, lane);
        cb_keep[0] = make_float4(cb[0][0], cb[0][1], cb[0][2], cb[0][3]);
        cb_keep[1] = make_float4(cb[1][0], cb[1][1], cb[1][2], cb[1][3]);
      } else {
        const float4 c0v = cb_keep[0], c1v = cb_keep[1];
        cb[0][0] = c0v.x, cb[0][1] = c0v.y, cb[0][2] = c0v.z, cb[0][3] = c0v.w;
        cb[1][0] = c1v.x, cb[1][1] = c1v.y, cb[1][2] = c1v.z, cb[1][3] = c1v.w;
      }
      float acc[2][4] = {};
      warp_mma16<T, false, false>(acc, sDy + r0 * ldP, ldP, sX + c0 * ldP, ldP, 0, PC, lane);
      float cs_t[2], cs_s[2][2], dtp_s[2][2];
      int seg_t[2], seg_s[2][2];
#pragma unroll
      for (int hi = 0; hi < 2; ++hi) cs_t[hi] = cs[r0 + gq + hi * 8], seg_t[hi] = seg[r0 + gq + hi * 8];
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int se = c0 + j * 8 + tq * 2 + e;
          cs_s[j][e] = cs[se], seg_s[j][e] = seg[se], dtp_s[j][e] = dtp[se];
        }
      float rsum[2] = {0.f, 0.f}, csum[2][2] = {};
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int hi = 0; hi < 2; ++hi) {
          const int t = r0 + gq + hi * 8, s = c0 + j * 8 + tq * 2;
          float m[2], n2[2], md[2];
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const bool valid = s + e <= t && seg_s[j][e] == seg_t[hi];
            const float lexp = valid ? __expf(cs_t[hi] - cs_s[j][e]) : 0.f;
            const float cbv = valid ? cb[j][hi * 2 + e] : 0.f;
            const float dyx = acc[j][hi * 2 + e] * dtp_s[j][e];
            m[e] = cbv * lexp, n2[e] = lexp * dyx, md[e] = m[e] * dtp_s[j][e];
            const float w = m[e] * dyx;
            rsum[hi] += w, csum[j][e] += w;
          }
          st2(sM + t * ldM + s, m[0], m[1]);
          st2(sN2 + t * ldM + s, n2[0], n2[1]);
          if (has_z) st2(sMd + t * ldM + s, md[0], md[1]);
        }
#pragma unroll
      for (int hi = 0; hi < 2; ++hi) {
        const float v = quad_sum(rsum[hi]);
        if (tq == 0) pt.row[wc * kQ + r0 + gq + hi * 8] = v;
      }
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float v = column_sum(csum[j][e]);
          if (gq == 0) pt.col[wr * kQ + c0 + j * 8 + tq * 2 + e] = v;
        }
    }
    // the previous head's dcs tail (its partial sums are in the other set) while the others multiply
    if (hh > 0 && warp == kTailWarp) {
      const int hp = hh - 1;
      head_tail(d, Parts(smem + lay.parts0 + (buf ^ 1) * lay.parts_bytes, lay), b, h_begin + hp, c, t0, q,
                slot(sDtpA, hp), slot(sDerA, hp), slot(sCsA, hp), sSeg, lane);
    }
    __syncthreads();

    const int64_t xo = xo_of(h);  // element (t, p) at xo + t·xs + p
    // ---- B (warps 0-7) and C (warps 8-15): each warp a 16 × 32 tile of its 64 × 64 product (A
    //      fragments loaded once per 32 columns, four independent mma chains), rows 16·(warp % 4)
    //      — the same strip for the four warps of a scheduler, whose triangular k ranges (strip + 1
    //      steps in B, 4 − strip in C) add up alike on every scheduler — and columns 32·(warp / 4 % 2).
    const int rb0 = (warp % 4) * 16, half = (warp / 4) % 2, pb0 = half * 32;
    const bool pcols = pb0 < PC;  // any of its columns inside the headdim (the rest: zero padding)
    // dx / dz 16 bytes per lane when every 8-column piece is whole and aligned: the quad's
    // 16 × 16 piece transposed across it (32-byte sectors written whole; the 4-byte stores cost
    // ≈ 2× the sector writes).
    const bool vec16 = P % 8 == 0;
    auto store16 = [&](T* base, uint32_t (&v)[4], int pg0) {
      mma::quad_transpose(v, tq);
      const int t = rb0 + gq + (tq >> 1) * 8, p = pg0 + (tq & 1) * 8;
      if (t < q && p < P) *reinterpret_cast<uint4*>(base + int64_t(t) * xs + p) = make_uint4(v[0], v[1], v[2], v[3]);
    };
    // The quad's 16 × 16 piece (v[2·hi + j]: row rb0 + gq + 8·hi, columns pg0 + 8·j + 2·tq, + 1,
    // packed) to global memory: store16, or each value pair inside the tile (the addresses of
    // that path formed only there: interleaved with the packing they were computed for every pair).
    auto store_piece = [&](T* base, uint32_t (&v)[4], int pg0) {
      if (vec16) {
        store16(base, v, pg0);
        return;
      }
#pragma unroll
      for (int hi = 0; hi < 2; ++hi)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int t = rb0 + gq + hi * 8, p = pg0 + j * 8 + tq * 2;
          if (t >= q) continue;
          T* out = base + int64_t(t) * xs + p;
          const uint32_t w = v[hi * 2 + j];
          if (p + 1 < P && P % 2 == 0) *reinterpret_cast<uint32_t*>(out) = w;
          else {
            const T* e = reinterpret_cast<const T*>(&w);
            if (p < P) out[0] = e[0];
            if (p + 1 < P) out[1] = e[1];
          }
        }
    };

    if (warp < 8) {  // ---- B: CH = C·S0ᵀ → V; with z, the pre-gate output and dz
      float acc[2][2][4] = {};
      float vsum[2] = {0.f, 0.f};
      if (pcols) {
        warp_mma32<T, false, false, false, 2>(acc, sC + rb0 * ldN, ldN, sH0 + pb0 * ldN, ldN, 0, NP, lane);
#pragma unroll
        for (int jj = 0; jj < 2; ++jj)
          row_dots(vsum, acc[jj], sDy, ldP, rb0, pb0 + jj * 16, lane);
        if (has_z) {
#pragma unroll
          for (int jj = 0; jj < 2; ++jj) scale_rows(acc[jj], ein[rb0 + gq], ein[rb0 + gq + 8]);
          warp_mma32<T, false, false, true, 1>(acc, sMd + rb0 * ldM, ldM, sX + pb0, ldP, 0, rb0 + 16, lane);
          T* dz = static_cast<T*>(d.dz);
#pragma unroll
          for (int jj = 0; jj < 2; ++jj) {
            const int pg0 = pb0 + jj * 16;
            uint32_t v[4];  // vec16: this quad's 16 × 16 piece, stored 16 bytes per lane
#pragma unroll
            for (int j = 0; j < 2; ++j) {
              const int p = pg0 + j * 8 + tq * 2;
              const float2 Dp = *reinterpret_cast<const float2*>(Dv + p);  // D at p, p + 1
#pragma unroll
              for (int hi = 0; hi < 2; ++hi) {
                const int t = rb0 + gq + hi * 8;  // rows past the end: zero tiles, not stored
                const float2 xv = ld2(sX + t * ldP + p), zv = ld2(sZ + t * ldP + p), ov = ld2(sDout + t * ldP + p);
                float r[2];
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                  const float zz = e ? zv.y : zv.x;
                  const float yv = acc[jj][j][hi * 2 + e] + (e ? Dp.y : Dp.x) * (e ? xv.y : xv.x);
                  const float sg = 1.f / (1.f + __expf(-zz));
                  r[e] = (e ? ov.y : ov.x) * yv * sg * (1.f + zz * (1.f - sg));
                }
                v[hi * 2 + j] = mma::pack2<T>(r[0], r[1]);
              }
            }
            store_piece(dz + xo, v, pg0);
          }
        }
      }
#pragma unroll
      for (int hi = 0; hi < 2; ++hi) {
        const float v = quad_sum(vsum[hi]);
        const int t = rb0 + gq + hi * 8;
        if (tq == 0) pt.v[half * kQ + t] = v * ein[t];
      }
    } else {  // ---- C: d(dt'x) = e_out∘(B·S1ᵀ) + Mᵀ·dy → dx, U, dL/d(dt'), dD partials
      float acc[2][2][4] = {};
      float usum[2] = {0.f, 0.f}, xsum[2] = {0.f, 0.f};
      if (pcols) {
        warp_mma32<T, false, false, false, 2>(acc, sB + rb0 * ldN, ldN, sG + pb0 * ldN, ldN, 0, NP, lane);
#pragma unroll
        for (int jj = 0; jj < 2; ++jj) {
          row_dots(usum, acc[jj], sX, ldP, rb0, pb0 + jj * 16, lane);
          scale_rows(acc[jj], eout[rb0 + gq], eout[rb0 + gq + 8]);
        }
        warp_mma32<T, true, false, true, 1>(acc, sM + rb0, ldM, sDy + pb0, ldP, rb0, kQ, lane);
        T* dx = static_cast<T*>(d.dx);
#pragma unroll
        for (int jj = 0; jj < 2; ++jj) {
          const int pg0 = pb0 + jj * 16;
          uint32_t v[4];  // vec16: this quad's 16 × 16 piece, stored 16 bytes per lane
          float dsum[2][2] = {};
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            const int p = pg0 + j * 8 + tq * 2;
            const float2 Dp = *reinterpret_cast<const float2*>(Dv + p);  // D at p, p + 1
#pragma unroll
            for (int hi = 0; hi < 2; ++hi) {
              const int s = rb0 + gq + hi * 8;
              const float2 xv = ld2(sX + s * ldP + p);
              const float2 dy = ld2(sDy + s * ldP + p);
              xsum[hi] += xv.x * acc[jj][j][hi * 2] + xv.y * acc[jj][j][hi * 2 + 1];
              dsum[j][0] += dy.x * xv.x, dsum[j][1] += dy.y * xv.y;
              const float ds = dtp[s];
              v[hi * 2 + j] = mma::pack2<T>(ds * acc[jj][j][hi * 2] + Dp.x * dy.x, ds * acc[jj][j][hi * 2 + 1] + Dp.y * dy.y);
            }
          }
          store_piece(dx + xo, v, pg0);
#pragma unroll
          for (int j = 0; j < 2; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {  // Σ_s dy·x of this warp's rows, per channel (dD)
              const float v = column_sum(dsum[j][e]);
              if (gq == 0) pt.dp[(warp % 4) * kQ + pg0 + j * 8 + tq * 2 + e] = v;
            }
        }
      }
#pragma unroll
      for (int hi = 0; hi < 2; ++hi) {
        const float u = quad_sum(usum[hi]), xv = quad_sum(xsum[hi]);
        const int s = rb0 + gq + hi * 8;
        if (tq == 0) pt.u[half * kQ + s] = u * eout[s] * dtp[s], pt.ddt[half * kQ + s] = xv;
      }
    }

    // ---- D: dB += diag(e_out·dt')·x·S1 + N2ᵀ·C,  dC += diag(e_in)·dy·S0 + N2·B (row scales on
    //      the A fragments)
    if (ncols) {
      const int s_lo = r0 + gq, s_hi = s_lo + 8;
      warp_mma32<T, false, true>(accB, sX + r0 * ldP, ldP, sG + n0, ldN, 0, PC, lane, eout[s_lo] * dtp[s_lo],
                                 eout[s_hi] * dtp[s_hi]);
      warp_mma32<T, true>(accB, sN2 + r0, ldM, sC + n0, ldN, r0, kQ, lane);
      warp_mma32<T, false, true>(accC, sDy + r0 * ldP, ldP, sH0 + n0, ldN, 0, PC, lane, ein[s_lo], ein[s_hi]);
      warp_mma32<T, false>(accC, sN2 + r0 * ldM, ldM, sB + n0, ldN, 0, r0 + 16, lane);
    }

    __syncthreads();
  }  // heads

  if (warp == kTailWarp) {  // the last head's tail
    const int hp = h_count - 1;
    head_tail(d, Parts(smem + lay.parts0 + (hp & 1) * lay.parts_bytes, lay), b, h_begin + hp, c, t0, q,
              slot(sDtpA, hp), slot(sDerA, hp), slot(sCsA, hp), sSeg, lane);
  }

  // The run's dB / dC rows: a whole group (chunk_gradients_direct) into dB / dC themselves (rows
  // t < q, columns n < N), else into the run's partial slot (rows past the end land in its padding).
  const bool direct = chunk_gradients_direct(d);
  float* outB = direct ? d.dB : d.dBh;
  float* outC = direct ? d.dC : d.dCh;
  const int64_t row0 = direct ? (int64_t(b) * d.L + t0) * d.G + g : (int64_t(b) * d.Lpad + t0) * d.nslots + g * d.nhb + hb;
  const int ldc = direct ? d.N : NP;                              // columns of a row (even)
  const int64_t ldo = int64_t(direct ? d.G : d.nslots) * ldc;     // token stride
#pragma unroll
  for (int jj = 0; jj < 2; ++jj) {
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int hi = 0; hi < 2; ++hi) {
        const int s = r0 + gq + hi * 8, n = n0 + jj * 16 + j * 8 + tq * 2;
        if (n >= (direct ? d.N : NP) || (direct && s >= q)) continue;
        const int64_t o = row0 * ldc + s * ldo + n;
        *reinterpret_cast<float2*>(outB + o) = make_float2(accB[jj][j][hi * 2], accB[jj][j][hi * 2 + 1]);
        *reinterpret_cast<float2*>(outC + o) = make_float2(accC[jj][j][hi * 2], accC[jj][j][hi * 2 + 1]);
      }
  }
}

namespace {
const bool g_preload = (cuda::register_kernel_preload(
                            preload_kernels<ssd_bwd_chunk_mma_kernel<__half>, ssd_bwd_chunk_mma_kernel<__nv_bfloat16>>),
                        true);
}  // namespace

template <typename T>
bool launch_chunk_gradients_mma(const Dev& d, cudaStream_t stream) {
  static_assert(kMaxPC == 64 && kMaxNP == 128 && kQ == 64, "chunk_gradients_mma_fits");
  if (!chunk_gradients_mma_fits(d, false)) return false;
  constexpr size_t bytes = MmaGradLayout(sizeof(T)).bytes;
  set_smem_once<ssd_bwd_chunk_mma_kernel<T>>(bytes);
  ssd_bwd_chunk_mma_kernel<T><<<dim3(d.nc, d.nslots, d.batch), kNT, bytes, stream>>>(d);
  check_launch("ssdChunkScanBackward chunk gradients (tensor cores)");
  return true;
}

template bool launch_chunk_gradients_mma<__half>(const Dev&, cudaStream_t);
template bool launch_chunk_gradients_mma<__nv_bfloat16>(const Dev&, cudaStream_t);

}  // namespace ss::cuda::ssd
