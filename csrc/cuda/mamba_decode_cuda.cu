// The Mamba-1 batch-1 decode megakernel (ops/mamba_decode.h): every layer of the stack in one
// persistent kernel, so that each SM's weight stream runs on across the phases of a layer and
// across layers instead of stopping at every kernel boundary.
//
// Grid: one block per SM (all resident: ~220 KB of shared memory each, checked by occupancy).
// Each block owns fixed, contiguous shares: rows [r0, r1) of in_proj and of out_proj, a channel
// range of the SSM (with its dt_proj rows), and every G-th piece of x_proj. A block is
//  - one PRODUCER warp (one thread) that walks the block's weight bytes of every layer in the
//    order the consumers use them and issues bulk copies (cp.async.bulk) into a ring of
//    shared-memory slots, waiting only for free slots, never for activations: during the grid
//    barriers it is already loading the next phase's and the next layer's weights;
//  - NW CONSUMER warps that take the pieces in turn (piece k -> warp k % NW, slot k % slots, the
//    slot count a multiple of NW, so each slot always serves the same warp, in order) and run the
//    phases of a layer, separated by grid-wide barriers (one arrival counter on its own line):
//      P0  h (float32, all of it, from L2) normalised by the layer's RMSNorm weight, in shared memory;
//      P1  in_proj rows · x; the x rows take the conv step (u), the z rows are stored    | barrier
//      P2  x_proj pieces · u (partial sums to global, added in a fixed order after)       | barrier
//      P3  dt_low, B, C; per channel: dt = softplus(dt_proj · dt_low + bias), the state
//          update, y = (C·s + D·u)·silu(z)                                                | barrier
//      P4  out_proj rows · y, h[r] += (rounded) product                                    | barrier
// Rounding as the unfused folded step: z, the conv input and u, x_proj's outputs, dt_proj's
// output, y and out_proj's output are rounded to T; sums are float32.
// Data other blocks wrote in this launch (h, u, z, y, partial sums) is read with ld.global.cg
// (L2), never through L1, which is not coherent across SMs.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>
#include "cuda/async_copy.cuh"
#include "cuda/bulk_copy.cuh"
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "cuda/smem_optin.h"
#include "ops/mamba_decode.h"

namespace ss {
namespace {

using cuda::to_float;

struct MegaTraits {
  static constexpr int kConsumerWarps = 16;         // (8, with a 200 KB ring: slower in M1-M4)
  static constexpr int threads(int nw) { return nw * 32 + 32; }  // + the producer warp
  static constexpr int64_t kPieceBytes = 6 * 1024;  // largest piece (as the gemv stream kernel)
  static constexpr int kMaxSlots = 64;
  static constexpr int kMaxState = 32;              // dstate: one lane per state
  static constexpr int kMaxConv = 8;                // conv width: the window in registers
};

// How a block's share of a matrix (rows of K elements) is cut into pieces: `rows` whole rows per
// piece, or (parts > 1) 1/parts of a row.
struct PieceShape {
  int rows = 1, parts = 1;
};

// Everything the host decides besides the layers.
struct MegaShape {
  int G = 0;                       // blocks
  int slots = 0;
  uint32_t slot_bytes = 0;
  uint32_t act_off = 0, psum_off = 0, dbc_off = 0, z_off = 0, hs_off = 0, tab_off = 0, ring_off = 0;
  // The layer's small per-block operands, staged by cp.async at the layer's start: conv state, conv
  // weight, conv bias of the block's x rows; A, SSM state, D, dt bias of its channels.
  uint32_t side_off[7] = {};
  PieceShape in, out, dt;          // in_proj (K = H), out_proj (K = I), dt_proj (K = R)
  int xp_parts = 1;                // x_proj: pieces per row (dealt to the blocks in turn)
};

struct MegaArgs {
  int64_t H, I, N, R, W;
  int layers;
  float eps;
  DType conv_dtype;
  int conv_bytes;        // its element size
  float* h;
  unsigned char* u;      // (I) T
  unsigned char* z;      // (I) T
  unsigned char* y;      // (I) T
  float* xpart;          // (R + 2N) · xp_parts
  unsigned long long* trace;  // null, or [blocks][layers][kMarks] clocks (STATESPACE_MEGA_TRACE)
  MegaShape sh;
  MambaDecodeLayer layer[kMambaDecodeMaxLayers];
};

// Phase marks per layer of the trace: 0 layer start, 1 P0 done, 2 in_proj products done, 3 P1
// epilogue done, 4 barrier 1 passed, 5 u loaded, 6 x_proj done, 7 barrier 2 passed, 8 dt_low/B/C
// loaded, 9 update done, 10 barrier 3 passed, 11 y loaded, 12 out_proj products done, 13 residual done.
constexpr int kMarks = 14;

// Block b's contiguous share [first, first + count) of n items over G blocks.
struct Span {
  int64_t first;
  int count;
};
__host__ __device__ inline Span share(int64_t n, int G, int b) {
  const int64_t lo = n * b / G, hi = n * (b + 1) / G;
  return {lo, static_cast<int>(hi - lo)};
}
__host__ __device__ inline int pieces_of(const PieceShape& s, int rows) { return s.parts > 1 ? rows * s.parts : (rows + s.rows - 1) / s.rows; }
// x_proj pieces of block b: global pieces b, b + G, ...
__host__ __device__ inline int xp_pieces(int64_t total, int G, int b) { return b < total ? static_cast<int>((total - b + G - 1) / G) : 0; }

// Element offset (from the matrix start) and element count of piece j of a block's share.
struct Piece {
  int64_t off, elems;
};
__device__ __forceinline__ Piece piece_at(const PieceShape& s, const Span& sp, int64_t K, int j) {
  if (s.parts > 1) return {(sp.first + j / s.parts) * K + (j % s.parts) * (K / s.parts), K / s.parts};
  const int nr = min(s.rows, sp.count - j * s.rows);
  return {(sp.first + static_cast<int64_t>(j) * s.rows) * K, static_cast<int64_t>(nr) * K};
}

// a0 + Σ w[0..3]·lo, a1 + Σ w[4..7]·hi for 8 16-bit weights read from shared memory as one 16-byte word.
template <typename T> __device__ __forceinline__ void dot8(const T* wp, float4 lo, float4 hi, float& a0, float& a1) {
  const uint4 q = *reinterpret_cast<const uint4*>(wp);
  const uint32_t u[4] = {q.x, q.y, q.z, q.w};
  float w[8];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      w[2 * j] = __uint_as_float(u[j] << 16);
      w[2 * j + 1] = __uint_as_float(u[j] & 0xffff0000u);
    } else {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&u[j]));
      w[2 * j] = f.x;
      w[2 * j + 1] = f.y;
    }
  }
  a0 = fmaf(lo.x, w[0], a0);
  a0 = fmaf(lo.y, w[1], a0);
  a0 = fmaf(lo.z, w[2], a0);
  a0 = fmaf(lo.w, w[3], a0);
  a1 = fmaf(hi.x, w[4], a1);
  a1 = fmaf(hi.y, w[5], a1);
  a1 = fmaf(hi.z, w[6], a1);
  a1 = fmaf(hi.w, w[7], a1);
}

