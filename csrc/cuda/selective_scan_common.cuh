// Shared pieces of the CUDA selective scan: how threads map onto (dim, dstate), how blocks tile
// (batch, dim), the chunk lengths, and the element loads used by both kernels.
//
// Thread mapping: a dim row's dstate states are spread over G lanes (a power of two <= 32),
// each lane holding K = 4 consecutive states n = lane*K + k in registers (K = 8 once a whole
// warp serves one row: dstate > 128); states past dstate are zero padding. A 128-thread block
// covers 128/G dims of one batch row (the backward at dstate 9-16: twice as many, a thread
// serving two rows with the same states, see bwd_rows). Each lane runs the recurrence sequentially over time;
// blocks stage chunks of the inputs in shared memory (coalesced along time), lanes read their
// K values of B_t and C_t with 16-byte loads, and y is reduced over the G lanes by shuffles.
// Blocks never straddle a B or C group, so a block shares one (step, dstate) tile of B and C.
#pragma once
#include <cstdint>
#include <type_traits>
#include "cuda/mma_tile.cuh"
#include "cuda/runtime.h"
#include "cuda/types.cuh"
#include "ops/selective_scan.h"

namespace ss::scan_cuda {

constexpr int kThreads = 128;
constexpr int kSub = 4;  // backward sub-chunk: states and decays of kSub steps are kept in registers
constexpr int kPartSteps = 4;  // backward: per-step dB/dC partials are summed over rows every 4 steps
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct Layout {
  int G;     // lanes per dim row
  int K;     // states per lane: 4, or 8 when dstate > 128
  int npad;  // G * K: padded dstate
  int dims;  // dim rows per block
};

inline Layout layout_for(int64_t dstate) {
  const int K = dstate > 128 ? 8 : 4;
  int G = 1;
  while (G < 32 && G * K < dstate) G *= 2;
  return {G, K, G * K, kThreads / G};
}

// Rows per thread of the backward: two at dstate 9-16 (4 lanes of 4 states; kG = 4), one
// otherwise (its shared memory would not fit two blocks per SM with the narrower layouts' rows).
__host__ __device__ constexpr int bwd_rows(int K, int kG) { return K == 4 && kG == 4 ? 2 : 1; }

// The backward's layout: layout_for's, with bwd_rows times the rows per block.
inline Layout bwd_layout_for(int64_t dstate) {
  Layout lo = layout_for(dstate);
  lo.dims *= bwd_rows(lo.K, lo.K == 4 && lo.G == 4 ? 4 : 0);
  return lo;
}

// Lifts a layout into template constants K and kG: kG is G where the kernels know it at compile
// time (dstate 9-16, the usual Mamba size; and every K = 8 layout, which has G = 32), 0 where it
// stays a run-time value (dstate 1-8 and 17-128). Three kernels per dtype, not one per layout.
#define SS_LAYOUT_SWITCH(LO, K, KG, ...)                                                         \
  [&] {                                                                                          \
    if ((LO).K == 8) {                                                                           \
      constexpr int K = 8, KG = 32;                                                              \
      return __VA_ARGS__();                                                                      \
    } else if ((LO).G == 4) {                                                                    \
      constexpr int K = 4, KG = 4;                                                               \
      return __VA_ARGS__();                                                                      \
    } else {                                                                                     \
      constexpr int K = 4, KG = 0;                                                               \
      return __VA_ARGS__();                                                                      \
    }                                                                                            \
  }()

// log2 of a power of two (a constant when x is)
__host__ __device__ constexpr int ilog2(int x) { return x <= 1 ? 0 : 1 + ilog2(x >> 1); }

// K consecutive floats from 16-byte aligned shared memory.
template <int K>
__device__ __forceinline__ void load_k(float (&dst)[K], const float* src) {
#pragma unroll
  for (int q = 0; q < K / 4; ++q) {
    const float4 v = reinterpret_cast<const float4*>(src)[q];
    dst[4 * q] = v.x, dst[4 * q + 1] = v.y, dst[4 * q + 2] = v.z, dst[4 * q + 3] = v.w;
  }
}
template <int K>
__device__ __forceinline__ void store_k(float* dst, const float (&src)[K]) {
#pragma unroll
  for (int q = 0; q < K / 4; ++q)
    reinterpret_cast<float4*>(dst)[q] = make_float4(src[4 * q], src[4 * q + 1], src[4 * q + 2], src[4 * q + 3]);
}

// B_t (or C_t) values of a thread's R rows: row r's K floats at src + r * row_step + t * step.
// kTile (a per-step tile, shared by the rows, row_step 0): one load serves every row.
template <bool kTile, int R, int K>
__device__ __forceinline__ void load_rows(float (&v)[R][K], const float* src, int row_step, int step, int t) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (kTile && r > 0) {
#pragma unroll
      for (int k = 0; k < K; ++k) v[r][k] = v[0][k];
    } else {
      load_k<K>(v[r], src + r * row_step + t * step);
    }
  }
}

