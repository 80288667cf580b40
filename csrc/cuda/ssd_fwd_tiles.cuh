// Pieces shared by the SSD forward's tensor-core kernels (ssd_fwd_mma.cu, ssd_fwd_out_wg.cu):
// tile copies global → shared with zero padding (16 bytes per cp.async where a piece is whole
// and aligned), padded or 128-byte swizzled, and the output epilogue.
#pragma once
#include <cuda_pipeline.h>
#include <cstdint>
#include <type_traits>
#include "cuda/mma_tile.cuh"
#include "cuda/ssd_common.cuh"
#include "cuda/types.cuh"
#include "cuda/wgmma.cuh"

namespace ss::cuda::ssd {

// The 16-bit forward's tiling: kChunkedQ-token chunks in 64-token slices (the rows of every
// output tile); C·Bᵀ stored per (batch, chunk, group) as kFwdTiles16² fragment tiles of 16×16.
constexpr int kFwdSlice = 64;
constexpr int kFwdTiles16 = kChunkedQ / 16;

// Copies a rows × cols tile (cols a multiple of 16 bytes' worth of T) to shared memory with NT
// threads (t: this thread's index among them): cp.async where a 16-byte piece is whole and
// aligned, else element by element; rows past rows_valid and columns past cols_valid are zero.
// The caller commits and waits. When the pieces of a row divide NT, every thread keeps one column
// and steps down the rows (no division or 64-bit multiply per piece).
template <typename T>
__device__ __forceinline__ void copy_piece(T* to, const T* from, bool row_ok, int cols_left) {
  constexpr int V = 16 / sizeof(T);
#pragma unroll
  for (int e = 0; e < V; ++e) to[e] = (row_ok && e < cols_left) ? __ldg(from + e) : from_float<T>(0.f);
}

template <int NT, typename T>
__device__ void copy_tile(int t, T* dst, int ldd, const T* src, int64_t stride, int rows_valid, int rows, int cols_valid, int cols) {
  constexpr int V = 16 / sizeof(T);
  const bool vec_ok = stride % V == 0 && (reinterpret_cast<uintptr_t>(src) % 16) == 0;
  const int vcols = cols / V;
  if (NT % vcols == 0) {
    const int rstep = NT / vcols, c = (t % vcols) * V, r0 = t / vcols;
    const T* from = src + int64_t(r0) * stride + c;
    const int64_t fstep = rstep * stride;
    T* to = dst + r0 * ldd + c;
    if (vec_ok && c + V <= cols_valid) {
      for (int r = r0; r < rows; r += rstep, from += fstep, to += rstep * ldd) {
        if (r < rows_valid)
          __pipeline_memcpy_async(to, from, 16);
        else
          *reinterpret_cast<uint4*>(to) = make_uint4(0u, 0u, 0u, 0u);  // all-zero bits: +0 in every float type
      }
    } else {
      for (int r = r0; r < rows; r += rstep, from += fstep, to += rstep * ldd)
        copy_piece(to, from, r < rows_valid, cols_valid - c);
    }
    return;
  }
  for (int idx = t; idx < rows * vcols; idx += NT) {
    const int r = idx / vcols, c = (idx % vcols) * V;
    T* to = dst + r * ldd + c;
    const T* from = src + int64_t(r) * stride + c;
    if (r < rows_valid && vec_ok && c + V <= cols_valid)
      __pipeline_memcpy_async(to, from, 16);
    else
      copy_piece(to, from, r < rows_valid, cols_valid - c);
  }
}

// Same into a 128-byte-swizzled tile (wgmma.cuh's SW128 layout: 64-column regions of `rows`
// rows, 1024-byte aligned; cols a multiple of 64). When the pieces of a row divide NT into
// whole 8-row steps, every thread keeps one column and one swizzle phase.
template <int NT, typename T>
__device__ void copy_tile_sw128(int t, T* dst, const T* src, int64_t stride, int rows_valid, int rows, int cols_valid,
                                int cols) {
  constexpr int V = 16 / sizeof(T);
  static_assert(V == 8, "16-bit elements");
  const bool vec_ok = stride % V == 0 && (reinterpret_cast<uintptr_t>(src) % 16) == 0;
  const int vcols = cols / V;
  unsigned char* base = reinterpret_cast<unsigned char*>(dst);
  if (NT % vcols == 0 && (NT / vcols) % 8 == 0) {
    const int rstep = NT / vcols, c = (t % vcols) * V, r0 = t / vcols;
    const T* from = src + int64_t(r0) * stride + c;
    const int64_t fstep = rstep * stride;
    unsigned char* to = base + ss::cuda::wg::sw128_offset(r0, c, rows);
    if (vec_ok && c + V <= cols_valid) {
      for (int r = r0; r < rows; r += rstep, from += fstep, to += rstep * 128) {
        if (r < rows_valid)
          __pipeline_memcpy_async(to, from, 16);
        else
          *reinterpret_cast<uint4*>(to) = make_uint4(0u, 0u, 0u, 0u);
      }
    } else {
      for (int r = r0; r < rows; r += rstep, from += fstep, to += rstep * 128)
        copy_piece(reinterpret_cast<T*>(to), from, r < rows_valid, cols_valid - c);
    }
    return;
  }
  for (int idx = t; idx < rows * vcols; idx += NT) {
    const int r = idx / vcols, c = (idx % vcols) * V;
    T* to = reinterpret_cast<T*>(base + ss::cuda::wg::sw128_offset(r, c, rows));
    const T* from = src + int64_t(r) * stride + c;
    if (r < rows_valid && vec_ok && c + V <= cols_valid)
      __pipeline_memcpy_async(to, from, 16);
    else
      copy_piece(to, from, r < rows_valid, cols_valid - c);
  }
}

// silu(z) = z·σ(z) = h + h·tanh(h), h = z / 2: one MUFU.TANH (tanh.approx, relative error
// ≈ 2^-11) where z / (1 + e^-z) takes an exponential and a reciprocal. Forward epilogue only (the
// backward keeps silu_f).
__device__ __forceinline__ float silu_fast(float z) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  const float h = 0.5f * z;
  float t;
  asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(h));
  return fmaf(h, t, h);
