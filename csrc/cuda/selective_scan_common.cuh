// Shared pieces of the CUDA selective scan: how threads map onto (dim, dstate), how blocks tile
// (batch, dim), the chunk lengths, and the element loads used by both kernels.
//
// Thread mapping: a dim row's dstate states are spread over G lanes (a power of two <= 32),
// each lane holding K = 4 consecutive states n = lane*K + k in registers (K = 8 once a whole
// warp serves one row: dstate > 128); states past dstate are zero padding. A 128-thread block
// covers 128/G dims of one batch row. Each lane runs the recurrence sequentially over time;
// blocks stage chunks of the inputs in shared memory (coalesced along time), lanes read their
// K values of B_t and C_t with 16-byte loads, and y is reduced over the G lanes by shuffles.
// Blocks never straddle a B or C group, so a block shares one (step, dstate) tile of B and C.
#pragma once
#include <cstdint>
#include "cuda/types.cuh"
#include "ops/selective_scan.h"

namespace ss::scan_cuda {

constexpr int kThreads = 128;
constexpr int kSub = 8;  // backward sub-chunk: states of kSub steps are kept in registers
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

// Shared memory of the forward for a chunk length (floats): delta', u, z/y rows, B and C tiles,
// restart flags.
inline size_t fwd_smem_bytes(const Layout& lo, int chunk) {
  return sizeof(float) * (3 * static_cast<size_t>(lo.dims) * (chunk + 1) + 2 * static_cast<size_t>(chunk) * lo.npad + chunk);
}

// Shared memory of the backward (floats): five rows (delta', u/du, z/dz, dy/ddelta, dsoftplus),
// B and C tiles, restart flags, sub-chunk start states, ungated y of a sub-chunk, and per-step
// dB/dC contributions of a sub-chunk.
inline size_t bwd_smem_bytes(const Layout& lo, int chunk) {
  const size_t rows = 5 * static_cast<size_t>(lo.dims) * (chunk + 1);
  const size_t bc = 2 * static_cast<size_t>(chunk) * lo.npad + chunk;
  const size_t bnd = static_cast<size_t>(chunk / kSub) * lo.K * kThreads;
  const size_t yraw = static_cast<size_t>(lo.dims) * (kSub + 1);
  const size_t part = 2 * static_cast<size_t>(kSub) * lo.dims * lo.npad;
  return sizeof(float) * (rows + bc + bnd + yraw + part);
}

// Where the backward's partial sums live in its f32 scratch buffer (offsets in floats).
struct ScratchLayout {
  int64_t dA, dD, dbias, dB_ti, dC_ti, dB_step, dC_step, total;
};

inline ScratchLayout scratch_layout(const SelectiveScanParams& p, const Tiling& tl) {
  ScratchLayout s{};
  const int64_t rows = p.batch * p.dim, step = tl.blocks() * p.batch * p.seqlen * p.dstate;
  int64_t o = 0;
  s.dA = o, o += rows * p.dstate;
  s.dD = o, o += rows;
  s.dbias = o, o += rows;
  s.dB_ti = o, o += p.b_form == ScanBCForm::TimeInvariant ? rows * p.dstate : 0;
  s.dC_ti = o, o += p.c_form == ScanBCForm::TimeInvariant ? rows * p.dstate : 0;
  s.dB_step = o, o += p.b_form == ScanBCForm::PerStep ? step : 0;
  s.dC_step = o, o += p.c_form == ScanBCForm::PerStep ? step : 0;
  s.total = o;
  return s;
}

// Refuses sizes the launch grid can't take (never truncates). In selective_scan_fwd.cu.
void check_grid(const SelectiveScanParams& p, const Tiling& tl);

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

__device__ __forceinline__ float softplus(float v) { return v <= 20.f ? log1pf(__expf(v)) : v; }
__device__ __forceinline__ float sigmoid(float v) { return 1.f / (1.f + __expf(-v)); }

// Sum over the G lanes of one row (butterfly: every lane gets the total).
__device__ __forceinline__ float row_sum(float v, int G) {
  for (int off = 1; off < G; off <<= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Stages one chunk of a per-step B or C as [step][npad] floats (zero past dstate / seqlen).
template <typename T>
__device__ __forceinline__ void load_bc_tile(float* dst, const T* src, const SelectiveScanParams& p, const Layout& lo,
                                             int chunk, int64_t t0, int len) {
  for (int i = threadIdx.x; i < lo.npad * chunk; i += kThreads) {
    const int n = i / chunk, t = i % chunk;
    dst[t * lo.npad + n] = n < p.dstate && t < len ? cuda::to_float(src[n * p.seqlen + t0 + t]) : 0.f;
  }
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