// 8 elements of T from 16 bytes.
template <typename T> __device__ __forceinline__ void unpack8(uint4 q, float (&f)[8]) {
  const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      f[2 * j] = __uint_as_float(u[j] << 16);
      f[2 * j + 1] = __uint_as_float(u[j] & 0xffff0000u);
    } else {
      const float2 v = __half22float2(*reinterpret_cast<const __half2*>(&u[j]));
      f[2 * j] = v.x;
      f[2 * j + 1] = v.y;
    }
  }
}

// Element i of a T vector that other blocks wrote in this launch (from L2).
template <typename T> __device__ __forceinline__ float ldcg_t(const unsigned char* base, int64_t i) {
  const unsigned short bits = __ldcg(reinterpret_cast<const unsigned short*>(base) + i);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __uint_as_float(static_cast<uint32_t>(bits) << 16);
  else return __half2float(__ushort_as_half(bits));
}

template <typename T> __device__ __forceinline__ float round_t(float v) { return to_float(cuda::from_float<T>(v)); }

template <int NW> __device__ __forceinline__ void consumer_sync() { asm volatile("bar.sync 1, %0;" ::"n"(NW * 32) : "memory"); }
__device__ __forceinline__ void prefetch_l1(const void* p) { asm volatile("prefetch.global.L1 [%0];" ::"l"(p)); }

// The grid barrier's arrival counter and the count of blocks that finished, each on its own line.
// Zero at module load; the last block of a launch to finish resets both (no block polls then),
// so a launch needs no memset before it (which would also break the programmatic launch chain).
// One stream per device: launches never overlap.
__device__ __align__(128) unsigned int g_mega_sync[64];
constexpr int kArrive = 0, kDone = 32;

// Grid-wide barrier of the consumer warps: the k-th barrier of the launch (k = 1, 2, ...) returns
// once every block has arrived k times. The block's threads meet at bar.sync, so their writes are
// ordered before thread 0's release-add; its acquire-load of the count orders the block's reads
// after it (as CUTLASS's GenericBarrier; the __threadfence()s of a cooperative-groups grid sync
// around them cost ~1 µs per barrier here: run M1).
template <int NW> __device__ __forceinline__ void grid_sync(unsigned int* counter, unsigned int k, int G) {
  consumer_sync<NW>();
  if (threadIdx.x == 0) {
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(counter) : "memory");
    const unsigned int target = k * static_cast<unsigned int>(G);
    unsigned int seen = 0;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(counter) : "memory");
    } while (seen < target);
  }
  consumer_sync<NW>();
}

// The activation vector of a phase in shared memory: element 8v + j at lo[v] (j < 4) / hi[v].
struct Act {
  float4* lo;
  float4* hi;
  __device__ __forceinline__ float at(int64_t k) const {
    const float4 q = (k & 7) < 4 ? lo[k >> 3] : hi[k >> 3];
    const int j = k & 3;
    return j == 0 ? q.x : j == 1 ? q.y : j == 2 ? q.z : q.w;
  }
  __device__ __forceinline__ void put(int64_t v, const float (&f)[8]) const {
    lo[v] = make_float4(f[0], f[1], f[2], f[3]);
    hi[v] = make_float4(f[4], f[5], f[6], f[7]);
  }
};

// Loads a vector of n (multiple of 8) elements of T that other blocks wrote in this launch into act.
template <typename T, int NW> __device__ __forceinline__ void load_act(const Act& act, const unsigned char* src, int64_t n) {
  for (int64_t v = threadIdx.x; v < n / 8; v += NW * 32) {
    float f[8];
    unpack8<T>(__ldcg(reinterpret_cast<const uint4*>(src) + v), f);
    act.put(v, f);
  }
}