#else
  return silu_f(z);
#endif
}

// Epilogue of the output kernels: y = (acc + D·x)·silu(z) for warp w's 16 rows of the 64 × 64
// output tile (rows r·64 + 16·w .. of the chunk starting at t0, headdim columns p0 ..), acc in
// the mma accumulator layout (acc[4·ni + e]: 16×8 tile ni, element e). The x and z tiles (zt
// null: no z; zero past pw / rv) have the same layout: off(hf, ni) is the byte offset in them of
// this lane's two values at row 16·w + lane/4 + 8·hf, columns 8·ni + 2·(lane % 4), + 1.
template <typename T, typename Off>
__device__ __forceinline__ void store_y(const Dev& d, const float* acc, const unsigned char* xt, const unsigned char* zt,
                                        Off&& off, int b, int h, int t0, int r, int p0, int pw, int rv, int w,
                                        int lane) {
  using namespace ss::cuda::mma;
  T* y = static_cast<T*>(d.y);
  const int tq = 2 * (lane & 3);
  const bool pairs = d.P % 2 == 0;
  const float d_head = (d.D && !d.d_per_channel) ? __ldg(d.D + h) : 0.f;
  const float* d_chan = (d.D && d.d_per_channel) ? d.D + h * d.P + p0 : nullptr;
  if (d.P % 8 == 0) {
    // 16 bytes per lane: per 16 columns, the quad's two rows × 16 columns are transposed across
    // it (quad_transpose) so that each lane stores one whole 16-byte piece (32-byte sectors
    // written whole, a quarter of the store instructions). D of the lane's columns and whether
    // there is a gate are settled before the loop (no branch per element).
    float2 dv[8];
#pragma unroll
    for (int ni = 0; ni < 8; ++ni) {
      const int pp = 8 * ni + tq;
      dv[ni] = d_chan ? (pp < pw ? make_float2(__ldg(d_chan + pp), __ldg(d_chan + pp + 1)) : make_float2(0.f, 0.f))
                      : make_float2(d_head, d_head);
    }
    const int qt = lane & 3;
    const int tl_me = 16 * w + (lane >> 2) + (qt >> 1) * 8;  // the row this lane stores
    T* yrow = y + ((int64_t(b) * d.L + t0 + r * 64 + tl_me) * d.H + h) * d.P + p0;
    auto run = [&](auto gated) {
#pragma unroll
      for (int c16 = 0; c16 < 4; ++c16) {
        uint32_t v[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int hf = k >> 1, ni = 2 * c16 + (k & 1);
          const uint32_t o = off(hf, ni);
          const float2 xv = unpack2<T>(*reinterpret_cast<const uint32_t*>(xt + o));
          float v0 = fmaf(dv[ni].x, xv.x, acc[4 * ni + 2 * hf]), v1 = fmaf(dv[ni].y, xv.y, acc[4 * ni + 2 * hf + 1]);
          if constexpr (decltype(gated)::value) {
            const float2 zv = unpack2<T>(*reinterpret_cast<const uint32_t*>(zt + o));
            v0 *= silu_fast(zv.x), v1 *= silu_fast(zv.y);
          }
          v[k] = pack2<T>(v0, v1);
        }
        quad_transpose(v, qt);
        const int pc = 16 * c16 + (qt & 1) * 8;  // P % 8 == 0: the 8 columns are whole or past pw
        if (tl_me < rv && pc < pw) *reinterpret_cast<uint4*>(yrow + pc) = make_uint4(v[0], v[1], v[2], v[3]);
      }
    };
    if (zt)
      run(std::true_type{});
    else
      run(std::false_type{});
    return;
  }
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int tl = 16 * w + (lane >> 2) + 8 * hf;  // row inside the tile
    if (tl >= rv) continue;
    T* yrow = y + ((int64_t(b) * d.L + t0 + r * 64 + tl) * d.H + h) * d.P + p0;
#pragma unroll
    for (int ni = 0; ni < 8; ++ni) {
      const int pp = 8 * ni + tq;  // column inside the headdim tile
      if (pp >= pw) continue;
      const bool two = pp + 1 < pw;
      const uint32_t o = off(hf, ni);
      const float2 xv = unpack2<T>(*reinterpret_cast<const uint32_t*>(xt + o));
      float v0 = acc[4 * ni + 2 * hf], v1 = acc[4 * ni + 2 * hf + 1];
      if (d_chan) {
        v0 += __ldg(d_chan + pp) * xv.x;
        if (two) v1 += __ldg(d_chan + pp + 1) * xv.y;
      } else {
        v0 += d_head * xv.x, v1 += d_head * xv.y;
      }
      if (zt) {
        const float2 zv = unpack2<T>(*reinterpret_cast<const uint32_t*>(zt + o));
        v0 *= silu_fast(zv.x), v1 *= silu_fast(zv.y);
      }
      if (pairs) {
        *reinterpret_cast<uint32_t*>(yrow + pp) = pack2<T>(v0, v1);
      } else {
        yrow[pp] = from_float<T>(v0);
        if (two) yrow[pp + 1] = from_float<T>(v1);
      }
    }
  }
}