// 16 bytes of a row (V = 16 / sizeof(T) consecutive elements) to or from floats.
template <typename T>
__device__ __forceinline__ void unpack_vec(float (&dst)[16 / sizeof(T)], const uint4& raw) {
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < static_cast<int>(16 / sizeof(T)); ++j) dst[j] = cuda::to_float(e[j]);
}
template <typename T>
__device__ __forceinline__ void load_vec(float (&dst)[16 / sizeof(T)], const T* src) {
  unpack_vec<T>(dst, *reinterpret_cast<const uint4*>(src));
}
// 2-byte types: 32-bit words of converted pairs (mma_tile.cuh's pack2), stored by __stwb
// (st.global.wb.v4, the default caching): as a plain uint4 store the compiler split it, in the
// forward's staging and in the backward, into four 4-byte device stores (a quarter of each
// 32-byte sector per instruction, 4x the store requests: ncu's 12.6 M excessive sectors of 17.1 M
// in the forward).
template <typename T>
__device__ __forceinline__ void store_vec(T* dst, const float (&src)[16 / sizeof(T)]) {
  if constexpr (sizeof(T) == 2) {
    using cuda::mma::pack2;
    __stwb(reinterpret_cast<uint4*>(dst),
           make_uint4(pack2<T>(src[0], src[1]), pack2<T>(src[2], src[3]), pack2<T>(src[4], src[5]), pack2<T>(src[6], src[7])));
  } else {
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int j = 0; j < static_cast<int>(16 / sizeof(T)); ++j) e[j] = cuda::from_float<T>(src[j]);
    *reinterpret_cast<uint4*>(dst) = raw;
  }
}

// Blocks per batch row: each "fine group" (dims sharing their B group and their C group)
// is split into tiles of `dims` rows.
struct Tiling {
  int64_t fine, dims_per_fine, tiles_per_fine;
  int64_t blocks() const { return fine * tiles_per_fine; }
};

inline int64_t gcd64(int64_t a, int64_t b) { return b ? gcd64(b, a % b) : a; }

inline Tiling tiling_for(const SelectiveScanParams& p, const Layout& lo) {
  const int64_t gb = p.b_form == ScanBCForm::PerStep ? p.b_groups : 1;
  const int64_t gc = p.c_form == ScanBCForm::PerStep ? p.c_groups : 1;
  const int64_t fine = gb / gcd64(gb, gc) * gc;
  const int64_t dpf = p.dim / fine;
  return {fine, dpf, (dpf + lo.dims - 1) / lo.dims};
}

// Checkpoint interval = chunk of the backward (and of the forward when it writes checkpoints).
inline int bwd_chunk(const Layout& lo) { return lo.K == 4 ? 32 : 16; }

// Row stride of the per-row tiles of both kernels: a multiple of 4 floats so a lane reads 4 steps
// with one 16-byte load; 4 mod 32 banks apart so the rows of one warp don't collide.
__host__ __device__ inline int row_stride(int chunk) { return chunk + 4; }