template <typename T, typename S, int NW>
__global__ void __launch_bounds__(MegaTraits::threads(NW), 1) mamba_decode_kernel(const __grid_constant__ MegaArgs a) {
  constexpr int NT = NW * 32;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ float ss_w[NW];
  const MegaShape& sh = a.sh;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem);
  uint64_t* empty = full + sh.slots;
  const Act act{reinterpret_cast<float4*>(smem + sh.act_off), reinterpret_cast<float4*>(smem + sh.act_off) + (a.H > a.I ? a.H : a.I) / 8};
  float* psum = reinterpret_cast<float*>(smem + sh.psum_off);
  float* dbc = reinterpret_cast<float*>(smem + sh.dbc_off);  // dt_low, B, C of the layer (rounded to T)
  float* zs = reinterpret_cast<float*>(smem + sh.z_off);     // z of the block's channels
  float* hs = reinterpret_cast<float*>(smem + sh.hs_off);    // h of the block's out_proj rows (from P0)
  unsigned char* ring = smem + sh.ring_off;
  const int b = blockIdx.x, G = sh.G;
  const int64_t H = a.H, I = a.I, N = a.N, R = a.R, W = a.W;
  const int64_t XR = R + 2 * N;                                 // x_proj rows
  const int64_t xp_total = XR * sh.xp_parts, xp_len = I / sh.xp_parts;
  const Span in_sp = share(2 * I, G, b), out_sp = share(H, G, b), ch_sp = share(I, G, b);
  const int n_in = pieces_of(sh.in, in_sp.count), n_out = pieces_of(sh.out, out_sp.count), n_dt = pieces_of(sh.dt, ch_sp.count);
  const int n_xp = xp_pieces(xp_total, G, b);

  // The block's pieces of one layer (the same in every layer but for the matrices' addresses), so
  // that the single producer thread spends a few instructions per piece: at ~22 GB/s per SM a 5 KB
  // piece is due every ~450 cycles, and computing its address from the shares took a good part of
  // that. Entry r: element offset, and bytes << 2 | matrix (0 in_proj, 1 x_proj, 2 dt_proj, 3 out_proj).
  const int per_layer = n_in + n_xp + n_dt + n_out;
  uint2* tab = reinterpret_cast<uint2*>(smem + sh.tab_off);
  for (int r = threadIdx.x; r < per_layer; r += blockDim.x) {
    Piece pc;
    uint32_t mat;
    if (r < n_in) {
      pc = piece_at(sh.in, in_sp, H, r), mat = 0;
    } else if (r < n_in + n_xp) {
      const int64_t q = b + static_cast<int64_t>(r - n_in) * G;
      pc = {(q / sh.xp_parts) * I + (q % sh.xp_parts) * xp_len, xp_len}, mat = 1;
    } else if (r < n_in + n_xp + n_dt) {
      pc = piece_at(sh.dt, ch_sp, R, r - n_in - n_xp), mat = 2;
    } else {
      pc = piece_at(sh.out, out_sp, I, r - n_in - n_xp - n_dt), mat = 3;
    }
    tab[r] = make_uint2(static_cast<uint32_t>(pc.off), static_cast<uint32_t>(pc.elems * 2) << 2 | mat);
  }
  if (threadIdx.x < sh.slots) {
    cuda::mbar_init(cuda::shared_addr(full + threadIdx.x), 1);
    cuda::mbar_init(cuda::shared_addr(empty + threadIdx.x), 1);
    cuda::mbar_init_fence();
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  if (warp == NW) {
    // Producer: only weights, which no kernel writes, so no wait for anything but free slots.
    if (lane != 0) return;
    const uint64_t pol = cuda::l2_evict_first();
    const uint32_t full0 = cuda::shared_addr(full), empty0 = cuda::shared_addr(empty);
    int s = 0;           // slot of the next piece
    uint32_t round = 0;  // times the ring has wrapped
    for (int l = 0; l < a.layers; ++l) {
      const MambaDecodeLayer& L = a.layer[l];
      const unsigned char *w_in = static_cast<const unsigned char*>(L.in_proj), *w_x = static_cast<const unsigned char*>(L.x_proj),
                          *w_dt = static_cast<const unsigned char*>(L.dt_proj), *w_out = static_cast<const unsigned char*>(L.out_proj);
      for (int r = 0; r < per_layer; ++r) {
        const uint2 e = tab[r];
        if (round > 0) cuda::mbar_wait(empty0 + 8 * s, (round - 1) & 1);  // the slot's previous piece has been read
        const uint32_t bytes = e.y >> 2;
        cuda::mbar_arrive_expect_tx(full0 + 8 * s, bytes);
        const uint32_t m = e.y & 3;
        const unsigned char* w = m == 0 ? w_in : m == 1 ? w_x : m == 2 ? w_dt : w_out;
        cuda::bulk_copy_to_shared(ring + static_cast<size_t>(s) * sh.slot_bytes, w + static_cast<size_t>(e.x) * 2, bytes, full0 + 8 * s, pol);
        if (++s == sh.slots) s = 0, ++round;
      }
    }
    return;
  }

  // ---- consumers ----
  const int tid = threadIdx.x;
  uint32_t seq = 0;        // pieces consumed so far (all warps count every piece)
  unsigned int bar = 0;    // grid barriers passed
  // Waits for piece seq + j (owned by this warp) and returns its slot's address.
  auto take = [&](int j) -> const T* {
    const uint32_t k = seq + j;
    const int s = static_cast<int>(k % sh.slots);
    cuda::mbar_wait<true>(cuda::shared_addr(full + s), (k / sh.slots) & 1);
    return reinterpret_cast<const T*>(ring + static_cast<size_t>(s) * sh.slot_bytes);
  };
  auto release = [&](int j) {
    __syncwarp();
    if (lane == 0) cuda::mbar_arrive(cuda::shared_addr(empty + static_cast<int>((seq + j) % sh.slots)));
  };
  auto mine = [&](int j) { return static_cast<int>((seq + j) % NW) == warp; };
  // Σ over nv vectors of a piece at wp against act from vector x0, reduced over the warp.
  auto dot = [&](const T* wp, int64_t x0, int64_t nv) {
    float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
    for (int64_t i = lane; i < nv; i += 64) {
      dot8(wp + i * 8, act.lo[x0 + i], act.hi[x0 + i], a0, a1);
      if (i + 32 < nv) dot8(wp + (i + 32) * 8, act.lo[x0 + i + 32], act.hi[x0 + i + 32], a2, a3);
    }
    float r = (a0 + a1) + (a2 + a3);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) r += __shfl_xor_sync(0xffffffffu, r, o);
    return r;
  };
  // The products of a phase's pieces (shape s, share sp, rows of K) into psum[local row · parts + part].
  auto products = [&](const PieceShape& s, const Span& sp, int64_t K, int n) {
    for (int j = 0; j < n; ++j) {
      if (!mine(j)) continue;
      const T* wp = take(j);
      if (s.parts > 1) {
        const int64_t len = K / s.parts;
        const float v = dot(wp, (j % s.parts) * (len / 8), len / 8);
        if (lane == 0) psum[j] = v;
      } else {
        const int nr = min(s.rows, sp.count - j * s.rows);
        for (int r = 0; r < nr; ++r) {
          const float v = dot(wp + r * K, 0, K / 8);
          if (lane == 0) psum[j * s.rows + r] = v;
        }
      }
      release(j);
    }
    seq += n;
  };
  auto row_sum = [&](const PieceShape& s, int i) {
    float v = 0.f;
    for (int q = 0; q < s.parts; ++q) v += psum[i * s.parts + q];
    return v;
  };

  // Brings the lines of `bytes` bytes at p toward L1 (the threads take every NT-th line).
  auto prefetch_range = [&](const void* p, int64_t bytes) {
    if (!p || bytes <= 0) return;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{127}, hi = reinterpret_cast<uintptr_t>(p) + bytes;
    for (uintptr_t q = lo + static_cast<uintptr_t>(tid) * 128; q < hi; q += static_cast<uintptr_t>(NT) * 128) prefetch_l1(reinterpret_cast<const void*>(q));
  };
  // Copies [p, p + bytes) rounded out to 16-byte chunks into shared memory at dst (cp.async, by all
  // consumer threads); returns p's byte offset in dst. (The chunks at the ends may hold a
  // neighbouring block's bytes, which are never read.)
  auto stage = [&](unsigned char* dst, const void* p, int64_t bytes) -> int {
    if (bytes <= 0) return 0;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{15}, hi = (reinterpret_cast<uintptr_t>(p) + bytes + 15) & ~uintptr_t{15};
    for (uintptr_t q = lo + static_cast<uintptr_t>(tid) * 16; q < hi; q += static_cast<uintptr_t>(NT) * 16)
      cuda::copy_async16(dst + (q - lo), reinterpret_cast<const void*>(q));
    return static_cast<int>(reinterpret_cast<uintptr_t>(p) - lo);
  };
  const int64_t cbytes = a.conv_bytes;
  // STATESPACE_MEGA_TRACE (diagnostics): thread 0's SM clock at the phase marks of every layer.
  unsigned long long* const trace = a.trace ? a.trace + static_cast<size_t>(b) * a.layers * kMarks : nullptr;