// Per-chunk readiness between the state kernel and the output kernel that runs beside it (a
// programmatic dependent): a counter per (batch, head, chunk), zeroed before the state kernel,
// incremented by each state block of the head once the chunk's incoming state and scalars are
// stored. The release / acquire pair is the one of a grid barrier: the storing threads meet at a
// block barrier, then one thread releases at GPU scope; the waiting block's thread acquires, then
// orders its bulk tensor copies (async proxy) after that, then meets its block at a barrier.
__device__ __forceinline__ void signal_ready(unsigned* counter) {
  asm volatile("fence.acq_rel.gpu;\nred.relaxed.gpu.global.add.u32 [%0], 1;\n" ::"l"(counter) : "memory");
}
__device__ __forceinline__ void wait_ready(const unsigned* counter, unsigned need) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  for (;;) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(counter) : "memory");
    if (v >= need) break;
    __nanosleep(128);
  }
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
#endif
}

// A state kernel thread's E tokens of a chunk (E·tid ..): raw dt (+ bias) and restart flags,
// fetched a chunk ahead of their scan.
template <int E>
struct ChunkTokens {
  float raw[E];
  int flag[E];
  __device__ __forceinline__ void fetch(const Dev& d, int b, int h, float bias, int c, int tid) {
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int64_t t = int64_t(c) * kChunkedQ + E * tid + e;
      raw[e] = t < d.L ? dt_at(d, b, t, h) + bias : 0.f;
      flag[e] = (d.seq_idx && t > 0 && t < d.L) ? int(__ldg(d.seq_idx + int64_t(b) * d.L + t) !=
                                                      __ldg(d.seq_idx + int64_t(b) * d.L + t - 1))
                                                : 0;
    }
  }
};

