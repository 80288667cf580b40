// CUDA decode step of the selective SSM (both forms; see ops/state_update.h).
//
// The step is bound by reading and writing the state once, so the kernel is laid out for the
// memory system and kept lean in instructions (an H100 moves ~13 bytes per SM cycle, so a warp
// has only a few hundred issue slots per 4 KB of state traffic):
//  - a row of dstate states is split across LPR lanes (a power of two, each lane V contiguous
//    states = 16-byte loads and stores), a warp covers 32/LPR rows, and each thread carries R
//    rows at once so R independent loads are in flight before any math;
//  - row -> (batch, head, group) by multiply-high division (cuda/fast_div.cuh), and the
//    per-head work (dt', softplus, exp(dt'·A), the state slot) is done once per head change,
//    i.e. once per warp iteration in the Mamba-2 form (headdim rows share it);
//  - Σ s·C is reduced across the LPR lanes by shuffles, then lane j of a row group finalises
//    row j (D·x, silu(z), the store), so the epilogue costs one pass for R rows, not R.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include "cuda/async_copy.cuh"
#include "cuda/check.cuh"
#include "cuda/fast_div.cuh"
#include "cuda/load_any.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include "cuda/smem_optin.h"
#include "ops/dense.h"
#include "ops/state_update.h"