#define MARK(k) \
  if (trace && tid == 0) trace[l * kMarks + (k)] = clock64()
  const int64_t x_end = in_sp.first + in_sp.count < I ? in_sp.first + in_sp.count : I;
  const int64_t x_rows = x_end > in_sp.first ? x_end - in_sp.first : 0;  // the block's conv rows

  prefetch_range(a.layer[0].norm_w, H * 2);  // (later layers': during the layer before)
  cuda::pdl_wait();  // h and the states: written by earlier kernels
  for (int l = 0; l < a.layers; ++l) {
    const MambaDecodeLayer& L = a.layer[l];
    MARK(0);
    // The block's small operands of this layer into shared memory now (asynchronously: waited for
    // before the P1 epilogue), so that the epilogues and the update read no global memory: under
    // the weight stream every dependent global round trip costs 1-2 µs (trace, run M4).
    const int o_cs = stage(smem + sh.side_off[0], static_cast<const unsigned char*>(L.conv_state) + in_sp.first * (W - 1) * cbytes, x_rows * (W - 1) * cbytes);
    const int o_cw = stage(smem + sh.side_off[1], static_cast<const T*>(L.conv_w) + in_sp.first * W, x_rows * W * 2);
    const int o_cb = L.conv_b ? stage(smem + sh.side_off[2], static_cast<const T*>(L.conv_b) + in_sp.first, x_rows * 2) : 0;
    const int o_A = stage(smem + sh.side_off[3], L.A + ch_sp.first * N, ch_sp.count * N * 4);
    const int o_st = stage(smem + sh.side_off[4], static_cast<const S*>(L.ssm_state) + ch_sp.first * N, ch_sp.count * N * static_cast<int64_t>(sizeof(S)));
    const int o_D = L.D ? stage(smem + sh.side_off[5], L.D + ch_sp.first, ch_sp.count * 4) : 0;
    const int o_bias = stage(smem + sh.side_off[6], L.dt_bias + ch_sp.first, ch_sp.count * 4);
    cuda::copy_async_commit();
    const void* cs_s = smem + sh.side_off[0] + o_cs;  // conv state rows (conv dtype)
    const T* cw_s = reinterpret_cast<const T*>(smem + sh.side_off[1] + o_cw);
    const T* cb_s = reinterpret_cast<const T*>(smem + sh.side_off[2] + o_cb);
    const float* A_s = reinterpret_cast<const float*>(smem + sh.side_off[3] + o_A);
    const S* st_s = reinterpret_cast<const S*>(smem + sh.side_off[4] + o_st);
    const float* D_s = reinterpret_cast<const float*>(smem + sh.side_off[5] + o_D);
    const float* bias_s = reinterpret_cast<const float*>(smem + sh.side_off[6] + o_bias);

    // P0: x = h · norm_w (f32) into act; the RMS scale applies to the sums (as the folded gemv).
    float ss = 0.f;
    for (int64_t v = tid; v < H / 8; v += NT) {
      const float4 q0 = __ldcg(reinterpret_cast<const float4*>(a.h) + 2 * v), q1 = __ldcg(reinterpret_cast<const float4*>(a.h) + 2 * v + 1);
      float f[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w}, w[8];
      unpack8<T>(*reinterpret_cast<const uint4*>(static_cast<const T*>(L.norm_w) + v * 8), w);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int64_t o = v * 8 + j - out_sp.first;  // the block's own rows of h, for P4's residual add
        if (o >= 0 && o < out_sp.count) hs[o] = f[j];
        ss = fmaf(f[j], f[j], ss);
        f[j] *= w[j];
      }
      act.put(v, f);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0) ss_w[warp] = ss;
    consumer_sync<NW>();
    MARK(1);
    float tot = 0.f;