// Shared memory of the forward for a chunk length (floats): delta', u, z/y rows, B and C tiles,
// restart flags, each lane's time-invariant B and C values.
inline size_t fwd_smem_bytes(const Layout& lo, int chunk) {
  return sizeof(float) * (3 * static_cast<size_t>(lo.dims) * row_stride(chunk) + 2 * static_cast<size_t>(chunk) * lo.npad +
                          chunk + 2 * static_cast<size_t>(lo.K) * kThreads);
}

// Whether the backward sums its per-step dB/dC over each warp's rows every four steps and over the
// block once per chunk (16 KiB more shared memory, which only the two-row layout of dstate 9-16
// can spare without losing a resident block), or over the block every four steps.
__host__ __device__ constexpr bool bwd_chunk_sums(int K, int kG) { return bwd_rows(K, kG) == 2; }

// Shared memory of the backward (bwd_layout_for; floats): four rows (delta', u/du, gate
// factor/dz, gated dy/ddelta), B and C tiles, restart flags, sub-chunk start states of each
// thread's rows, per-step dB/dC contributions of kPartSteps steps summed over each thread's
// rows, and with bwd_chunk_sums their per-warp sums over a chunk (about 104 KiB at dstate 16: 2
// blocks of 64 rows fit on an SM).
inline size_t bwd_smem_bytes(const Layout& lo, int chunk) {
  const size_t R = static_cast<size_t>(lo.dims) * lo.G / kThreads;  // rows per thread
  const size_t rows = 4 * static_cast<size_t>(lo.dims) * row_stride(chunk);
  const size_t bc = 2 * static_cast<size_t>(chunk) * lo.npad + chunk;
  const size_t bnd = static_cast<size_t>(chunk / kSub) * R * lo.K * kThreads;
  const bool chunk_sums = bwd_chunk_sums(lo.K, lo.K == 4 && lo.G == 4 ? 4 : 0);
  // with chunk_sums each warp's step slots are padded by 16 floats (the kernel's kPadQ)
  const size_t part = 2 * static_cast<size_t>(kPartSteps) * ((lo.dims / R) * lo.npad + (chunk_sums ? kThreads / 32 * 16 : 0));
  const size_t acc = chunk_sums ? 2 * static_cast<size_t>(chunk) * (kThreads / 32) * lo.npad : 0;
  return sizeof(float) * (rows + bc + bnd + part + acc);
}

// The backward runs in slabs of whole chunks, kSlabSteps steps each (the first slab in time may
// be shorter), one launch per slab from the last: the per-step dB/dC partials then need only one
// slab's worth of scratch, summed into dB/dC after each slab. Per-row sums and dL/dx pass from one
// slab's launch to the next through the scratch (the dA, dD, dbias, time-invariant dB/dC
// partials, and g).
constexpr int kSlabSteps = 1024;
inline int64_t slab_chunks(int chunk) { return kSlabSteps / chunk; }

// Where the backward's partial sums live in its f32 scratch buffer (offsets in floats).
struct ScratchLayout {
  int64_t dA, dD, dbias, dB_ti, dC_ti, g, dB_step, dC_step, total;
  int64_t slab_len;  // steps of the per-step partials: min(seqlen, kSlabSteps rounded to chunks)
  // The per-step partials (dB_step, dC_step) have part_bufs halves of part_len floats each: two
  // when there are several slabs, so that one slab's partials are summed while the next is written.
  int64_t part_len, part_bufs;
};

inline ScratchLayout scratch_layout(const SelectiveScanParams& p, const Tiling& tl) {
  ScratchLayout s{};
  const int chunk = bwd_chunk(layout_for(p.dstate));
  const int64_t slab = slab_chunks(chunk) * chunk;
  s.slab_len = p.seqlen < slab ? p.seqlen : slab;
  const int64_t rows = p.batch * p.dim, step = tl.blocks() * p.batch * s.slab_len * p.dstate;
  s.part_len = (step + 3) & ~int64_t{3};
  s.part_bufs = p.seqlen > slab ? 2 : 1;
  // every part starts 16-byte aligned (the per-step partials are stored as float4)
  int64_t o = 0;
  auto take = [&o](int64_t n) { const int64_t at = o; o += (n + 3) & ~int64_t{3}; return at; };
  s.dA = take(rows * p.dstate);
  s.dD = take(rows);
  s.dbias = take(rows);
  s.dB_ti = take(p.b_form == ScanBCForm::TimeInvariant ? rows * p.dstate : 0);
  s.dC_ti = take(p.c_form == ScanBCForm::TimeInvariant ? rows * p.dstate : 0);
  s.g = take(rows * p.dstate);
  s.dB_step = take(p.b_form == ScanBCForm::PerStep ? s.part_bufs * s.part_len : 0);
  s.dC_step = take(p.c_form == ScanBCForm::PerStep ? s.part_bufs * s.part_len : 0);
  s.total = o;
  return s;
}

