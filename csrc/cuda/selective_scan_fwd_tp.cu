// CUDA selective scan forward, parallel in time, for few rows: per-step B and C with dstate <= 16
// (the Mamba-1 model's case), no seqIdx, and at most as many (batch, dim) rows as one wave of this
// kernel holds (batch 1 prefill of a Mamba-1 model up to dim 6336 on an H100). The sequential
// kernel (selective_scan_fwd.cu) gives a row's 16 states to 4 lanes that walk every step: at batch 1
// x dim 5120 that is 640 warps for 132 SMs, latency-bound even with its time segments. Here kLanes =
// 16 lanes of a row own consecutive slices of kJ = 8 steps of a 128-step window. Per window and state n:
//   1. each lane folds its slice into the affine map x -> P x + S (S from a zero start, P = 2^(A Σdt)
//      by one ex2), keeping the slice's decays and inputs in registers; the row's first lane applies
//      its map to the window's carried-in state, so its map is the constant x -> S (P = 0);
//   2. a scan over the row's lanes (Kogge-Stone, 4 shuffle stages) composes the maps: every lane
//      ends with P = 0 and S = the state after its slice (the checkpoints, the next window's carry);
//      a lane below a stage's offset gets its own (0, S) back, which leaves it as it is, so the
//      stages need no predicates;
//   3. the lane takes the state before its slice from the lane below and walks the slice again with
//      the kept decays, adding C_t[n] x_t to its y (the checkpoint-only pass skips this walk).
// One ex2 per state update (and one per slice), as in the sequential kernel; the per (row, step)
// work (softplus, silu, D u) is spread over the 16 states. A block's 8 rows (4 warps) share one B/C
// group and the window's B and C tiles in shared memory. It also writes the backward's checkpoints (every 32 steps) and
// serves the backward's checkpoint-only pass (no y), so both ways to the checkpoints agree bitwise.
// H100, batch 1 x dim 5120 x 2048 steps, bf16: 0.165 ms against the sequential kernel's 0.262. On
// the benchmark's 16384 rows the sequential kernel is faster (0.78 vs 1.13 ms before this scan): an
// update here costs ~17 instructions against ~12 (the scan, and the decays and inputs walked twice).
// What bounds it (ncu): the L1/shared-memory pipe at ~80% (per state and warp: 8 shuffles, four
// 16-byte tile reads), issue ~0.63 per scheduler at 4.85 warps; 16-bit tiles, cp.async windows,
// unrolling over states and the scan's decays by ex2 from summed delta' (5 shuffles per state instead
// of 8) measured no faster (bench/NOTES.md, tp4).
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/selective_scan_common.cuh"