#pragma unroll
    for (int w = 0; w < NW; ++w) tot += ss_w[w];
    const float scale = rsqrtf(tot / static_cast<float>(H) + a.eps);

    // P1: in_proj; x rows take the conv step (u), z rows are stored.
    products(sh.in, in_sp, H, n_in);
    cuda::copy_async_wait();  // this thread's staged operands (made visible to all by the sync)
    consumer_sync<NW>();
    MARK(2);
    for (int i = tid; i < in_sp.count; i += NT) {
      const int64_t n = in_sp.first + i;
      const float v = row_sum(sh.in, i) * scale;
      if (n < I) {
        // causalConv1dUpdate's arithmetic on the rounded product (as the gemv's conv epilogue);
        // the window is read before any store (a load after a store to the line waits for it)
        const float x = round_t<T>(v);
        const int64_t i_loc = n - in_sp.first;  // the row among the block's staged ones
        const T* cw = cw_s + i_loc * W;
        const int64_t base = n * (W - 1);
        float win[MegaTraits::kMaxConv - 1];
#pragma unroll
        for (int k = 0; k < MegaTraits::kMaxConv - 1; ++k) win[k] = k < W - 1 ? cuda::load_any(cs_s, a.conv_dtype, i_loc * (W - 1) + k) : 0.f;
        float acc = L.conv_b ? to_float(cb_s[i_loc]) : 0.f;
#pragma unroll
        for (int k = 0; k < MegaTraits::kMaxConv - 1; ++k)
          if (k < W - 1) acc += to_float(cw[k]) * win[k];
        acc += to_float(cw[W - 1]) * x;
#pragma unroll
        for (int k = 0; k < MegaTraits::kMaxConv - 1; ++k)
          if (k < W - 1) cuda::store_any(L.conv_state, a.conv_dtype, base + k, k + 1 < W - 1 ? win[k + 1] : x);
        reinterpret_cast<T*>(a.u)[n] = cuda::from_float<T>(cuda::silu_f(acc));
      } else {
        reinterpret_cast<T*>(a.z)[n - I] = cuda::from_float<T>(v);
      }
    }
    MARK(3);
    grid_sync<NW>(g_mega_sync + kArrive, ++bar, G);
    MARK(4);

    // P2: x_proj pieces · u; partial sums to global.
    load_act<T, NW>(act, a.u, I);
    consumer_sync<NW>();
    MARK(5);
    for (int i = 0; i < n_xp; ++i) {
      if (!mine(i)) continue;
      const T* wp = take(i);
      const int64_t q = b + static_cast<int64_t>(i) * G;
      const float v = dot(wp, (q % sh.xp_parts) * (xp_len / 8), xp_len / 8);
      if (lane == 0) a.xpart[q] = v;
      release(i);
    }
    seq += n_xp;
    MARK(6);
    grid_sync<NW>(g_mega_sync + kArrive, ++bar, G);
    MARK(7);

    // P3: dt_low, B, C (each row's parts added in order, rounded as a linear layer's output), the
    // z of the block's channels; then per channel (a warp each) dt_proj, the state update, y.
    for (int64_t j = tid; j < XR; j += NT) {
      float v = 0.f;
      for (int q = 0; q < sh.xp_parts; ++q) v += __ldcg(a.xpart + j * sh.xp_parts + q);
      dbc[j] = round_t<T>(v);
    }
    for (int i = tid; i < ch_sp.count; i += NT) zs[i] = ldcg_t<T>(a.z, ch_sp.first + i);
    consumer_sync<NW>();
    MARK(8);
    for (int j = 0; j < n_dt; ++j) {
      if (!mine(j)) continue;
      const T* wp = take(j);
      const int nr = min(sh.dt.rows, ch_sp.count - j * sh.dt.rows);
      // A channel per group of gl lanes (dstate <= 16: two channels at once per warp).
      const int gl = N <= 16 ? 16 : 32, gi = lane / gl, gln = lane % gl;
      for (int r0 = 0; r0 < nr; r0 += 32 / gl) {
        const int r = r0 + gi;
        const bool live = r < nr;
        const int ci = j * sh.dt.rows + (live ? r : r0);
        const int64_t c = ch_sp.first + ci;
        float acc = 0.f;
        if (live)
          for (int64_t v = gln; v < R / 8; v += gl) {
            float w[8];
            unpack8<T>(*reinterpret_cast<const uint4*>(wp + r * R + v * 8), w);
#pragma unroll
            for (int k = 0; k < 8; ++k) acc = fmaf(dbc[v * 8 + k], w[k], acc);
          }
        for (int o = gl / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        const float dt = cuda::softplus_f(round_t<T>(acc) + bias_s[ci]);
        const float x = act.at(c);
        float yv = 0.f;
        if (live && gln < N) {
          S* st = static_cast<S*>(L.ssm_state) + c * N + gln;
          const float s = to_float(st_s[ci * N + gln]) * __expf(dt * A_s[ci * N + gln]) + (dt * x) * dbc[R + gln];
          *st = cuda::from_float<S>(s);
          yv = s * dbc[R + N + gln];
        }
        for (int o = gl / 2; o > 0; o >>= 1) yv += __shfl_xor_sync(0xffffffffu, yv, o);
        if (live && gln == 0) {
          if (L.D) yv += D_s[ci] * x;
          yv *= cuda::silu_f(zs[ci]);
          reinterpret_cast<T*>(a.y)[c] = cuda::from_float<T>(yv);
        }
      }
      release(j);
    }
    seq += n_dt;
    MARK(9);
    grid_sync<NW>(g_mega_sync + kArrive, ++bar, G);
    MARK(10);

    // P4: out_proj · y; h += the rounded product.
    if (l + 1 < a.layers) prefetch_range(a.layer[l + 1].norm_w, H * 2);  // for the next P0
    load_act<T, NW>(act, a.y, I);
    consumer_sync<NW>();
    MARK(11);
    products(sh.out, out_sp, I, n_out);
    consumer_sync<NW>();
    MARK(12);
    for (int i = tid; i < out_sp.count; i += NT) {
      const int64_t n = out_sp.first + i;
      a.h[n] = hs[i] + round_t<T>(row_sum(sh.out, i));
    }
    MARK(13);
    if (l + 1 < a.layers) grid_sync<NW>(g_mega_sync + kArrive, ++bar, G);
  }