// Loads the given kernels' modules (cudaFuncGetAttributes does, CUDA loading modules lazily).
template <typename... Ks>
void touch_kernels(Ks... kernels) {
  cudaFuncAttributes a;
  (cudaFuncGetAttributes(&a, kernels), ...);
}

// Registers Touch<T>::run() for every float dtype as one preload (cuda::register_kernel_preload:
// run when a device is first used, not on an op's first call). Call from a static initializer.
template <template <typename> class Touch>
bool preload_per_dtype() {
  cuda::register_kernel_preload([] {
    Touch<float>::run();
    Touch<__half>::run();
    Touch<__nv_bfloat16>::run();
  });
  return true;
}

// Refuses sizes the launch grid can't take (never truncates). In selective_scan_fwd.cu.
void check_grid(const SelectiveScanParams& p, const Tiling& tl);

// The time-parallel forward (selective_scan_fwd_tp.cu): whether it serves p, and its launch.
bool fwd_tp_applies(const SelectiveScanParams& p);
void launch_fwd_tp(const SelectiveScanParams& p, cudaStream_t stream);

// Which rows a block serves.
struct BlockRows {
  int64_t b, d0;  // batch row, first dim
  int nd;         // dims actually present (<= Layout::dims)
};

__device__ __forceinline__ BlockRows block_rows(const Layout& lo, const Tiling& tl) {
  const int64_t f = blockIdx.x / tl.tiles_per_fine, tile = blockIdx.x % tl.tiles_per_fine;
  const int64_t d0 = f * tl.dims_per_fine + tile * lo.dims;
  const int64_t left = (f + 1) * tl.dims_per_fine - d0;
  return {static_cast<int64_t>(blockIdx.y), d0, static_cast<int>(left < lo.dims ? left : lo.dims)};
}

// Start of the per-step B (or C) slice of batch row b for the group holding dim d.
template <typename T>
__device__ __forceinline__ const T* bc_group(const void* m, int64_t groups, const SelectiveScanParams& p, int64_t b, int64_t d) {
  return static_cast<const T*>(m) + (b * groups + d / (p.dim / groups)) * p.dstate * p.seqlen;
}

// softplus(v) = log(1 + e^v) = max(v, 0) + log1p(e) with e = e^-|v| in (0, 1]: one ex2 (a MUFU op,
// the pipe the scan's step loop lives on) and a degree-7 polynomial for log1p(e) / e (Chebyshev
// interpolation on [0, 1]: 3e-7 relative in float; ≤ 1.6e-6 for the whole function, from the
// rounding of the ex2 argument, as before). It replaced a series below e = 1/32 and log(1 + e)
// above: two MUFU ops and a select.
__device__ __forceinline__ float softplus(float v) {
  const float e = exp2f(-fabsf(v) * kLog2e);
  float q = -0.00837115291506052f;
  q = fmaf(q, e, 0.04349390044808388f);
  q = fmaf(q, e, -0.1068500280380249f);
  q = fmaf(q, e, 0.1768747717142105f);
  q = fmaf(q, e, -0.24474774301052094f);
  q = fmaf(q, e, 0.3327192962169647f);
  q = fmaf(q, e, -0.49997174739837646f);
  q = fmaf(q, e, 0.9999997615814209f);
  return fmaxf(v, 0.f) + e * q;
}
__device__ __forceinline__ float sigmoid(float v) { return 1.f / (1.f + __expf(-v)); }