namespace ss {
namespace {

using cuda::to_float;

template <typename T, int V> struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// The state streams through once per step: 16-byte accesses use the evict-first (.cs) cache
// policy so they don't push B, C and A out of L1/L2.
template <typename S, int V> __device__ __forceinline__ Pack<S, V> load_state(const S* ptr) {
  if constexpr (sizeof(Pack<S, V>) == 16) {
    const uint4 u = __ldcs(reinterpret_cast<const uint4*>(ptr));
    Pack<S, V> r;
    memcpy(&r, &u, 16);
    return r;
  } else {
    return *reinterpret_cast<const Pack<S, V>*>(ptr);
  }
}
template <typename S, int V> __device__ __forceinline__ void store_state(S* ptr, const Pack<S, V>& v) {
  if constexpr (sizeof(Pack<S, V>) == 16) {
    uint4 u;
    memcpy(&u, &v, 16);
    __stcs(reinterpret_cast<uint4*>(ptr), u);
  } else {
    *reinterpret_cast<Pack<S, V>*>(ptr) = v;
  }
}

// Blocks of 2 warps (measured on the H100, dec6 runs 1-4, batch 64: 2.79-2.88 / 2.736-2.740 TB/s
// f32 / bf16 state against 2.72-2.74 / 2.65-2.67 with 8 warps, 2.78 / 2.72 with 1): a block's
// slot frees when its slowest warp ends, and in a block of 8 warps 7 wait for the last one's
// loads. kBlocks (12 blocks, 24 warps per SM) caps the registers at 80.
struct Traits {
  static constexpr int kThreads = 64, kBlocks = 12;
  static constexpr int kRows = 4;  // rows per thread in flight
};

// Divisors of the row index (headdim, heads, heads per group) and the 32-bit batch strides of
// the inputs: x and z as the distance beyond a contiguous batch entry (0 when contiguous), so
// that a row's offset is one multiply-add.
struct RowMap {
  cuda::FastDiv P, H, hpg;
  uint32_t x_extra, z_extra, dt_stride, bc_stride;
};

// kSharedBC: every row of a warp iteration belongs to one head (the launcher checks that headdim
// is a multiple of the rows per warp iteration), so B and C are loaded and converted once per
// chunk of states instead of once per row (the bf16 state has twice the rows per byte).
template <typename S, typename I, int V, bool kAPerState, bool kSharedBC>
__global__ void __launch_bounds__(Traits::kThreads, Traits::kBlocks) state_update_kernel(StateUpdateParams p, RowMap m, int lpr_log2) {
  constexpr int R = Traits::kRows;
  const int lpr = 1 << lpr_log2, rpw = 32 >> lpr_log2;
  const int lane = threadIdx.x & 31, sub = lane & (lpr - 1), slot_in_warp = lane >> lpr_log2;
  // 32-bit row arithmetic: the launcher checks that rows, batch·groups·dstate < 2^31.
  const uint32_t rows = static_cast<uint32_t>(p.batch * p.heads * p.headdim);
  const uint32_t N32 = static_cast<uint32_t>(p.dstate);
  const int64_t N = p.dstate;
  const uint32_t per_warp = static_cast<uint32_t>(R * rpw);
  const uint32_t step = gridDim.x * (blockDim.x / 32) * per_warp;
  S* state = static_cast<S*>(p.state);
  const I* Bg = static_cast<const I*>(p.B);
  const I* Cg = static_cast<const I*>(p.C);
  const float* A = static_cast<const float*>(p.A);
  const float nan = __int_as_float(0x7fc00000);
  // The parameters of the thread's first row's head (A, the dt bias: no kernel writes them) are
  // loaded before the wait and used after it (mamba2-2.7b b1 -0.012 ms, b64 -0.02: bench/NOTES.md).
  const uint32_t base0 = (blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32) * per_warp;
  const uint32_t bh0 = m.P.div(min(base0 + static_cast<uint32_t>(slot_in_warp), rows - 1)), h0 = bh0 - m.H.div(bh0) * m.H.d;
  const float pA = kAPerState ? 0.f : A[h0];
  const float pBias = p.dt_bias ? static_cast<const float*>(p.dt_bias)[h0] : 0.f;
  cuda::pdl_wait();  // programmatic dependent launch (cuda/pdl.cuh): the producers are done
  cuda::pdl_trigger();

  for (uint32_t base = (blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32) * per_warp; base < rows; base += step) {
    uint32_t row[R], h_of[R], bc[R];
    int64_t soff[R];  // element offset of the row's states; -1: none (past the end, padding or bad slot)
    float dt[R], dA[R], x[R], acc[R], ybad[R];
    uint32_t prev_bh = 0xffffffffu;
    float hdt = 0.f, hdA = 0.f, hbad = 0.f;
    int64_t hslot = -1;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      row[r] = base + static_cast<uint32_t>(r * rpw + slot_in_warp);
      const uint32_t rr = row[r] < rows ? row[r] : rows - 1;  // clamp: loads stay in bounds
      const uint32_t bh = m.P.div(rr), b = m.H.div(bh), h = bh - b * m.H.d;
      h_of[r] = h;
      bc[r] = b * m.bc_stride + m.hpg.div(h) * N32;
      if (bh != prev_bh) {  // per-head work, once per head change
        prev_bh = bh;
        const bool pre = bh == bh0;  // the first row's head: its parameters are loaded
        float d = to_float(static_cast<const I*>(p.dt)[b * m.dt_stride + h]);
        if (p.dt_bias) d += pre ? pBias : static_cast<const float*>(p.dt_bias)[h];
        if (p.dt_softplus) d = cuda::softplus_f(d);
        if (p.has_dt_limit) d = fminf(fmaxf(d, p.dt_min), p.dt_max);
        hdt = d;
        hdA = kAPerState ? 0.f : __expf(d * (pre ? pA : A[h]));
        const int64_t slot = p.state_idx ? static_cast<int64_t>(p.state_idx[b]) : static_cast<int64_t>(b);  // (not uint32: -1 pads)
        hslot = slot >= 0 && slot < p.slots ? slot : -1;
        hbad = slot < 0 ? 0.f : nan;
      }
      dt[r] = hdt;
      dA[r] = hdA;
      ybad[r] = hbad;
      soff[r] = row[r] < rows && hslot >= 0 ? ((hslot * m.H.d + h) * static_cast<int64_t>(m.P.d) + (rr - bh * m.P.d)) * N : -1;
      x[r] = to_float(static_cast<const I*>(p.x)[rr + b * m.x_extra]);
      acc[r] = 0.f;
    }
    for (int64_t n0 = static_cast<int64_t>(sub) * V; n0 < N; n0 += static_cast<int64_t>(lpr) * V) {
      Pack<S, V> s[R];
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (soff[r] >= 0) s[r] = load_state<S, V>(state + soff[r] + n0);
      float bf[V], cf[V];  // B and C of the warp iteration's head (kSharedBC)
      if constexpr (kSharedBC) {
        const Pack<I, V> bv = *reinterpret_cast<const Pack<I, V>*>(Bg + bc[0] + n0);
        const Pack<I, V> cv = *reinterpret_cast<const Pack<I, V>*>(Cg + bc[0] + n0);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          bf[j] = to_float(bv.v[j]);
          cf[j] = to_float(cv.v[j]);
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (soff[r] < 0) continue;
        Pack<I, V> bv, cv;
        if constexpr (!kSharedBC) {
          bv = *reinterpret_cast<const Pack<I, V>*>(Bg + bc[r] + n0);
          cv = *reinterpret_cast<const Pack<I, V>*>(Cg + bc[r] + n0);
        }
        Pack<float, V> av;
        if constexpr (kAPerState) av = *reinterpret_cast<const Pack<float, V>*>(A + static_cast<int64_t>(h_of[r]) * N + n0);
        const float dtx = dt[r] * x[r];
        constexpr bool kPairs = std::is_same_v<S, __nv_bfloat16> && V % 2 == 0;
        uint32_t packed[kPairs ? V / 2 : 1];  // a bf16 state: two values per conversion (cvt.rn.bf16x2.f32,
        float prev = 0.f;                     // the same rounding as one at a time, half the instructions)
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float decay = kAPerState ? __expf(dt[r] * av.v[j]) : dA[r];
          const float v = to_float(s[r].v[j]) * decay + dtx * (kSharedBC ? bf[j] : to_float(bv.v[j]));
          acc[r] += v * (kSharedBC ? cf[j] : to_float(cv.v[j]));
          if constexpr (kPairs) {
            if (j & 1)
              packed[j / 2] = cuda::mma::pack2<__nv_bfloat16>(prev, v);
            else
              prev = v;
          } else {
            s[r].v[j] = cuda::from_float<S>(v);
          }
        }
        if constexpr (kPairs) memcpy(&s[r], packed, sizeof(packed));
        store_state<S, V>(state + soff[r] + n0, s[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
      for (int o = lpr / 2; o > 0; o >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], o);
    // Every lane of a row group now holds every row's sum; lane j finalises row r0 + j.
#pragma unroll
    for (int r0 = 0; r0 < R; r0 += (lpr < R ? lpr : R)) {
      float yv = 0.f, xv = 0.f, bad = 0.f;
      uint32_t rowv = rows, hv = 0;
      bool has_state = false;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (r >= r0 && r - r0 == sub) {
          yv = acc[r];
          xv = x[r];
          rowv = row[r];
          hv = h_of[r];
          bad = ybad[r];
          has_state = soff[r] >= 0;
        }
      }
      if (rowv < rows) {
        if (p.D) {
          const float* D = static_cast<const float*>(p.D);
          yv += (p.d_per_row ? D[hv * m.P.d + (rowv - m.P.div(rowv) * m.P.d)] : D[hv]) * xv;
        }
        if (p.z) {
          const uint32_t bv = m.H.div(m.P.div(rowv));
          yv *= cuda::silu_f(to_float(static_cast<const I*>(p.z)[rowv + bv * m.z_extra]));
        }
        static_cast<I*>(p.y)[rowv] = cuda::from_float<I>(has_state ? yv : bad);
      }
    }
  }
}

// The Mamba-1 form with dstate = 16 (every Mamba-1 checkpoint): one thread per (batch, channel)
// row holding the row's 16 states (staged through shared memory for coalescing), A, B and C in
// registers. The general kernel above spreads a
// row over 4 lanes and repeats the per-row work (dt, softplus, indices, epilogue) on each, which
// costs ~1000 instructions per 32 rows (ncu: 27.5 us at batch 64, 0.9 TB/s, issue-bound at 3
// blocks per SM); here it is ~200, done once per row, and every load of a thread is independent.
struct M1Traits {
  static constexpr int kThreads = 128, kN = 16;
};

// dt of row (b, h) when the kernel computes the dt projection (p.dt_proj): the rank-R dot
// product in f32 of the row's dt_proj weights (staged in shared memory, `w`) with the batch
// entry's low-rank input, rounded to the input dtype as a separate linear layer would round it.
template <typename I> __device__ float projected_dt(const StateUpdateParams& p, const unsigned char* w, uint32_t b) {
  constexpr int VI = 16 / sizeof(I);
  const Pack<I, VI>* v = reinterpret_cast<const Pack<I, VI>*>(static_cast<const I*>(p.dt) + b * p.dt_stride);
  float acc = 0.f;
  const int nv = static_cast<int>(p.dt_rank / VI);
#pragma unroll 4
  for (int k = 0; k < nv; ++k) {
    const Pack<I, VI> wv = reinterpret_cast<const Pack<I, VI>*>(w)[k], dv = v[k];
#pragma unroll
    for (int j = 0; j < VI; ++j) acc = fmaf(to_float(dv.v[j]), to_float(wv.v[j]), acc);
  }
  return to_float(cuda::from_float<I>(acc));
}

// Shared memory of the kProjDt kernel: each row's dt_proj weights, rows padded to an odd number
// of 16-byte chunks (conflict-free row reads).
__host__ __device__ inline size_t dt_proj_pitch(int64_t rank, size_t isize) { return static_cast<size_t>(rank) * isize + 16; }

// Channel h's A row (dstate 16), as loaded (load_a), then times log2(e) (scale_a2), as m1_step
// takes it; load_a2 does both.
__device__ __forceinline__ void load_a(Pack<float, 4> (&av)[M1Traits::kN / 4], const StateUpdateParams& p, int64_t h) {
#pragma unroll
  for (int k = 0; k < M1Traits::kN / 4; ++k) av[k] = reinterpret_cast<const Pack<float, 4>*>(static_cast<const float*>(p.A) + h * M1Traits::kN)[k];
}
__device__ __forceinline__ void scale_a2(Pack<float, 4> (&av)[M1Traits::kN / 4]) {
#pragma unroll
  for (int k = 0; k < M1Traits::kN / 4; ++k)
#pragma unroll
    for (int i = 0; i < 4; ++i) av[k].v[i] *= 1.4426950408889634f;
}
__device__ __forceinline__ void load_a2(Pack<float, 4> (&av)[M1Traits::kN / 4], const StateUpdateParams& p, int64_t h) {
  load_a(av, p, h);
  scale_a2(av);
}

// One Mamba-1 step of a row, dstate 16, whose states sit at `srow` (shared memory, updated in
// place; its 16-byte chunk k at chunk k ^ swz), with its entry's B and C at Bp / Cp (16-byte
// aligned), its x, and its gate input z (used only with p.z), from the raw dt (read or projected:
// before the bias, the softplus and the clamp): returns y with D·x and the gate applied. The
// batch-1 and the batched kernels use it.
// av holds A·log2(e) (load_a2), so that a state's decay is one multiply and one ex2 (__expf's own
// multiply by log2(e) folded into A once per channel). BC: the type B and C are read as (x's
// dtype, or float where the caller converted them once).
template <typename S, typename I, typename BC = I>
__device__ __forceinline__ float m1_step(const StateUpdateParams& p, S* srow, int swz, const Pack<float, 4> (&av)[M1Traits::kN / 4], const BC* Bp,
                                         const BC* Cp, float x, float z, float dt, float bias, float Dh) {
  constexpr int N = M1Traits::kN, VS = 16 / sizeof(S), VI = 16 / sizeof(BC), VR = N / VS;
  Pack<S, VS> sv[VR];
#pragma unroll
  for (int k = 0; k < VR; ++k) sv[k] = *reinterpret_cast<const Pack<S, VS>*>(srow + (k ^ swz) * VS);
  Pack<BC, VI> bv[N / VI], cv[N / VI];
#pragma unroll
  for (int k = 0; k < N / VI; ++k) {
    bv[k] = reinterpret_cast<const Pack<BC, VI>*>(Bp)[k];
    cv[k] = reinterpret_cast<const Pack<BC, VI>*>(Cp)[k];
  }
  dt += bias;
  if (p.dt_softplus) dt = cuda::softplus_f(dt);
  if (p.has_dt_limit) dt = fminf(fmaxf(dt, p.dt_min), p.dt_max);
  const float dtx = dt * x;
  float acc = 0.f;
#pragma unroll
  for (int n = 0; n < N; ++n) {
    const float a = dt * av[n / 4].v[n % 4];
    const float v = to_float(sv[n / VS].v[n % VS]) * exp2f(a) + dtx * to_float(bv[n / VI].v[n % VI]);
    acc = fmaf(v, to_float(cv[n / VI].v[n % VI]), acc);
    sv[n / VS].v[n % VS] = cuda::from_float<S>(v);
  }
#pragma unroll
  for (int k = 0; k < VR; ++k) *reinterpret_cast<Pack<S, VS>*>(srow + (k ^ swz) * VS) = sv[k];
  if (p.D) acc += Dh * x;
  if (p.z) acc *= cuda::silu_f(z);
  return acc;
}

// kProjDt: the kernel computes the dt projection (p.dt_proj), a variant of its own so that the
// dot product's registers do not lower the occupancy of the plain kernel.
template <typename S, typename I, bool kProjDt>
__global__ void __launch_bounds__(M1Traits::kThreads) state_update_m1_kernel(StateUpdateParams p, cuda::FastDiv H) {
  constexpr int N = M1Traits::kN;
  constexpr int VS = 16 / sizeof(S);
  constexpr int VR = N / VS;  // state vectors per row
  // The block's rows pass through shared memory, so that global loads and stores are coalesced
  // (a warp's instruction covers 512 contiguous bytes, not 16 bytes of each of 32 rows); rows
  // padded to an odd number of 16-byte chunks keep a thread's row reads free of bank conflicts.
  constexpr int kPitch = N + 16 / sizeof(S);
  __shared__ __align__(16) S rows_s[M1Traits::kThreads][kPitch];
  extern __shared__ __align__(16) unsigned char dtw_s[];  // kProjDt: the block's dt_proj rows
  const uint32_t nrows = static_cast<uint32_t>(p.batch * p.heads);
  const uint32_t row0 = blockIdx.x * blockDim.x;
  const size_t dtw_pitch = dt_proj_pitch(p.dt_rank, sizeof(I));
  if constexpr (kProjDt) {  // parameters: in flight before waiting for the producers
    const int chunks = static_cast<int>(p.dt_rank * sizeof(I) / 16);
    for (int j = threadIdx.x; j < static_cast<int>(blockDim.x) * chunks; j += blockDim.x) {
      const uint32_t rl = j / chunks, c = j - rl * chunks, r = row0 + rl;
      if (r < nrows) {
        const uint32_t h = r - H.div(r) * H.d;
        cuda::copy_async16(dtw_s + rl * dtw_pitch + c * 16, static_cast<const unsigned char*>(p.dt_proj) + (h * p.dt_rank * sizeof(I)) + c * 16);
      }
    }
  }
  // The row's parameters (A, the dt bias, D: no kernel writes them) are requested before the wait
  // and first used after it, so that their DRAM round trip overlaps the kernel before (x_proj):
  // -0.09 ms a mamba-2.8b token (bench/NOTES.md, tenth session).
  const uint32_t row = row0 + threadIdx.x;
  const bool live = row < nrows;
  const uint32_t b = H.div(live ? row : 0), h = (live ? row : 0) - b * H.d;
  Pack<float, 4> av[N / 4];
  float bias = 0.f, Dh = 0.f;
  if (live) {
    load_a(av, p, h);
    if (p.dt_bias) bias = static_cast<const float*>(p.dt_bias)[h];
    if (p.D) Dh = static_cast<const float*>(p.D)[h];
  }
  cuda::pdl_wait();
  cuda::pdl_trigger();
  // Element offset of a row's states; -1: no state (past the end, padding or a bad slot).
  auto state_offset = [&](uint32_t r) -> int64_t {
    if (r >= nrows) return -1;
    const uint32_t rb = H.div(r);
    const int64_t slot = p.state_idx ? static_cast<int64_t>(p.state_idx[rb]) : static_cast<int64_t>(rb);
    return slot >= 0 && slot < p.slots ? (slot * H.d + (r - rb * H.d)) * N : -1;
  };
  S* state = static_cast<S*>(p.state);
#pragma unroll
  for (int i = 0; i < VR; ++i) {
    const uint32_t j = threadIdx.x + i * blockDim.x, rl = j / VR, vec = j % VR;
    const int64_t off = state_offset(row0 + rl);
    if (off >= 0) *reinterpret_cast<Pack<S, VS>*>(&rows_s[rl][vec * VS]) = load_state<S, VS>(state + off + vec * VS);
  }
  if constexpr (kProjDt) cuda::copy_async_wait();
  __syncthreads();

  const int64_t slot = p.state_idx ? static_cast<int64_t>(p.state_idx[b]) : static_cast<int64_t>(b);
  const bool has_state = live && slot >= 0 && slot < p.slots;
  I* y = static_cast<I*>(p.y);
  if (live && !has_state)  // padding (y = 0) or a slot out of range (y = NaN)
    y[row] = cuda::from_float<I>(slot < 0 ? 0.f : __int_as_float(0x7fc00000));
  if (has_state) {
    scale_a2(av);
    const float dt = kProjDt ? projected_dt<I>(p, dtw_s + threadIdx.x * dtw_pitch, b) : to_float(static_cast<const I*>(p.dt)[b * p.dt_stride + h]);
    y[row] = cuda::from_float<I>(m1_step<S, I>(p, &rows_s[threadIdx.x][0], 0, av, static_cast<const I*>(p.B) + b * p.bc_stride, static_cast<const I*>(p.C) + b * p.bc_stride,
                                                  to_float(static_cast<const I*>(p.x)[b * p.x_stride + h]),
                                                  p.z ? to_float(static_cast<const I*>(p.z)[b * p.z_stride + h]) : 0.f, dt, bias, Dh));
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < VR; ++i) {
    const uint32_t j = threadIdx.x + i * blockDim.x, rl = j / VR, vec = j % VR;
    const int64_t off = state_offset(row0 + rl);
    if (off >= 0) store_state<S, VS>(state + off + vec * VS, *reinterpret_cast<const Pack<S, VS>*>(&rows_s[rl][vec * VS]));
  }
}

// The Mamba-1 form with dstate = 16 at batch > kGemvMaxM, in warp tiles: a warp owns 16
// consecutive channels x 8 batch entries (128 state rows) and no barrier beyond its own
// __syncwarp. A warp:
//  - requests its 8 entries' state runs (each entry's 16 rows are contiguous, so every cp.async
//    instruction of the warp covers 512 contiguous bytes) and their B / C rows into shared memory,
//    a pair of entries per commit group (with state_early, the caller's promise, the state runs
//    before the PDL wait and B / C by plain loads after it);
//  - meanwhile reads its x / z (/ dt) and, with kProjDt, computes dt = dt_proj · dt_low_rank for
//    its 16 channels x 8 entries as one m16n8 tensor-core tile, fragments straight from global
//    memory (a lane takes 8 contiguous k of each 32-wide chunk as its slots of two k16 steps: the
//    same permutation for both operands), the dt_proj fragments requested before the PDL wait;
//  - step j (j < 4) waits for pair j only; lane l updates channel l % 16 of entry 2j + l / 16 from
//    shared memory, whose 16-byte chunks are XOR-swizzled per channel so that these row reads,
//    the coalesced copies in and the copies out are all free of bank conflicts;
//  - and writes the pair's runs back with coalesced 16-byte stores while the later pairs arrive.
// Batch 64 x 5120 channels: 640 blocks of 4 warps, one wave at 5 blocks per SM. Measured on the
// H100 (bench/NOTES.md, dec6 runs 1-3), batch 64, a bf16 state with dt_proj / an f32 state: with
// the copies waited for all at once (a read phase, a compute phase, a write phase in one wave)
// 12.8 / 20.5 µs against 12.1 / 18.6 with the pairs in the same build (11.6-11.8 / 17.2-17.3
// now); the fifth session's ring kernel (a block walking ~11 entries through a cp.async ring, two
// block barriers each) 14.1 / 17.9.
struct M1TileTraits {
  static constexpr int kN = 16, kCh = 16, kEnt = 8, kWarps = 4, kThreads = 32 * kWarps;
  static constexpr int kGroup = 5;  // 32-wide rank chunks of the dt product in flight together
  template <typename S> __host__ __device__ static constexpr int state_bytes() { return kEnt * kCh * kN * static_cast<int>(sizeof(S)); }
  template <typename I> __host__ __device__ static constexpr int bc_bytes() { return kEnt * 2 * kN * static_cast<int>(sizeof(I)); }
  static constexpr int kDtBytes = kEnt * kCh * 4;
  template <typename S> __host__ __device__ static constexpr int warp_bytes() { return state_bytes<S>() + bc_bytes<float>() + kDtBytes; }
  // Chunk swizzle of channel c's state row (CR 16-byte chunks): eight consecutive channels cover
  // the eight 16-byte bank groups for every chunk index.
  template <typename S> __host__ __device__ static constexpr int swz(int c) {
    constexpr int CR = kN * static_cast<int>(sizeof(S)) / 16;
    return (c / (8 / CR)) % CR;
  }
};

// Waits until at most n (< 4) of this thread's commit groups are pending.
__device__ __forceinline__ void copy_async_wait_pending(int n) {
  switch (n) {
    case 0: cuda::copy_async_wait_group<0>(); break;
    case 1: cuda::copy_async_wait_group<1>(); break;
    case 2: cuda::copy_async_wait_group<2>(); break;
    default: cuda::copy_async_wait_group<3>(); break;
  }
}

// The kernel is issue-bound more than memory-bound at batch 64 (bench/NOTES.md, b64x8 runs 2-3:
// one instruction every 2 cycles per scheduler, DRAM at 30%), so its per-state work is kept
// short: B and C are converted to float once, as they are stored to shared memory (plain loads),
// not by each of the 16 lanes of their entry in every step, and A is scaled by log2(e) once per
// channel (load_a2): -0.04 ms a mamba-2.8b batch-64 step with a bf16 state.
template <typename S, typename I, bool kProjDt>
__global__ void __launch_bounds__(M1TileTraits::kThreads, 5) state_update_m1_tile_kernel(StateUpdateParams p) {
  using Tr = M1TileTraits;
  constexpr int N = Tr::kN, CH = Tr::kCh, E = Tr::kEnt, G = Tr::kGroup;
  constexpr int VS = 16 / sizeof(S), CR = N / VS;  // 16-byte chunks of a state row
  constexpr int VI = 16 / sizeof(I), CB = N / VI;  // of a B or C row
  extern __shared__ __align__(16) unsigned char smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t H = p.heads, h0 = static_cast<int64_t>(blockIdx.x) * CH;
  const int64_t e0 = (static_cast<int64_t>(blockIdx.y) * Tr::kWarps + warp) * E;
  if (e0 >= p.batch) return;
  unsigned char* mine = smem + warp * Tr::warp_bytes<S>();
  S* st_s = reinterpret_cast<S*>(mine);                                                          // [E][CH][N]
  float* bc_s = reinterpret_cast<float*>(mine + Tr::state_bytes<S>());                           // [E][B, C][N]
  float* dt_s = reinterpret_cast<float*>(mine + Tr::state_bytes<S>() + Tr::bc_bytes<float>());  // [E][CH]
  const int c = lane % CH, half = lane / CH;  // this lane's channel; its entries half + 2j
  const int64_t h = h0 + c;
  const bool hlive = h < H;
  const int64_t hc = hlive ? h : H - 1;
  // kProjDt: the m16n8 dt tile. Lane (g, q) holds dt_proj rows h0 + g, h0 + g + 8 (clamped) and
  // the low-rank row of entry e0 + g (clamped); chunk u of 32 k: elements 32u + 8q .. + 7.
  const int g = lane / 4, q = lane % 4;
  const int R = static_cast<int>(p.dt_rank), full = kProjDt ? R / 32 : 0;
  const I* wr0 = kProjDt ? static_cast<const I*>(p.dt_proj) + min(h0 + g, H - 1) * R : nullptr;
  const I* wr1 = kProjDt ? static_cast<const I*>(p.dt_proj) + min(h0 + g + 8, H - 1) * R : nullptr;
  uint4 wa[G], wb[G];
  if constexpr (kProjDt) {
#pragma unroll
    for (int u = 0; u < G; ++u)
      if (u < full) {
        wa[u] = __ldg(reinterpret_cast<const uint4*>(wr0 + 32 * u + 8 * q));
        wb[u] = __ldg(reinterpret_cast<const uint4*>(wr1 + 32 * u + 8 * q));
      }
  }
  // Lane e < E: the state slot of entry e0 + e (-1: padding, >= slots: bad, INT32_MIN: past the batch).
  int slot_l = INT32_MIN;
  auto valid = [&](int slot) { return slot >= 0 && slot < p.slots; };
  S* state = static_cast<S*>(p.state);
  // The state runs: chunk i of the warp is entry i / (CH·CR), channel (i / CR) % CH, chunk i % CR
  // (the entry is the same across the warp for each step of the loop).
  auto state_chunk = [&](int i, int& slot, int& ch, int& v) {
    const int e = i / (CH * CR);
    slot = __shfl_sync(0xffffffffu, slot_l, e);
    ch = (i / CR) % CH;
    v = i % CR;
    return e;
  };
  // The copies go out a pair of entries at a time (the entries of step j below: 2j and 2j + 1),
  // each pair its own commit group, so that step j waits only for its pair and its runs go back
  // while the later pairs still arrive.
  constexpr int PC = 2 * CH * CR;  // state chunks of a pair
  auto copy_state = [&](int j) {
#pragma unroll
    for (int i = j * PC + lane; i < (j + 1) * PC; i += 32) {
      int slot, ch, v;
      const int e = state_chunk(i, slot, ch, v);
      if (valid(slot) && h0 + ch < H)
        cuda::copy_async16(st_s + (e * CH + ch) * N + (v ^ Tr::swz<S>(ch)) * VS, state + ((static_cast<int64_t>(slot) * H + h0 + ch) * N + v * VS));
    }
  };
  // The warp's slots, then its state runs, a pair of entries per commit group.
  auto request_state = [&] {
    if (lane < E && e0 + lane < p.batch) slot_l = p.state_idx ? p.state_idx[e0 + lane] : static_cast<int>(e0 + lane);
#pragma unroll
    for (int j = 0; j < E / 2; ++j) {
      copy_state(j);
      cuda::copy_async_commit();
    }
  };
  // With the caller's promise (StateUpdateParams::state_early) the state runs (and their slots) are
  // requested before the PDL wait: the blocks that launch while x_proj runs (one beside each of its
  // blocks, five on each SM it leaves free) have them in flight then. B and C then come by plain
  // loads. Measured (bench/NOTES.md, b64x8 run 1): -0.07 / -0.10 ms a batch-64 step of mamba-2.8b,
  // bf16 / f32 state; an L2 prefetch of A, D and the dt bias beside it gained nothing.
  if (p.state_early) request_state();
  cuda::pdl_wait();
  cuda::pdl_trigger();
  if (!p.state_early) request_state();
  // B and C of the warp's entries (E·2·CB 16-byte chunks: one or two a lane) requested now, stored
  // to shared memory as floats after the dt product (the pair loop's __syncwarp publishes them)
  constexpr int kBcPerLane = (E * 2 * CB + 31) / 32;
  uint4 bcv[kBcPerLane];
  auto bc_chunk = [&](int k, int& e, int& which, int& v) {
    const int i = lane + 32 * k;
    e = i / (2 * CB);
    which = (i / CB) % 2;
    v = i % CB;
    return i < E * 2 * CB && e0 + e < p.batch;
  };
  {
#pragma unroll
    for (int k = 0; k < kBcPerLane; ++k) {
      int e, which, v;
      if (bc_chunk(k, e, which, v)) bcv[k] = __ldg(reinterpret_cast<const uint4*>(static_cast<const I*>(which ? p.C : p.B) + (e0 + e) * p.bc_stride + v * VI));
    }
  }
  if constexpr (kProjDt) {
    using namespace cuda::mma;
    const I* tr = static_cast<const I*>(p.dt) + min(e0 + g, p.batch - 1) * p.dt_stride;
    float d[4] = {0.f, 0.f, 0.f, 0.f};
    for (int u0 = 0; u0 < full; u0 += G) {
      if (u0 > 0) {
#pragma unroll
        for (int u = 0; u < G; ++u)
          if (u0 + u < full) {
            wa[u] = __ldg(reinterpret_cast<const uint4*>(wr0 + 32 * (u0 + u) + 8 * q));
            wb[u] = __ldg(reinterpret_cast<const uint4*>(wr1 + 32 * (u0 + u) + 8 * q));
          }
      }
      uint4 tb[G];
#pragma unroll
      for (int u = 0; u < G; ++u)
        if (u0 + u < full) tb[u] = *reinterpret_cast<const uint4*>(tr + 32 * (u0 + u) + 8 * q);
#pragma unroll
      for (int u = 0; u < G; ++u)
        if (u0 + u < full) {
          const uint32_t a0[4] = {wa[u].x, wb[u].x, wa[u].y, wb[u].y}, a1[4] = {wa[u].z, wb[u].z, wa[u].w, wb[u].w};
          const uint32_t b0[2] = {tb[u].x, tb[u].y}, b1[2] = {tb[u].z, tb[u].w};
          mma16816<I>(d, a0, b0);
          mma16816<I>(d, a1, b1);
        }
    }
    if (R % 32) {  // a last k16 step: lane q takes the 4 contiguous k at 4q
      const int k0 = full * 32 + 4 * q;
      const uint2 ta = *reinterpret_cast<const uint2*>(wr0 + k0), tb2 = *reinterpret_cast<const uint2*>(wr1 + k0);
      const uint2 tt = *reinterpret_cast<const uint2*>(tr + k0);
      const uint32_t a[4] = {ta.x, tb2.x, ta.y, tb2.y}, b[2] = {tt.x, tt.y};
      mma16816<I>(d, a, b);
    }
    // d[i]: channel g + 8·(i / 2), entry 2q + i % 2; rounded to the input dtype as a separate
    // linear layer rounds it
#pragma unroll
    for (int i = 0; i < 4; ++i) dt_s[(2 * q + (i & 1)) * CH + g + 8 * (i >> 1)] = to_float(cuda::from_float<I>(d[i]));
  }
#pragma unroll
  for (int k = 0; k < kBcPerLane; ++k) {
    int e, which, v;
    if (bc_chunk(k, e, which, v)) {  // VI values of x's dtype as floats
      const I* raw = reinterpret_cast<const I*>(&bcv[k]);
      float f[VI];
#pragma unroll
      for (int i = 0; i < VI; ++i) f[i] = to_float(raw[i]);
#pragma unroll
      for (int i = 0; i < VI; i += 4) *reinterpret_cast<float4*>(bc_s + (e * 2 + which) * N + v * VI + i) = make_float4(f[i], f[i + 1], f[i + 2], f[i + 3]);
    }
  }
  // This lane's channel parameters and its rows' x, z (and dt when given), while the copies fly
  // (after the dt product, which needs the registers).
  Pack<float, 4> av[N / 4];
  load_a2(av, p, hc);
  const float Dh = p.D ? static_cast<const float*>(p.D)[hc] : 0.f;
  const float biash = p.dt_bias ? static_cast<const float*>(p.dt_bias)[hc] : 0.f;
  float xv[4], zv[4], dv[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t b = min(e0 + half + 2 * j, p.batch - 1);
    xv[j] = to_float(static_cast<const I*>(p.x)[b * p.x_stride + hc]);
    zv[j] = p.z ? to_float(static_cast<const I*>(p.z)[b * p.z_stride + hc]) : 0.f;
    dv[j] = kProjDt ? 0.f : to_float(static_cast<const I*>(p.dt)[b * p.dt_stride + hc]);
  }

  I* y = static_cast<I*>(p.y);
#pragma unroll
  for (int j = 0; j < E / 2; ++j) {
    copy_async_wait_pending(E / 2 - 1 - j);
    __syncwarp();
    const int e = half + 2 * j;
    const int slot = __shfl_sync(0xffffffffu, slot_l, e);
    const int64_t b = e0 + e;
    if (b < p.batch && hlive) {
      if (!valid(slot)) {  // padding (y = 0) or a slot out of range (y = NaN)
        y[b * H + h] = cuda::from_float<I>(slot < 0 ? 0.f : __int_as_float(0x7fc00000));
      } else {
        const float dt = kProjDt ? dt_s[e * CH + c] : dv[j];
        y[b * H + h] = cuda::from_float<I>(
            m1_step<S, I, float>(p, st_s + (e * CH + c) * N, Tr::swz<S>(c), av, bc_s + e * 2 * N, bc_s + (e * 2 + 1) * N, xv[j], zv[j], dt, biash, Dh));
      }
    }
    __syncwarp();  // the pair's runs go back
#pragma unroll
    for (int i = j * PC + lane; i < (j + 1) * PC; i += 32) {
      int slot2, ch, v;
      const int e2 = state_chunk(i, slot2, ch, v);
      if (valid(slot2) && h0 + ch < H)
        store_state<S, VS>(state + ((static_cast<int64_t>(slot2) * H + h0 + ch) * N + v * VS),
                           *reinterpret_cast<const Pack<S, VS>*>(st_s + (e2 * CH + ch) * N + (v ^ Tr::swz<S>(ch)) * VS));
    }
  }
}

bool aligned(const void* ptr, size_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

template <typename S, typename I, bool kProjDt> void launch_m1_tile(const StateUpdateParams& p, cudaStream_t st) {
  using Tr = M1TileTraits;
  const int64_t xb = (p.heads + Tr::kCh - 1) / Tr::kCh, yb = (p.batch + Tr::kWarps * Tr::kEnt - 1) / (Tr::kWarps * Tr::kEnt);
  if (xb > 0x7fffffff || yb > 65535) fail("ERR_SHAPE", ErrorKind::Range, "selectiveStateUpdate: too many channels or batch entries for the batched kernel");
  const size_t smem = static_cast<size_t>(Tr::kWarps) * Tr::warp_bytes<S>();  // <= 41 KB
  // (below 48 KB for the largest carveout, which the batched decode chain wants: smem_optin.h)
  cuda::set_smem_once<state_update_m1_tile_kernel<S, I, kProjDt>>(smem, "selectiveStateUpdate: carveout");
  cuda::launch_pdl(state_update_m1_tile_kernel<S, I, kProjDt>, dim3(static_cast<unsigned>(xb), static_cast<unsigned>(yb)), dim3(Tr::kThreads), smem, st, p);
}

template <typename S, typename I, int V, bool kAPerState> void launch(const StateUpdateParams& p, cudaStream_t st) {
  int64_t lanes = (p.dstate + V - 1) / V;
  int lg = 0;
  while ((1 << lg) < lanes && lg < 5) ++lg;
  const int64_t rows = p.batch * p.heads * p.headdim;
  const int64_t widest = std::max({p.x_stride, p.z_stride, p.dt_stride, p.bc_stride});
  if (rows >= (int64_t{1} << 31) || p.batch * widest >= (int64_t{1} << 31) || p.heads * p.dstate >= (int64_t{1} << 31))
    fail("ERR_SHAPE", ErrorKind::Range, "selectiveStateUpdate: batch·heads·headdim and batch·groups·dstate must stay below 2^31 on CUDA");
  const int64_t rows_per_block = static_cast<int64_t>(Traits::kThreads / 32) * (32 >> lg) * Traits::kRows;
  int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
  if (blocks > (1 << 20)) blocks = 1 << 20;
  const int64_t HP = p.heads * p.headdim;
  RowMap m{cuda::FastDiv(static_cast<uint32_t>(p.headdim)), cuda::FastDiv(static_cast<uint32_t>(p.heads)),
           cuda::FastDiv(static_cast<uint32_t>(p.heads / p.groups)), static_cast<uint32_t>(p.x_stride - HP),
           static_cast<uint32_t>(p.z ? p.z_stride - HP : 0), static_cast<uint32_t>(p.dt_stride), static_cast<uint32_t>(p.bc_stride)};
  // Only the bf16 state takes the shared-B/C variant: the f32-state kernel already runs at the
  // copy bandwidth (measured), and the variant's extra registers would lower its occupancy.
  auto kernel = !kAPerState && sizeof(S) == 2 && p.headdim % (Traits::kRows * (32 >> lg)) == 0 ? state_update_kernel<S, I, V, kAPerState, !kAPerState>
                                                                                            : state_update_kernel<S, I, V, kAPerState, false>;
  cuda::launch_pdl(kernel, dim3(static_cast<unsigned>(blocks)), dim3(Traits::kThreads), 0, st, p, m, lg);
}

template <typename S, typename I, bool kAPerState> void pick_width(const StateUpdateParams& p, cudaStream_t st) {
  constexpr int V = 16 / sizeof(S);
  bool vec = p.dstate % V == 0 && p.bc_stride % V == 0 && aligned(p.state, 16) && aligned(p.B, V * sizeof(I)) && aligned(p.C, V * sizeof(I)) &&
             (!kAPerState || aligned(p.A, V * sizeof(float)));
  if (vec)
    launch<S, I, V, kAPerState>(p, st);
  else
    launch<S, I, 1, kAPerState>(p, st);
}

}  // namespace

// Whether the one-row-per-thread Mamba-1 kernel applies: dstate 16, every vector aligned.
template <typename S, typename I> bool m1_fits(const StateUpdateParams& p) {
  return p.a_per_state && p.headdim == 1 && p.dstate == M1Traits::kN && p.batch * p.heads < (int64_t{1} << 31) &&
         aligned(p.state, 16) && aligned(p.A, 16) && aligned(p.B, 16) && aligned(p.C, 16) &&
         (p.bc_stride * static_cast<int64_t>(sizeof(I))) % 16 == 0;
}

bool state_update_cuda_fuses_dt_proj(const StateUpdateParams& p) {
  return SS_FLOAT_SWITCH(p.dtype, I, [&] {
    const int64_t VI = 16 / sizeof(I);
    // Shared memory: the dt_proj rows of a 64-thread block beside the kernel's static state rows.
    const size_t ssize = p.state_dtype == DType::BFloat16 ? 2 : 4;
    const size_t rows_bytes = static_cast<size_t>(M1Traits::kThreads) * (M1Traits::kN * ssize + 16);
    // Batches > 8: the tile kernel's tensor-core product, one m16n8 tile per warp (16-bit inputs,
    // rank % 16 == 0), at any batch.
    const bool batched = p.batch > kGemvMaxM;
    const bool smem_ok = batched ? sizeof(I) == 2 && p.dt_rank % 16 == 0
                                 : 64 * dt_proj_pitch(p.dt_rank, sizeof(I)) + rows_bytes <= 48 * 1024;
    const bool dt_ok = p.dt_rank % VI == 0 && aligned(p.dt_proj, 16) && aligned(p.dt, 16) && (p.dt_stride % VI) == 0 && smem_ok;
    return dt_ok && (p.state_dtype == DType::BFloat16 ? m1_fits<__nv_bfloat16, I>(p) : m1_fits<float, I>(p));
  });
}

void state_update_cuda(const StateUpdateParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, I, [&] {
    auto by_state = [&](auto* tag) {
      using S = std::remove_pointer_t<decltype(tag)>;
      if (m1_fits<S, I>(p) && p.batch > kGemvMaxM) {
        if constexpr (sizeof(I) == 2) {
          if (p.dt_proj) {
            launch_m1_tile<S, I, true>(p, st);
            return;
          }
        }
        launch_m1_tile<S, I, false>(p, st);  // (f32 inputs: dt_proj is never fused at batch > 8)
      } else if (m1_fits<S, I>(p)) {
        // Small batches (a few thousand rows) in 64-thread blocks, so that more SMs share them.
        // (The dt_proj variant always in 64-thread blocks: its shared memory grows with the rank.)
        const int64_t rows = p.batch * p.heads;
        const int threads = rows < 32768 || p.dt_proj ? 64 : M1Traits::kThreads;
        const unsigned grid = static_cast<unsigned>((rows + threads - 1) / threads);
        const cuda::FastDiv H(static_cast<uint32_t>(p.heads));
        if (p.dt_proj)
          cuda::launch_pdl(state_update_m1_kernel<S, I, true>, dim3(grid), dim3(threads), threads * dt_proj_pitch(p.dt_rank, sizeof(I)), st, p, H);
        else
          cuda::launch_pdl(state_update_m1_kernel<S, I, false>, dim3(grid), dim3(threads), 0, st, p, H);
      } else if (p.a_per_state)
        pick_width<S, I, true>(p, st);
      else
        pick_width<S, I, false>(p, st);
    };
    if (p.state_dtype == DType::BFloat16)
      by_state(static_cast<__nv_bfloat16*>(nullptr));
    else
      by_state(static_cast<float*>(nullptr));
  });
  cuda::check_launch("selectiveStateUpdate");
}

}  // namespace ss