#undef MARK
  // Thread 0 is the block's only poller and has passed its last barrier.
  if (tid == 0) {
    __threadfence();
    if (atomicAdd(g_mega_sync + kDone, 1u) == static_cast<unsigned int>(G) - 1) {
      atomicExch(g_mega_sync + kArrive, 0u);
      atomicExch(g_mega_sync + kDone, 0u);
    }
  }
}

// ---- host side ----

// STATESPACE_DECODE_MEGAKERNEL=0 (read per call, i.e. when a decode step is captured) keeps the
// op-by-op step.
bool megakernel_off() {
  const char* v = std::getenv("STATESPACE_DECODE_MEGAKERNEL");
  return v && v[0] == '0';
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Pieces of a block's share of at most `rows_max` rows of K 16-bit elements: whole rows up to
// kPieceBytes (but no more than every consumer warp a piece needs: small models spread their few
// rows over all warps), else the fewest parts of a whole number of 16-byte vectors. {0, 0}: no fit.
PieceShape piece_shape(int64_t K, int64_t rows_max, int nw) {
  const int64_t row_bytes = K * 2;
  if (row_bytes <= MegaTraits::kPieceBytes)
    return {static_cast<int>(std::max<int64_t>(1, std::min(MegaTraits::kPieceBytes / row_bytes, ceil_div(rows_max, nw)))), 1};
  for (int P = 2; P <= 64; ++P)
    if ((K / 8) % P == 0 && row_bytes / P <= MegaTraits::kPieceBytes) return {1, P};
  return {0, 0};
}

int64_t up128(int64_t v) { return (v + 127) / 128 * 128; }

// The current device's opt-in shared memory per block (cached per device: asked per step).
int smem_optin() {
  static std::atomic<int> cached[64] = {};
  int dev = 0;
  cuda::check(cudaGetDevice(&dev), "mambaDecodeStack");
  if (dev >= 0 && dev < 64 && cached[dev].load(std::memory_order_relaxed)) return cached[dev].load(std::memory_order_relaxed);
  int v = 0;
  cuda::check(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "mambaDecodeStack");
  if (dev >= 0 && dev < 64) cached[dev].store(v, std::memory_order_relaxed);
  return v;
}

// The launch shape of p on the current device; false when the kernel cannot take it.
bool plan(const MambaDecodeParams& p, MegaShape& sh, size_t& smem) {
  if (megakernel_off() || cuda::compute_capability() < 90) return false;
  if (!(p.dtype == DType::BFloat16 || p.dtype == DType::Float16)) return false;
  if (!(p.state_dtype == DType::Float32 || p.state_dtype == DType::BFloat16)) return false;
  if (!(p.conv_dtype == DType::Float32 || p.conv_dtype == DType::BFloat16 || p.conv_dtype == DType::Float16)) return false;
  if (p.H <= 0 || p.I <= 0 || p.H % 8 || p.I % 8 || p.R <= 0 || p.R % 8 || p.N < 1 || p.N > MegaTraits::kMaxState || p.W < 1 || p.W > MegaTraits::kMaxConv || p.layers < 1) return false;
  constexpr int NW = MegaTraits::kConsumerWarps;
  const int G = cuda::sm_count();
  if (G < 1) return false;
  sh.G = G;
  sh.in = piece_shape(p.H, ceil_div(2 * p.I, G), NW);
  sh.out = piece_shape(p.I, ceil_div(p.H, G), NW);
  const PieceShape xp = piece_shape(p.I, 1, NW);  // x_proj: whole rows or parts, one piece each
  if (!sh.in.rows || !sh.out.rows || !xp.rows || p.R * 2 > MegaTraits::kPieceBytes) return false;
  if (2 * p.I * p.H >= (int64_t{1} << 32)) return false;  // the piece table's 32-bit element offsets
  sh.xp_parts = xp.parts;
  const int64_t ch_max = ceil_div(p.I, G);
  sh.dt = piece_shape(p.R, ch_max, NW);  // (R · 2 <= kPieceBytes: whole rows)
  auto piece_bytes = [](const PieceShape& s, int64_t K) { return s.parts > 1 ? K * 2 / s.parts : s.rows * K * 2; };
  const int64_t slot = up128(std::max({piece_bytes(sh.in, p.H), piece_bytes(sh.out, p.I), p.I * 2 / sh.xp_parts, piece_bytes(sh.dt, p.R)}));
  auto psum_need = [&](const PieceShape& s, int64_t rows) { return pieces_of(s, static_cast<int>(ceil_div(rows, G))) * static_cast<int64_t>(s.parts > 1 ? 1 : s.rows); };
  const int64_t psum_n = std::max(psum_need(sh.in, 2 * p.I), psum_need(sh.out, p.H));
  const int64_t kmax = std::max(p.H, p.I);
  const int64_t act_off = 2 * MegaTraits::kMaxSlots * 8;
  const int64_t psum_off = up128(act_off + kmax * 4);
  const int64_t dbc_off = up128(psum_off + psum_n * 4);
  const int64_t z_off = up128(dbc_off + (p.R + 2 * p.N) * 4);
  const int64_t hs_off = up128(z_off + ch_max * 4);
  // the piece table: a block's pieces of one layer
  const int64_t tab_max = psum_need(sh.in, 2 * p.I) + (p.R + 2 * p.N) * sh.xp_parts / G + 1 + pieces_of(sh.dt, static_cast<int>(ch_max)) +
                          pieces_of(sh.out, static_cast<int>(ceil_div(p.H, G)));
  const int64_t tab_off = up128(hs_off + ceil_div(p.H, G) * 4);
  // staged operands: rows of the largest shares, + 32 bytes for the rounding out to 16-byte chunks
  const int64_t x_max = ceil_div(2 * p.I, G);
  const int64_t side_bytes[7] = {x_max * (p.W - 1) * static_cast<int64_t>(dtype_size(p.conv_dtype)), x_max * p.W * 2, x_max * 2, ch_max * p.N * 4,
                                 ch_max * p.N * static_cast<int64_t>(dtype_size(p.state_dtype)), ch_max * 4, ch_max * 4};
  int64_t side_end = up128(tab_off + tab_max * 8);
  for (int i = 0; i < 7; ++i) {
    sh.side_off[i] = static_cast<uint32_t>(side_end);
    side_end = up128(side_end + side_bytes[i] + 32);
  }
  const int64_t ring_off = side_end;
  const int64_t limit = static_cast<int64_t>(smem_optin()) - 256;  // the kernel's static words
  const int64_t slots = std::min<int64_t>(MegaTraits::kMaxSlots, (limit - ring_off) / slot) / NW * NW;
  if (slots < NW) return false;
  sh.slots = static_cast<int>(slots);
  sh.slot_bytes = static_cast<uint32_t>(slot);
  sh.act_off = static_cast<uint32_t>(act_off);
  sh.psum_off = static_cast<uint32_t>(psum_off);
  sh.dbc_off = static_cast<uint32_t>(dbc_off);
  sh.z_off = static_cast<uint32_t>(z_off);
  sh.hs_off = static_cast<uint32_t>(hs_off);
  sh.tab_off = static_cast<uint32_t>(tab_off);
  sh.ring_off = static_cast<uint32_t>(ring_off);
  smem = static_cast<size_t>(ring_off + slots * slot);
  return true;
}

// Scratch layout: u, z, y (I elements of T each), x_proj's partial sums.
struct ScratchLayout {
  size_t u = 0, z = 0, y = 0, xpart = 0, bytes = 0;
};
ScratchLayout scratch_layout(const MambaDecodeParams& p, int xp_parts) {
  ScratchLayout s;
  const size_t vec = static_cast<size_t>(up128(p.I * 2));
  s.u = 0;
  s.z = vec;
  s.y = 2 * vec;
  s.xpart = 3 * vec;
  s.bytes = s.xpart + static_cast<size_t>(up128((p.R + 2 * p.N) * xp_parts * 4));
  return s;
}

// The trace of one launch: per interval between consecutive marks, the mean over blocks and over
// layers 1.. (layer 0 includes the ramp) and the largest block mean, in µs at the SM clock.
void print_trace(unsigned long long* dev, size_t n, int G, int layers, cudaStream_t st) {
  std::vector<unsigned long long> h(n);
  cuda::check(cudaMemcpyAsync(h.data(), dev, n * 8, cudaMemcpyDeviceToHost, st), "mambaDecodeStack: trace");
  cuda::check(cudaStreamSynchronize(st), "mambaDecodeStack: trace");
  cuda::check(cudaFreeAsync(dev, st), "mambaDecodeStack: trace");
  int dev_id = 0, khz = 0;
  cuda::check(cudaGetDevice(&dev_id), "mambaDecodeStack: trace");
  cuda::check(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev_id), "mambaDecodeStack: trace");
  const double us_per_clk = 1e3 / khz;
  const int l_first = layers > 1 ? 1 : 0;
  std::fprintf(stderr, "mambaDecodeStack trace (%d blocks, layers %d..%d, us at %d MHz): interval mean / worst block\n", G, l_first, layers - 1, khz / 1000);
  double layer_total = 0;
  for (int k = 0; k < kMarks; ++k) {
    const bool wrap = k == kMarks - 1;  // mark 13 -> next layer's mark 0
    double sum = 0, worst = 0;
    int cnt = 0;
    for (int b = 0; b < G; ++b) {
      double bs = 0;
      int bc = 0;
      for (int l = l_first; l < layers - (wrap ? 1 : 0); ++l) {
        const unsigned long long* t = h.data() + (static_cast<size_t>(b) * layers + l) * kMarks;
        const unsigned long long t0 = t[k], t1 = wrap ? t[kMarks] : t[k + 1];
        bs += static_cast<double>(static_cast<long long>(t1 - t0)) * us_per_clk;
        ++bc;
      }
      if (bc) {
        sum += bs / bc;
        worst = std::max(worst, bs / bc);
        ++cnt;
      }
    }
    const double mean = cnt ? sum / cnt : 0;
    layer_total += mean;
    std::fprintf(stderr, "  %2d -> %2d: %8.3f / %8.3f\n", k, wrap ? 0 : k + 1, mean, worst);
  }
  std::fprintf(stderr, "  layer: %8.3f us\n", layer_total);
}