// softplus'(v) = sigmoid(v) = 1 - e^-x from x = softplus(v) itself (so the backward needs no
// staged copy of it): a short series where x is small (there 1 - e^-x would cancel; error below
// x^5/120, under 2e-7 relative at x = 1/16), 1 - e^-x above.
__device__ __forceinline__ float dsoftplus(float x) {
  const float series = x * fmaf(x, fmaf(x, fmaf(x, -1.f / 24.f, 1.f / 6.f), -0.5f), 1.f);
  const float direct = 1.f - __expf(-x);  // both computed: a select, not a branch
  return x < 0.0625f ? series : direct;
}

// Sum over the G lanes of one row (butterfly: every lane gets the total).
__device__ __forceinline__ float row_sum(float v, int G) {
  for (int off = 1; off < G; off <<= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sums M per-lane partials of four consecutive steps over the G lanes of a row (G a power of two
// <= 32) by a transpose-reduce: each lane ends up owning whole steps, so a row pays about one
// shuffle per step and value instead of log2(G). Calls emit(step, totals) for each owned step:
// G = 1 owns all four; G = 2, steps 2*bit0 and 2*bit0 + 1; G >= 4, step 2*bit0 + bit1 on the
// row's lanes 0..3 only. Every lane of the warp must call it (full-mask shuffles).
template <int M, typename F>
__device__ __forceinline__ void reduce_steps4(const float (&part)[M][4], int G, int lane, F&& emit) {
  if (G == 1) {
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      float v[M];
#pragma unroll
      for (int m = 0; m < M; ++m) v[m] = part[m][s];
      emit(s, v);
    }
    return;
  }
  // Stage 1 (lane bit 0): bit 0 clear keeps steps 0 and 1, set keeps 2 and 3; each sends its
  // partner the two it doesn't keep.
  const int bit0 = lane & 1, bit1 = (lane >> 1) & 1;
  float q0[M], q1[M];
#pragma unroll
  for (int m = 0; m < M; ++m) {
    q0[m] = (bit0 ? part[m][2] : part[m][0]) + __shfl_xor_sync(0xffffffffu, bit0 ? part[m][0] : part[m][2], 1);
    q1[m] = (bit0 ? part[m][3] : part[m][1]) + __shfl_xor_sync(0xffffffffu, bit0 ? part[m][1] : part[m][3], 1);
  }
  if (G == 2) {
    emit(2 * bit0, q0);
    emit(2 * bit0 + 1, q1);
    return;
  }
  // Stage 2 (lane bit 1): keep step 2*bit0 + bit1; then plain butterflies over the other lanes.
  float w[M];
#pragma unroll
  for (int m = 0; m < M; ++m) {
    w[m] = (bit1 ? q1[m] : q0[m]) + __shfl_xor_sync(0xffffffffu, bit1 ? q0[m] : q1[m], 2);
    for (int off = 4; off < G; off <<= 1) w[m] += __shfl_xor_sync(0xffffffffu, w[m], off);
  }
  if (G == 4 || lane < 4) emit(2 * bit0 + bit1, w);
}

// Stages one chunk of a per-step B or C as [step][npad] floats (zero past dstate / seqlen).
// chunk is a power of two: shifts, not divisions, split the flat index.
template <typename T>
__device__ __forceinline__ void load_bc_tile(float* dst, const T* src, const SelectiveScanParams& p, const Layout& lo,
                                             int chunk, int64_t t0, int len) {
  const int lg = __ffs(chunk) - 1;
  for (int i = threadIdx.x; i < lo.npad * chunk; i += kThreads) {
    const int n = i >> lg, t = i & (chunk - 1);
    dst[t * lo.npad + n] = n < p.dstate && t < len ? cuda::to_float(src[n * p.seqlen + t0 + t]) : 0.f;
  }
}

// The same for a whole chunk when every state row of the tile is 16-byte aligned (seqlen a multiple
// of V, chunk a multiple of V): one 16-byte load brings V steps of one state; consecutive threads
// take consecutive states, so the transposing shared stores hit distinct banks (2-way at most).
template <typename T>
__device__ __forceinline__ void load_bc_tile_vec(float* dst, const T* src, const SelectiveScanParams& p, const Layout& lo,
                                                 int chunk, int64_t t0) {
  constexpr int V = 16 / sizeof(T);
  const int lgn = __ffs(lo.npad) - 1;  // npad is a power of two
  for (int i = threadIdx.x; i < lo.npad * (chunk / V); i += kThreads) {
    const int n = i & (lo.npad - 1), t = (i >> lgn) * V;
    float v[V];
    if (n < p.dstate) {
      load_vec<T>(v, src + n * p.seqlen + t0 + t);
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] = 0.f;
    }
#pragma unroll
    for (int j = 0; j < V; ++j) dst[(t + j) * lo.npad + n] = v[j];
  }
}

// Stages a chunk's per-step B and C (those that are not time-invariant): 16-byte loads when `vec`
// says the rows allow it and the chunk is whole.
template <typename T>
__device__ __forceinline__ void load_bc_tiles(float* s_B, float* s_C, const T* Bg, const T* Cg, bool b_ti, bool c_ti,
                                              bool vec, const SelectiveScanParams& p, const Layout& lo, int chunk,
                                              int64_t t0, int len) {
  if (vec && len == chunk) {
    if (!b_ti) load_bc_tile_vec(s_B, Bg, p, lo, chunk, t0);
    if (!c_ti) load_bc_tile_vec(s_C, Cg, p, lo, chunk, t0);
  } else {
    if (!b_ti) load_bc_tile(s_B, Bg, p, lo, chunk, t0, len);
    if (!c_ti) load_bc_tile(s_C, Cg, p, lo, chunk, t0, len);
  }
}

// Four consecutive staged steps (t a multiple of 4): delta', u and the restart flags, one 16-byte
// shared load each. Indexed with unrolled constants only, so it stays in registers.
struct Steps4 {
  float dt[4], u[4];
  int rst[4];
};
template <bool kRestart>
__device__ __forceinline__ Steps4 load_steps4(const float* dt, const float* u, const int* rst, int t) {
  const float4 dt4 = *reinterpret_cast<const float4*>(dt + t);
  const float4 u4 = *reinterpret_cast<const float4*>(u + t);
  int4 rs4 = make_int4(0, 0, 0, 0);
  if (kRestart) rs4 = *reinterpret_cast<const int4*>(rst + t);
  return Steps4{{dt4.x, dt4.y, dt4.z, dt4.w}, {u4.x, u4.y, u4.z, u4.w}, {rs4.x, rs4.y, rs4.z, rs4.w}};
}

// Asks L2 for `len` elements from t0 of `rows` rows `stride` elements apart, a thread per row
// (128-byte lines; rows <= kThreads here, so one pass). Issued for the next chunk while this one
// computes, so that its staging loads come from L2 instead of waiting on device memory with
// every warp of the block. (Rows by thread, not flat lines: no run-time division.)
template <typename T>
__device__ __forceinline__ void prefetch_rows(const T* src, int64_t stride, int rows, int64_t t0, int len) {
  constexpr int E = 128 / sizeof(T);  // elements per line
  const int lines = (len + E - 1) / E;
  for (int r = threadIdx.x; r < rows; r += kThreads)
    for (int j = 0; j < lines; ++j) asm volatile("prefetch.global.L2 [%0];" ::"l"(src + r * stride + t0 + j * E));
}

// Restart flags of a chunk: 1 where seqIdx changes (the state before that step is dropped).
__device__ __forceinline__ void load_restarts(int* dst, const SelectiveScanParams& p, int64_t b, int chunk, int64_t t0,
                                              int len) {
  for (int t = threadIdx.x; t < chunk; t += kThreads) {
    const int64_t i = b * p.seqlen + t0 + t;
    dst[t] = p.seq_idx && t < len && t0 + t > 0 && p.seq_idx[i] != p.seq_idx[i - 1];
  }
}

}  // namespace ss::scan_cuda