namespace ss {
namespace scan_cuda {
namespace {

constexpr int kMaxNTP = 16;  // largest dstate served
constexpr int kCk = 32;      // the backward's checkpoint interval at dstate <= 16 (bwd_chunk)
constexpr int kJ = 8;        // steps per lane and window
constexpr int kLanes = 16;   // lanes per row
constexpr int kWin = kLanes * kJ, kRowsTP = kThreads / kLanes;  // steps per window, rows per block
// Registers (at most 80) and 18 KiB of shared memory per block: 6 blocks per SM.
constexpr int kMinBlocksTP = 6;
static_assert(kCk % kJ == 0 && kWin % kCk == 0, "checkpoints fall on slice ends");

// J consecutive elements from src as floats, zero from `valid` on; 16-byte loads when `vec`
// (src 16-byte aligned) and the slice is whole.
template <int J, typename T>
__device__ __forceinline__ void load_slice(float (&v)[J], const T* src, bool vec, int64_t valid) {
  constexpr int V = 16 / sizeof(T);
  static_assert(J % V == 0, "a slice is a whole number of 16-byte words");
  if (vec && valid >= J) {
#pragma unroll
    for (int q = 0; q < J / V; ++q) {
      float w[V];
      load_vec<T>(w, src + q * V);
#pragma unroll
      for (int e = 0; e < V; ++e) v[q * V + e] = w[e];
    }
  } else {
#pragma unroll
    for (int e = 0; e < J; ++e) v[e] = e < valid ? cuda::to_float(src[e]) : 0.f;
  }
}
template <int J, typename T>
__device__ __forceinline__ void store_slice(T* dst, const float (&v)[J], bool vec, int64_t valid) {
  constexpr int V = 16 / sizeof(T);
  if (vec && valid >= J) {
#pragma unroll
    for (int q = 0; q < J / V; ++q) {
      float w[V];
#pragma unroll
      for (int e = 0; e < V; ++e) w[e] = v[q * V + e];
      store_vec<T>(dst + q * V, w);
    }
  } else {
#pragma unroll
    for (int e = 0; e < J; ++e)
      if (e < valid) dst[e] = cuda::from_float<T>(v[e]);
  }
}

// Offset (floats) of 4-step group h of slice l within one state's row of a tile: slices are J/4
// 16-byte slots each, the groups of a slice permuted (XOR) so that the 8 lanes of a quarter warp
// reading group h of their slices hit 8 distinct 4-bank groups.
template <int J>
__device__ __forceinline__ int slot_of(int l, int h) {
  constexpr int S = J / 4, shift = 3 - ilog2(S);
  return (S * l + (h ^ ((l >> shift) & (S - 1)))) * 4;
}

// kY: y wanted (false: the backward's checkpoint-only pass).
template <typename T, bool kY>
__global__ void __launch_bounds__(kThreads, kMinBlocksTP) scan_fwd_tp_kernel(SelectiveScanParams p, Layout lo, Tiling tl) {
  constexpr int J = kJ, kRows = kRowsTP;
  __shared__ __align__(16) float s_B[kMaxNTP * kWin];  // [n][slices of the window]
  __shared__ __align__(16) float s_C[kMaxNTP * kWin];
  __shared__ float s_A2[kRows][kMaxNTP];  // A log2 e of each row
  // each row's state carried into the window, double-buffered: window w reads [w & 1] and writes
  // [(w + 1) & 1], so no lane overwrites a state another lane has yet to read
  __shared__ float s_x[2][kRows][kMaxNTP];
  const BlockRows br = block_rows(lo, tl);
  const int r = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;  // row in the block, slice in the window
  const bool active = r < br.nd;
  const int64_t b = br.b, d = br.d0 + (active ? r : 0), L = p.seqlen, row = b * p.dim + d;
  const int N = static_cast<int>(p.dstate);
  const T* u = static_cast<const T*>(p.u) + row * L;
  const T* delta = static_cast<const T*>(p.delta) + row * L;
  const T* z = p.z ? static_cast<const T*>(p.z) + row * L : nullptr;
  T* y = kY ? static_cast<T*>(p.y) + row * L : nullptr;
  const T* Bg = bc_group<T>(p.B, p.b_groups, p, b, br.d0);
  const T* Cg = kY ? bc_group<T>(p.C, p.c_groups, p, b, br.d0) : nullptr;
  if (lane < kMaxNTP) {
    const bool ok = active && lane < N;
    s_A2[r][lane] = ok ? static_cast<const float*>(p.A)[d * N + lane] * kLog2e : 0.f;
    s_x[0][r][lane] = ok && p.initial_state ? static_cast<const float*>(p.initial_state)[row * N + lane] : 0.f;
  }
  const float Dd = active && p.D ? static_cast<const float*>(p.D)[d] : 0.f;
  const float bias = active && p.delta_bias ? static_cast<const float*>(p.delta_bias)[d] : 0.f;
  // 16-byte loads and stores: every row (and B/C state row) starts 16-byte aligned when seqlen is a
  // multiple of J and the tensors are; a slice is a whole number of 16-byte words
  const uintptr_t bases = reinterpret_cast<uintptr_t>(p.u) | reinterpret_cast<uintptr_t>(p.delta) |
                          reinterpret_cast<uintptr_t>(p.z) | reinterpret_cast<uintptr_t>(p.y) |
                          reinterpret_cast<uintptr_t>(Bg) | reinterpret_cast<uintptr_t>(Cg);
  const bool vec = L % J == 0 && (bases & 15) == 0;
  constexpr unsigned kFull = 0xffffffffu;
  // windows start at multiples of kWin, so whether a lane's slice ends a checkpoint chunk is fixed
  const bool ck_lane = p.checkpoints && active && (lane + 1) * J % kCk == 0;
  const int64_t ck_row = row * p.n_chunks * N;  // this row's checkpoints
  static_assert(J == 8, "a slice is two 4-step groups");
  const int slot[2] = {slot_of<J>(lane, 0), slot_of<J>(lane, 1)};  // this lane's groups in a tile row

  for (int64_t t0 = 0; t0 < L; t0 += kWin) {
    const int64_t ts = t0 + lane * J, valid = L - ts;  // this lane's slice; steps left from it
    const int buf = static_cast<int>(t0 / kWin) & 1;
    __syncthreads();  // the previous window's tiles are read (before the first: s_A2, s_x are set)
    // B and C of the window: 2 x N x kLanes slices
    for (int i = threadIdx.x; i < (kY ? 2 : 1) * N * kLanes; i += kThreads) {
      const bool isC = i >= N * kLanes;
      const int j = isC ? i - N * kLanes : i, n = j / kLanes, l = j % kLanes;
      float v[J];
      load_slice<J>(v, (isC ? Cg : Bg) + n * L + t0 + l * J, vec, L - (t0 + l * J));
      float* dst = (isC ? s_C : s_B) + n * kWin;
#pragma unroll
      for (int h = 0; h < J / 4; ++h)
        *reinterpret_cast<float4*>(dst + slot_of<J>(l, h)) = make_float4(v[4 * h], v[4 * h + 1], v[4 * h + 2], v[4 * h + 3]);
    }
    // this lane's steps of the row: delta', delta' u, and y's D u term (zeros past seqlen: there
    // the decay is 1 and the input 0, so those steps leave the state as it is)
    float dt[J], du[J], yv[J], dtsum = 0.f;
    {
      float uv[J];
      load_slice<J>(dt, delta + ts, vec, valid);
      load_slice<J>(uv, u + ts, vec, valid);
      if (p.delta_softplus) {  // block-uniform: one branch, then straight-line code
#pragma unroll
        for (int e = 0; e < J; ++e) dt[e] = softplus(dt[e] + bias);
      } else {
#pragma unroll
        for (int e = 0; e < J; ++e) dt[e] += bias;
      }
#pragma unroll
      for (int e = 0; e < J; ++e) {
        dt[e] = e < valid && active ? dt[e] : 0.f;
        dtsum += dt[e];
        du[e] = dt[e] * uv[e];
        yv[e] = Dd * uv[e];
      }
    }
    __syncthreads();  // tiles staged
    // the backward's checkpoints: the state after every kCk steps, from the lane whose slice ends there
    float* ck = ck_lane && ts + J <= L ? p.checkpoints + ck_row + ((ts + J) / kCk - 1) * N : nullptr;

#pragma unroll 1  // one state per iteration: unrolled over two or all 16 states measured no faster
    for (int n = 0; n < N; ++n) {
      const float A2 = s_A2[r][n], xin = s_x[buf][r][n];
      float bv[J];
#pragma unroll
      for (int h = 0; h < J / 4; ++h) {
        const float4 q = *reinterpret_cast<const float4*>(s_B + n * kWin + slot[h]);
        bv[4 * h] = q.x, bv[4 * h + 1] = q.y, bv[4 * h + 2] = q.z, bv[4 * h + 3] = q.w;
      }
      // 1. the slice as x -> P x + S
      float a[J], bu[J], S = 0.f;
#pragma unroll
      for (int e = 0; e < J; ++e) {
        a[e] = exp2f(dt[e] * A2);
        bu[e] = du[e] * bv[e];
        S = fmaf(a[e], S, bu[e]);
      }
      float P = exp2f(dtsum * A2);
      // lane 0 applies its map to the carried-in state: its map becomes the constant x -> S (P = 0)
      if (lane == 0) S = fmaf(P, xin, S), P = 0.f;
      // 2. inclusive scan of the maps over the row's lanes: lane l ends with lanes 0..l composed,
      // applied to the carried-in state, i.e. S = the state after its slice and P = 0. A lane below
      // the shuffle's offset gets its own (P = 0, S) back, which leaves it as it is: no predicates.
#pragma unroll
      for (int off = 1; off < kLanes; off <<= 1) {
        const float Se = __shfl_up_sync(kFull, S, off, kLanes);
        if (off < kLanes / 2) {  // the last stage's P is not needed
          const float Pe = __shfl_up_sync(kFull, P, off, kLanes);
          S = fmaf(P, Se, S);
          P *= Pe;
        } else {
          S = fmaf(P, Se, S);
        }
      }
      if (ck) ck[n] = S;
      if (lane == kLanes - 1) s_x[buf ^ 1][r][n] = S;  // the state after the window
      if (kY) {
        // 3. the state before this lane's slice, then the slice again with C_t[n] x_t into y
        const float before = __shfl_up_sync(kFull, S, 1, kLanes);
        float x = lane == 0 ? xin : before, cv[J];
#pragma unroll
        for (int h = 0; h < J / 4; ++h) {
          const float4 q = *reinterpret_cast<const float4*>(s_C + n * kWin + slot[h]);
          cv[4 * h] = q.x, cv[4 * h + 1] = q.y, cv[4 * h + 2] = q.z, cv[4 * h + 3] = q.w;
        }
#pragma unroll
        for (int e = 0; e < J; ++e) {
          x = fmaf(a[e], x, bu[e]);
          yv[e] = fmaf(cv[e], x, yv[e]);
        }
      }
    }

    // y = (<C, x> + D u) silu(z)
    if (!kY) continue;
    if (z) {
      float zv[J];
      load_slice<J>(zv, z + ts, vec, valid);
#pragma unroll
      for (int e = 0; e < J; ++e) yv[e] *= zv[e] * sigmoid(zv[e]);
    }
    if (active) store_slice<J>(y + ts, yv, vec, valid);
  }
  __syncwarp();  // lane 0's last states are visible to the row's lanes
  if (active && lane < N) {
    const float x = s_x[((L + kWin - 1) / kWin) & 1][r][lane];
    if (p.last_state) static_cast<float*>(p.last_state)[row * N + lane] = x;
    // a last, partial chunk's checkpoint: the state after the last step
    if (p.checkpoints && L % kCk != 0) p.checkpoints[(row * p.n_chunks + p.n_chunks - 1) * N + lane] = x;
  }
}

template <typename T>
struct TouchTP {
  static void run() { touch_kernels(scan_fwd_tp_kernel<T, true>, scan_fwd_tp_kernel<T, false>); }
};
const bool g_preload = preload_per_dtype<TouchTP>();

}  // namespace

bool fwd_tp_applies(const SelectiveScanParams& p) {
  // Rows beyond one wave of this kernel: the sequential kernel has warps enough (and fewer
  // instructions per update).
  const int64_t wave_rows = static_cast<int64_t>(kMinBlocksTP) * kRowsTP * cuda::sm_count();
  return p.b_form == ScanBCForm::PerStep && p.c_form == ScanBCForm::PerStep && p.dstate <= kMaxNTP && !p.seq_idx &&
         p.batch * p.dim <= wave_rows;
}

void launch_fwd_tp(const SelectiveScanParams& p, cudaStream_t stream) {
  const Layout lo{kLanes, 1, static_cast<int>(p.dstate), kRowsTP};  // tiling_for reads only dims
  const Tiling tl = tiling_for(p, lo);
  check_grid(p, tl);
  if (p.checkpoints && bwd_chunk(layout_for(p.dstate)) != kCk)
    fail("ERR_INTERNAL", ErrorKind::Plain, "selectiveScan: checkpoint interval is not the time-parallel forward's");
  const dim3 grid(static_cast<unsigned>(tl.blocks()), static_cast<unsigned>(p.batch));
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    if (p.y)
      scan_fwd_tp_kernel<T, true><<<grid, kThreads, 0, stream>>>(p, lo, tl);
    else
      scan_fwd_tp_kernel<T, false><<<grid, kThreads, 0, stream>>>(p, lo, tl);
  });
  cuda::check_launch("selectiveScan forward (time-parallel)");
}

}  // namespace scan_cuda
}  // namespace ss