template <typename T, typename S, int NW> void launch(const MambaDecodeParams& p, const MegaShape& sh, size_t smem, cudaStream_t st) {
  auto kernel = mamba_decode_kernel<T, S, NW>;
  cuda::set_smem_once<mamba_decode_kernel<T, S, NW>>(smem, "mambaDecodeStack: shared memory");
  // Every block must be resident at once (grid barriers): one per SM must fit. Checked once per
  // device and shared-memory size.
  static std::atomic<size_t> fits_with[64] = {};
  int dev = 0;
  cuda::check(cudaGetDevice(&dev), "mambaDecodeStack");
  if (!(dev >= 0 && dev < 64 && fits_with[dev].load(std::memory_order_relaxed) == smem)) {
    int per_sm = 0;
    cuda::check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, MegaTraits::threads(NW), smem), "mambaDecodeStack");
    if (per_sm < 1) fail("ERR_CUDA", ErrorKind::Plain, "mambaDecodeStack: a block does not fit on an SM");
    if (dev >= 0 && dev < 64) fits_with[dev].store(smem, std::memory_order_relaxed);
  }
  const ScratchLayout sl = scratch_layout(p, sh.xp_parts);
  unsigned char* base = static_cast<unsigned char*>(p.scratch);
  static thread_local MegaArgs args;  // ~6 KB: not on the stack
  args.H = p.H, args.I = p.I, args.N = p.N, args.R = p.R, args.W = p.W;
  args.eps = p.eps;
  args.conv_dtype = p.conv_dtype;
  args.conv_bytes = static_cast<int>(dtype_size(p.conv_dtype));
  args.h = p.h;
  args.u = base + sl.u, args.z = base + sl.z, args.y = base + sl.y;
  args.xpart = reinterpret_cast<float*>(base + sl.xpart);
  args.sh = sh;
  args.trace = nullptr;
  // STATESPACE_MEGA_TRACE=1 (diagnostics, eager steps only): each launch's phase times to stderr.
  const char* trv = std::getenv("STATESPACE_MEGA_TRACE");
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  cuda::check(cudaStreamIsCapturing(st, &cap), "mambaDecodeStack");
  const bool tracing = trv && trv[0] == '1' && cap == cudaStreamCaptureStatusNone;
  for (int l0 = 0; l0 < p.layers; l0 += kMambaDecodeMaxLayers) {
    args.layers = std::min(kMambaDecodeMaxLayers, p.layers - l0);
    for (int l = 0; l < args.layers; ++l) args.layer[l] = p.layer[l0 + l];
    const size_t trace_n = static_cast<size_t>(sh.G) * args.layers * kMarks;
    if (tracing) cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&args.trace), trace_n * 8, st), "mambaDecodeStack: trace");
    cuda::launch_pdl(kernel, dim3(sh.G), dim3(MegaTraits::threads(NW)), smem, st, args);
    cuda::check_launch("mambaDecodeStack");
    if (tracing) {
      print_trace(args.trace, trace_n, sh.G, args.layers, st);
      args.trace = nullptr;
    }
  }
}

}  // namespace