// Those tokens' chunk scalars, scanned over the NWARP warps of one head (the block's warps
// NWARP·k .. for the k-th head of the block: tid is the thread's index among them, sRedA / sRedS
// that head's NWARP slots): dt' (0 past the end), the inclusive scans from the chunk's start of
// dt'·A (cs) and of the restart flags (seg), and the chunk's totals. Every thread of the block
// calls it (one __syncthreads). `overlap` runs between the thread's own part and the block's
// (the next chunk's fetch into tok, whose values are consumed by then).
template <int E>
struct ChunkScan {
  float dtp[E], cs[E], cs_end;
  int seg[E], seg_end;
  // The state update's weight of token e: exp(cs_end − cs)·dt' on the chunk's last segment, else 0.
  __device__ __forceinline__ float weight(int e) const { return seg[e] == seg_end ? __expf(cs_end - cs[e]) * dtp[e] : 0.f; }
  // The state's decay across the chunk (0 when a sequence restarts inside it).
  __device__ __forceinline__ float decay() const { return seg_end == 0 ? __expf(cs_end) : 0.f; }
  // (cs, dt') and, with seqIdx, the segment of token e for the output kernel (i: its index in the
  // (batch, H, Lpad) scalars).
  __device__ __forceinline__ void store(int e, float2* scal, int* segs, int64_t i) const {
    scal[i] = make_float2(cs[e], dtp[e]);
    if (segs) segs[i] = seg[e];
  }
};
template <int E, int NWARP, typename Overlap>
__device__ __forceinline__ ChunkScan<E> chunk_scan(const Dev& d, const ChunkTokens<E>& tok, int c, float A, int tid,
                                                   float* sRedA, int* sRedS, Overlap&& overlap) {
  const int lane = tid & 31, warp = tid >> 5;
  ChunkScan<E> r;
  float run = 0.f;
  int runs = 0;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    float der;
    r.dtp[e] = int64_t(c) * kChunkedQ + E * tid + e < d.L ? dt_forward(d, tok.raw[e], &der) : 0.f;
    run += r.dtp[e] * A, runs += tok.flag[e];
    r.cs[e] = run, r.seg[e] = runs;
  }
  overlap();
  float ia = run;
  int is = runs;
#pragma unroll
  for (int off = 1; off < 32; off *= 2) {
    const float ya = __shfl_up_sync(0xffffffffu, ia, off);
    const int ys = __shfl_up_sync(0xffffffffu, is, off);
    if (lane >= off) ia += ya, is += ys;
  }
  if (lane == 31) sRedA[warp] = ia, sRedS[warp] = is;
  __syncthreads();
  float pa = ia - run;
  int ps = is - runs;
  r.cs_end = 0.f, r.seg_end = 0;
#pragma unroll
  for (int w = 0; w < NWARP; ++w) {
    if (w < warp) pa += sRedA[w], ps += sRedS[w];
    r.cs_end += sRedA[w], r.seg_end += sRedS[w];
  }
#pragma unroll
  for (int e = 0; e < E; ++e) r.cs[e] += pa, r.seg[e] += ps;
  return r;
}

// Causal, segment-masked weights of token columns s0 and s0 + 1 for the two output rows a lane
// holds in a 16-row product tile (chunk positions row_lo, row_hi): exp2(cs_row − cs_s)·dt'_s where
// s ≤ row and s is in the row's segment, else 0; as {lo·s0, lo·s0+1, hi·s0, hi·s0+1}. scal: (cumulative
// log2 decay, dt') per chunk position; seg: segment ids.
__device__ __forceinline__ float4 masked_weights(const float2* scal, const int* seg, int s0, int row_lo, int row_hi,
                                                 int seg_lo, int seg_hi, float cs_lo, float cs_hi) {
  const float4 sc = *reinterpret_cast<const float4*>(scal + s0);  // (cs, dt') of s0, s0 + 1
  const int sg0 = seg[s0], sg1 = seg[s0 + 1];
  return make_float4((s0 <= row_lo && sg0 == seg_lo) ? exp2f(cs_lo - sc.x) * sc.y : 0.f,
                     (s0 + 1 <= row_lo && sg1 == seg_lo) ? exp2f(cs_lo - sc.z) * sc.w : 0.f,
                     (s0 <= row_hi && sg0 == seg_hi) ? exp2f(cs_hi - sc.x) * sc.y : 0.f,
                     (s0 + 1 <= row_hi && sg1 == seg_hi) ? exp2f(cs_hi - sc.z) * sc.w : 0.f);
}

}  // namespace ss::cuda::ssd