bool mamba_decode_cuda_fits(const MambaDecodeParams& p) {
  MegaShape sh;
  size_t smem = 0;
  return plan(p, sh, smem);
}

size_t mamba_decode_scratch_bytes(const MambaDecodeParams& p) {
  MegaShape sh;
  size_t smem = 0;
  return plan(p, sh, smem) ? scratch_layout(p, sh.xp_parts).bytes : 0;
}

void mamba_decode_cuda(const MambaDecodeParams& p, void* stream) {
  MegaShape sh;
  size_t smem = 0;
  if (!plan(p, sh, smem)) fail("ERR_INVALID_ARG", ErrorKind::Type, "mambaDecodeStack: the megakernel does not take these sizes");
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  constexpr int NW = MegaTraits::kConsumerWarps;
  if (p.dtype == DType::BFloat16) {
    if (p.state_dtype == DType::Float32) launch<__nv_bfloat16, float, NW>(p, sh, smem, st);
    else launch<__nv_bfloat16, __nv_bfloat16, NW>(p, sh, smem, st);
  } else {
    if (p.state_dtype == DType::Float32) launch<__half, float, NW>(p, sh, smem, st);
    else launch<__half, __nv_bfloat16, NW>(p, sh, smem, st);
  }
}

}  // namespace ss
