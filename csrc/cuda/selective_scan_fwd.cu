// CUDA selective scan forward: one fused kernel. Per chunk of steps a block stages delta' (bias +
// softplus applied once per element), u, silu(z) and the B/C tiles in shared memory; the next
// chunk's inputs come meanwhile, by bulk tensor copies into raw tiles (16-bit inputs at dstate
// 9-16 on sm_90: the staging then never waits on device memory) or as L2 prefetches. Each lane
// then advances its K states through the chunk four steps at a time (one 16-byte load brings four
// steps of delta' and of u; exp2 of a pre-scaled A, f32 state), two such groups per loop
// iteration (four at dstate 9-16) with no branch inside (the lanes per row are a compile-time
// constant at the usual dstate), so the scheduler overlaps one group's shuffles with the others'
// exps. The G lanes of a row reduce <C, x> of four steps by a transpose-reduce (reduce_steps4),
// and the lane owning a step applies D and the gate; y goes back coalesced, with the next chunk's
// staging where both chunks are whole (no pass and barrier of its own). When p.checkpoints is set
// it also writes the state after every chunk (for the backward). Rows too few to fill the GPU are
// split along time (see selective_scan_cuda_segments).
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/selective_scan_common.cuh"
#include "cuda/smem_optin.h"
#include "cuda/tensor_map.h"
#include "cuda/tma.cuh"

namespace ss {
namespace scan_cuda {
namespace {

// Registers allow 4 resident blocks with 4 states per lane; 8 per lane (dstate > 128) needs more.
template <int K>
constexpr int fwd_min_blocks() { return K == 4 ? 4 : 1; }

// Whether the kernel stages whole chunks of 2-byte rows through bulk tensor copies (TMA, sm_90+)
// issued a chunk ahead: the 4-lane layout of dstate 9-16 (the usual Mamba size: 32 rows, 16
// padded states per block), where the raw tiles of chunks up to kRawChunk steps (16 KiB) still
// leave room for 4 blocks per SM. f32 rows would not fit.
template <typename T, int kG>
constexpr bool fwd_bulk() { return sizeof(T) == 2 && kG == 4; }
constexpr int kRawChunk = 64, kRawRows = kThreads / 4, kRawStates = 16;
// Raw tiles at fixed offsets from the start of shared memory (constants, not registers held
// across the step loop), each 1024-byte aligned as the 128-byte swizzle needs: delta, u, z
// [kRawRows][chunk] from 0, 4 KiB apart; B and C [kRawStates][chunk] from 12 KiB, 2 KiB apart;
// then the mbarrier. Within a tile the copy engine stores byte offset o at o ^ ((o >> 7 & 7) << 4)
// (the 16-byte units of each 128-byte line permuted by the line's index mod 8), so that the
// staging's reads of eight rows at one step are conflict-free.
constexpr int kRawRowTile = 2 * kRawRows * kRawChunk, kRawStateTile = 2 * kRawStates * kRawChunk;
constexpr int kRawBytes = 3 * kRawRowTile + 2 * kRawStateTile + 16;
// Then every kernel's deltaBias row (kThreads floats at most), then fwd_smem_bytes' part.
constexpr int kBiasBytes = kThreads * sizeof(float);

// Shared memory of a launch (bulk: the kernel's raw tiles are compiled in and the device runs them).
inline size_t fwd_launch_smem(const Layout& lo, int chunk, bool bulk) {
  return (bulk ? kRawBytes : 0) + kBiasBytes + fwd_smem_bytes(lo, chunk);
}

__device__ __forceinline__ int swizzle128(int o) { return o ^ (((o >> 7) & 7) << 4); }

// bf16 elements of a 16-byte load, converted from its 32-bit words: the high element of a word is
// one mask (element-wise access extracted it and shifted it: two instructions; on a shared load it
// also let the compiler split the load into eight 2-byte loads); other types as unpack_vec (with
// the words, f16 spilled at the 128-register cap).
template <typename T>
__device__ __forceinline__ void unpack_words(float (&v)[16 / sizeof(T)], const uint4& raw) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int q = 0; q < 4; ++q) v[2 * q] = __uint_as_float(w[q] << 16), v[2 * q + 1] = __uint_as_float(w[q] & 0xffff0000u);
  } else {
    unpack_vec<T>(v, raw);
  }
}

// Tensor maps of the bulk staging (row-major 2-D views: rows of seqlen steps): delta, u, z as
// (batch * dim) rows, boxes of the block's rows x kRawChunk steps; per-step B and C as (batch *
// groups * dstate) rows, boxes of 16 states x kRawChunk steps. Always kRawChunk (128-byte box
// lines, the swizzle's span): the checkpointing forward's 32-step chunks read 64 steps and use
// the first 32 (with 64-byte lines the tiles did not land as swizzle128 reads them: LOST F2's
// checkpoint tests). `ok`: all wanted maps encoded.
struct FwdMaps {
  CUtensorMap dt, u, z, B, C;
  bool ok;
};

// One chunk's B (or C) tile from its raw swizzled tile (state n's chunk steps in line n): as
// load_bc_tile_vec, but from shared memory.
template <typename T>
__device__ __forceinline__ void stage_bc_raw(float* dst, const char* raw, const SelectiveScanParams& p, const Layout& lo,
                                             int chunk) {
  constexpr int V = 16 / sizeof(T);
  const int lgn = __ffs(lo.npad) - 1;
  for (int i = threadIdx.x; i < lo.npad * (chunk / V); i += kThreads) {
    const int n = i & (lo.npad - 1), t = (i >> lgn) * V;
    // every state row of the raw tile is there (the copy brought 16): those past dstate (another
    // group's, or zeros) are zeroed by masking the loaded words (4 operations, not a select per
    // element), not skipped by a branch (which split the 16-byte load into eight 2-byte ones and
    // cost ~6% of the kernel's stall samples)
    const uint32_t keep = n < p.dstate ? 0xffffffffu : 0u;
    uint4 w = *reinterpret_cast<const uint4*>(raw + swizzle128((n * kRawChunk + t) * 2));
    w.x &= keep, w.y &= keep, w.z &= keep, w.w &= keep;
    float v[V];
    unpack_words<T>(v, w);
#pragma unroll
    for (int j = 0; j < V; ++j) dst[(t + j) * lo.npad + n] = v[j];
  }
}


template <typename T, int K, int kG>
__global__ void __launch_bounds__(kThreads, fwd_min_blocks<K>())
    scan_fwd_kernel(SelectiveScanParams p, Layout lo, Tiling tl, int chunk, bool ends_pass,
                    const __grid_constant__ FwdMaps maps) {
  // 1024-byte aligned: the raw tiles' 128-byte swizzle needs it (dynamic shared memory starts there)
  extern __shared__ __align__(1024) float smem[];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr bool kBulk = fwd_bulk<T, kG>();
#else
  constexpr bool kBulk = false;
#endif
  char* raw_dt = reinterpret_cast<char*>(smem);  // (kBulk) raw tiles, see kRawBytes
  char* raw_u = raw_dt + kRawRowTile;
  char* raw_z = raw_u + kRawRowTile;
  char* raw_B = raw_z + kRawRowTile;
  char* raw_C = raw_B + kRawStateTile;
  [[maybe_unused]] uint64_t* s_bar = reinterpret_cast<uint64_t*>(raw_C + kRawStateTile);
  float* s_bias = smem + (kBulk ? kRawBytes : 0) / sizeof(float);  // deltaBias of the block's rows (0 without)
  const int TP = row_stride(chunk);
  // rows per block and padded states: compile-time constants at 4 lanes per row (other layouts keep
  // them run-time values: 8 more registers at 8 states per lane, one resident block fewer)
  const int dims = kG == 4 ? kThreads / kG : lo.dims, npad_c = kG == 4 ? kG * K : lo.npad;
  float* s_dt = s_bias + kThreads;
  float* s_u = s_dt + dims * TP;
  float* s_zy = s_u + dims * TP;  // silu(z) in, gated y out
  float* s_B = s_zy + dims * TP;  // [chunk][npad]; 16-byte aligned (TP and npad are multiples of 4)
  float* s_C = s_B + chunk * npad_c;
  int* s_rst = reinterpret_cast<int*>(s_C + chunk * npad_c);
  // [2][kThreads][K]: each lane's time-invariant B and C (read like a tile row with step stride 0)
  float* s_ti = reinterpret_cast<float*>(s_rst + chunk);

  const BlockRows br = block_rows(lo, tl);
  // kG > 0: the lanes per row are known at compile time (the reduction then has no branches)
  const int G = kG > 0 ? kG : lo.G, npad = G * K;
  const int tid = threadIdx.x, dl = tid / G, lane = tid % G;
  const bool active = dl < br.nd;
  const int64_t b = br.b, d = br.d0 + (active ? dl : 0), L = p.seqlen, N = p.dstate;
  const bool b_ti = p.b_form == ScanBCForm::TimeInvariant, c_ti = p.c_form == ScanBCForm::TimeInvariant;
  const T* u = static_cast<const T*>(p.u);
  const T* delta = static_cast<const T*>(p.delta);
  // Time segment blockIdx.z: [t_begin, t_end) (the whole row unless p.n_seg > 1). The ends pass
  // runs each segment but the last from a zero state and keeps only its end (p.seg_ends).
  const int seg = blockIdx.z;
  const int64_t t_begin = seg * p.seg_len, t_end = p.n_seg > 1 ? min(L, t_begin + p.seg_len) : L;
  const bool want_y = p.y != nullptr && !ends_pass;
  // the checkpoint-only pass of the backward (no y) needs neither z nor a per-step C tile
  const T* z = want_y ? static_cast<const T*>(p.z) : nullptr;
  const bool c_tile = !c_ti && want_y;
  const float* A = static_cast<const float*>(p.A);
  const float* bias = static_cast<const float*>(p.delta_bias);
  const T* Bg = b_ti ? nullptr : bc_group<T>(p.B, p.b_groups, p, b, br.d0);
  const T* Cg = c_ti ? nullptr : bc_group<T>(p.C, p.c_groups, p, b, br.d0);
  const int lg = __ffs(chunk) - 1;  // chunk is a power of two
  const int64_t base = (b * p.dim + br.d0) * L;  // first element of the block's first row
  // 16-byte staging (u, delta, z, B, C) and y stores: V elements per access; every row starts
  // 16-byte aligned when seqlen is a multiple of V and the tensors are (chunk is a multiple of V).
  constexpr int V = 16 / sizeof(T);
  const int vpr = chunk / V, lgv = lg - (__ffs(V) - 1);
  const bool vec = L % V == 0 && ((reinterpret_cast<uintptr_t>(u) | reinterpret_cast<uintptr_t>(delta) |
                                   reinterpret_cast<uintptr_t>(z) | reinterpret_cast<uintptr_t>(p.y) |
                                   reinterpret_cast<uintptr_t>(Bg) | reinterpret_cast<uintptr_t>(Cg)) & 15) == 0;
  // Whole chunks after the first come in by bulk copies issued during the chunk before (the same
  // alignment as the 16-byte staging; sm_90+ code only).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const bool bulk = kBulk && maps.ok && vec && chunk <= kRawChunk;
#else
  const bool bulk = false;
#endif

  // Per-lane constants; states past dstate (and rows past the block's) stay exactly zero.
  float A2[K], x[K];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t n = lane * K + k;
    const bool ok = active && n < N;
    A2[k] = ok ? A[d * N + n] * kLog2e : 0.f;
    x[k] = ok && p.initial_state ? static_cast<const float*>(p.initial_state)[(b * p.dim + d) * N + n] : 0.f;
    if (seg > 0 && ok) {
      // a later segment: zero in the ends pass; else the state the segments before leave, folded
      // from their ends: x <- decay * x + end, decay = exp(A * sum of delta') or 0 after a restart
      const int64_t NS = N + 2;
      const float* e = p.seg_ends + (b * p.dim + d) * (p.n_seg - 1) * NS;
      x[k] = ends_pass ? 0.f : e[n];
      for (int j = 1; !ends_pass && j < seg; ++j) {
        const float* ej = e + j * NS;
        const float decay = ej[N + 1] != 0.f ? 0.f : exp2f(A2[k] * ej[N]);
        x[k] = fmaf(decay, x[k], ej[n]);
      }
    }
    // only this thread touches its slots: the chunk loop's first barrier orders them
    if (b_ti) s_ti[tid * K + k] = ok ? cuda::to_float(static_cast<const T*>(p.B)[d * N + n]) : 0.f;
    if (c_ti) s_ti[(kThreads + tid) * K + k] = ok ? cuda::to_float(static_cast<const T*>(p.C)[d * N + n]) : 0.f;
  }
  // This lane's B_t (C_t) values start at b_src + t * b_step: the staged tile, or its
  // time-invariant values with step 0 (no branch per step).
  const float* b_src = b_ti ? s_ti + tid * K : s_B + lane * K;
  const float* c_src = c_ti ? s_ti + (kThreads + tid) * K : s_C + lane * K;
  const int b_step = b_ti ? 0 : npad, c_step = c_ti ? 0 : npad;
  const float Dd = active && p.D ? static_cast<const float*>(p.D)[d] : 0.f;
  const float* rdt = s_dt + dl * TP;
  const float* ru = s_u + dl * TP;
  float* rzy = s_zy + dl * TP;
  if (tid < lo.dims) s_bias[tid] = bias && tid < br.nd ? bias[br.d0 + tid] : 0.f;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (bulk && tid == 0) {
    cuda::mbar_init(cuda::shared_addr(s_bar), 1);
    cuda::mbar_init_fence();
  }
#endif
  __syncthreads();  // s_bias and the mbarrier before the first staging
  // With G >= 4 lanes per row, reduce_steps4 hands each lane the same step of every four: its y
  // epilogue then reads u and the gate at a fixed offset (no select of u by step).
  const int own = ((lane & 1) << 1) | ((lane >> 1) & 1);

  // One chunk's recurrence, four steps per group. kRestart: seqIdx present (a restart flag
  // zeroes the decay of that step); kY: y wanted (not for the checkpoint-only pass of the
  // backward); kTile: B and C both staged tiles (per-step B and C, the usual case), whose step
  // stride is then a constant that the shared loads take as immediate offsets. Steps past seqlen
  // have delta' = 0: the state stays as is.
  auto run_steps = [&](auto restart_tag, auto y_tag, auto tile_tag, int ngroups) {
    constexpr bool kRestart = decltype(restart_tag)::value, kY = decltype(y_tag)::value;
    constexpr bool kTile = decltype(tile_tag)::value;
    const float* bs = kTile ? s_B + lane * K : b_src;
    const float* cs = kTile ? s_C + lane * K : c_src;
    const int bstep = kTile ? npad : b_step, cstep = kTile ? npad : c_step;
    // M groups from step t, then (kY) their y. The y stores come after all M groups' loads: the
    // compiler can't move a shared load above a shared store it can't tell apart, so with one
    // group per y store the groups ran one after another; M = 2 lets the second group's loads
    // and math overlap the first's row sums.
    auto groups = [&](auto m_tag, int t) {
      constexpr int M = decltype(m_tag)::value;
      float part[M][4];  // this lane's share of <C_t, x_t> for the steps of each group
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const Steps4 st = load_steps4<kRestart>(rdt, ru, s_rst, t + 4 * m);
#pragma unroll
        for (int s = 0; s < 4; ++s) {
          const int ts = t + 4 * m + s;
          const float dt = st.dt[s], du = dt * st.u[s];
          float bv[K], cv[K];
          load_k<K>(bv, bs + ts * bstep);
          if (kY) {
            load_k<K>(cv, cs + ts * cstep);
          } else {
#pragma unroll
            for (int k = 0; k < K; ++k) cv[k] = 0.f;
          }
          float acc = 0.f;
#pragma unroll
          for (int k = 0; k < K; ++k) {
            float a = exp2f(dt * A2[k]);
            if (kRestart && st.rst[s]) a = 0.f;
            x[k] = fmaf(a, x[k], du * bv[k]);
            if (kY) acc = fmaf(cv[k], x[k], acc);
          }
          part[m][s] = acc;
        }
      }
      if (!kY) return;
      // The owner of step t+4m+s: y = <C, x> + D u, times silu(z) (staged as 1 without z); the
      // gate's slot takes y.
      reduce_steps4<M>(part, G, lane, [&](int s, const float(&v)[M]) {
#pragma unroll
        for (int m = 0; m < M; ++m) {
          const int o = t + 4 * m + (G >= 4 ? own : s);
          rzy[o] = fmaf(Dd, ru[o], v[m]) * rzy[o];
        }
      });
    };
    int gq = 0;
    // 16-bit types at 4 lanes per row: four groups per iteration (a reduction tail per 16 steps; f32
    // measured no faster with it and keeps two)
    if (kY && kG == 4 && sizeof(T) == 2) {
#pragma unroll 1
      for (; gq + 4 <= ngroups; gq += 4) groups(std::integral_constant<int, 4>{}, 4 * gq);
    }
    if (kY) {
#pragma unroll 1
      for (; gq + 2 <= ngroups; gq += 2) groups(std::integral_constant<int, 2>{}, 4 * gq);
    }
#pragma unroll 1
    for (; gq < ngroups; ++gq) groups(std::integral_constant<int, 1>{}, 4 * gq);
  };

  float sdt = 0.f;  // ends pass: this lane's share of the segment's sum of delta'
  bool rst = false;  // ends pass: a restart inside the segment
  // bit 0: this chunk's tiles were bulk-copied during the chunk before; bit 1: the parity of the
  // mbarrier phase that completes them
  uint32_t raw_state = 0;
  // The chunk before's y still in the gate rows: this chunk's 16-byte staging stores it first (each
  // thread the positions it then overwrites: the y pass and a barrier fewer per chunk).
  bool y_pending = false;
  // Tensor-copy coordinates of the block's rows, and of its B (C) group's first state row, once per
  // block: done per chunk by thread 0, the group's 64-bit divisions kept warp 0 of every block (all
  // on one scheduler) behind the others at each chunk's barriers (bench/NOTES.md, scanf7 G3)
  [[maybe_unused]] const int rows_at = static_cast<int>(b * p.dim + br.d0);
  [[maybe_unused]] const int b_row = b_ti ? 0 : static_cast<int>((b * p.b_groups + br.d0 / (p.dim / p.b_groups)) * N);
  [[maybe_unused]] const int c_row = c_ti ? 0 : static_cast<int>((b * p.c_groups + br.d0 / (p.dim / p.c_groups)) * N);
  const int n_chunks = static_cast<int>((t_end - t_begin + chunk - 1) >> lg);
  for (int c = 0; c < n_chunks; ++c) {
    const int64_t t0 = t_begin + (static_cast<int64_t>(c) << lg);
    const int len = static_cast<int>(t_end - t0 < chunk ? t_end - t0 : chunk);
    // Stage the chunk (zeros past seqlen and past the block's rows): 16-byte loads along each
    // row for whole chunks of aligned rows (from the raw tiles once tensor copies bring them),
    // element by element otherwise.
    // softplus a compile-time flag of the staging loop: with a run-time one each element was its
    // own branch (and rows past the block's were another), ~3x the loop's stall cycles
    auto stage_vec = [&](auto softplus_tag, auto raw_tag) {
      constexpr bool kSoftplus = decltype(softplus_tag)::value, kRaw = decltype(raw_tag)::value;
      for (int i = tid; i < lo.dims * vpr; i += kThreads) {
        const int r = i >> lgv, t = (i & (vpr - 1)) * V;
        // raw 16-byte loads first (all in flight at once), then one row at a time converted
        // and stored, so that only one row's V floats are live
        uint4 rd = make_uint4(0, 0, 0, 0), ru = rd, rz = rd;
        const bool in = r < br.nd;
        if (y_pending && in) {  // the chunk before's y (t0 - chunk: it was a whole chunk)
          float yv[V];
          load_k<V>(yv, s_zy + r * TP + t);
          store_vec<T>(static_cast<T*>(p.y) + base + r * L + (t0 - chunk) + t, yv);
        }
        if (in) {
          if (kRaw) {
            const int ri = swizzle128((r * kRawChunk + t) * 2);
            rd = *reinterpret_cast<const uint4*>(raw_dt + ri);
            ru = *reinterpret_cast<const uint4*>(raw_u + ri);
            if (z) rz = *reinterpret_cast<const uint4*>(raw_z + ri);
          } else {
            const int64_t gi = base + r * L + t0 + t;
            rd = *reinterpret_cast<const uint4*>(delta + gi);
            ru = *reinterpret_cast<const uint4*>(u + gi);
            if (z) rz = *reinterpret_cast<const uint4*>(z + gi);
          }
        }
        // Rows past the block's (inactive lanes: A = 0, zero state) get u = 0 and bias 0, so their
        // state stays zero whatever delta' is: no mask multiply per element.
        const float bb = s_bias[r];
        float v[V];
        unpack_words<T>(v, rd);
#pragma unroll
        for (int j = 0; j < V; ++j) v[j] = kSoftplus ? softplus(v[j] + bb) : v[j] + bb;
        store_k<V>(s_dt + r * TP + t, v);
        unpack_words<T>(v, ru);
        store_k<V>(s_u + r * TP + t, v);
        unpack_words<T>(v, rz);
        if (z) {  // uniform branch, not a select per element
#pragma unroll
          for (int j = 0; j < V; ++j) v[j] *= sigmoid(v[j]);
        } else {
#pragma unroll
          for (int j = 0; j < V; ++j) v[j] = 1.f;
        }
        store_k<V>(s_zy + r * TP + t, v);
      }
    };
    if (kBulk && (raw_state & 1)) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      cuda::mbar_wait(cuda::shared_addr(s_bar), raw_state >> 1);
      raw_state ^= 2;
#endif
      if (p.delta_softplus)
        stage_vec(std::true_type{}, std::true_type{});
      else
        stage_vec(std::false_type{}, std::true_type{});
      if (!b_ti) stage_bc_raw<T>(s_B, raw_B, p, lo, chunk);
      if (c_tile) stage_bc_raw<T>(s_C, raw_C, p, lo, chunk);
    } else {
      if (vec && len == chunk) {
        if (p.delta_softplus)
          stage_vec(std::true_type{}, std::false_type{});
        else
          stage_vec(std::false_type{}, std::false_type{});
      } else {
        for (int i = tid; i < lo.dims * chunk; i += kThreads) {
          const int r = i >> lg, t = i & (chunk - 1);
          float dtv = 0.f, uv = 0.f, zv = 1.f;
          if (r < br.nd && t < len) {
            const int64_t gi = base + r * L + t0 + t;
            const float pre = cuda::to_float(delta[gi]) + s_bias[r];
            dtv = p.delta_softplus ? softplus(pre) : pre;
            uv = cuda::to_float(u[gi]);
            if (z) {
              zv = cuda::to_float(z[gi]);
              zv *= sigmoid(zv);
            }
          }
          s_dt[r * TP + t] = dtv;
          s_u[r * TP + t] = uv;
          s_zy[r * TP + t] = zv;
        }
      }
      load_bc_tiles(s_B, s_C, Bg, Cg, b_ti, !c_tile, vec, p, lo, chunk, t0, len);
    }
    if (p.seq_idx) load_restarts(s_rst, p, b, chunk, t0, len);
    __syncthreads();
    if (t0 + chunk < t_end) {
      const int64_t tn = t0 + chunk;
      const int ln = static_cast<int>(t_end - tn < chunk ? t_end - tn : chunk);
      const bool raw_next = bulk && ln == chunk;
      raw_state = (raw_state & 2) | (raw_next ? 1 : 0);
      if (raw_next) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        // The next chunk's tiles by bulk tensor copies (this chunk's raw tiles were all read
        // before the barrier above), issued by one thread; the copy engine moves them during
        // this chunk. Rows past the tensors' ends arrive as zeros; the staging ignores rows past
        // the block's and states past dstate.
        if (tid == 0) {
          const uint32_t bar = cuda::shared_addr(s_bar);
          constexpr uint32_t row_tile = 2 * kRawRows * kRawChunk, state_tile = 2 * kRawStates * kRawChunk;
          cuda::mbar_arrive_expect_tx(bar, row_tile * (z ? 3 : 2) + state_tile * ((b_ti ? 0 : 1) + (c_tile ? 1 : 0)));
          const int t_next = static_cast<int>(tn);
          cuda::tma::load_2d(cuda::shared_addr(raw_dt), &maps.dt, t_next, rows_at, bar);
          cuda::tma::load_2d(cuda::shared_addr(raw_u), &maps.u, t_next, rows_at, bar);
          if (z) cuda::tma::load_2d(cuda::shared_addr(raw_z), &maps.z, t_next, rows_at, bar);
          if (!b_ti) cuda::tma::load_2d(cuda::shared_addr(raw_B), &maps.B, t_next, b_row, bar);
          if (c_tile) cuda::tma::load_2d(cuda::shared_addr(raw_C), &maps.C, t_next, c_row, bar);
        }
#endif
      } else if (!kBulk) {  // the next chunk's inputs into L2 (bulk kernels: none, a register short)
        prefetch_rows(delta + base, L, br.nd, tn, ln);
        prefetch_rows(u + base, L, br.nd, tn, ln);
        if (z) prefetch_rows(z + base, L, br.nd, tn, ln);
        if (!b_ti) prefetch_rows(Bg, L, static_cast<int>(N), tn, ln);
        if (c_tile) prefetch_rows(Cg, L, static_cast<int>(N), tn, ln);
      }
    }

    const int ngroups = (len + 3) >> 2;
    // the tiled variant only where y is wanted (the checkpoint-only pass keeps the general one)
    auto run = [&](auto restart_tag, auto y_tag) {
      if constexpr (decltype(y_tag)::value) {
        if (!b_ti && !c_ti) return run_steps(restart_tag, y_tag, std::true_type{}, ngroups);
      }
      run_steps(restart_tag, y_tag, std::false_type{}, ngroups);
    };
    if (p.seq_idx) {
      if (want_y)
        run(std::true_type{}, std::true_type{});
      else
        run(std::true_type{}, std::false_type{});
    } else {
      if (want_y)
        run(std::false_type{}, std::true_type{});
      else
        run(std::false_type{}, std::false_type{});
    }

    if (ends_pass) {
      for (int t = lane; t < len; t += G) {
        sdt += rdt[t];
        rst = rst || (p.seq_idx && s_rst[t]);
      }
    }
    if (p.checkpoints && active) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t n = lane * K + k;
        if (n < N) p.checkpoints[((b * p.dim + d) * p.n_chunks + c) * N + n] = x[k];
      }
    }
    // y of a whole chunk followed by a whole chunk goes out with the next staging (same 16-byte
    // items, same threads); otherwise here, after a barrier
    // (16-bit types at 4 states per lane only: at 8 states per lane 10 more registers cost a
    // resident block; f32 measured no faster with it)
    y_pending = K == 4 && sizeof(T) == 2 && want_y && vec && len == chunk && t_end - (t0 + chunk) >= chunk;
    if (want_y && !y_pending) {
      __syncthreads();
      T* y = static_cast<T*>(p.y);
      if (vec && len == chunk) {
        for (int i = tid; i < lo.dims * vpr; i += kThreads) {
          const int r = i >> lgv, t = (i & (vpr - 1)) * V;
          if (r >= br.nd) continue;
          float yv[V];
          load_k<V>(yv, s_zy + r * TP + t);
          store_vec<T>(y + base + r * L + t0 + t, yv);
        }
      } else {
        for (int i = tid; i < lo.dims * chunk; i += kThreads) {
          const int r = i >> lg, t = i & (chunk - 1);
          if (r < br.nd && t < len) y[base + r * L + t0 + t] = cuda::from_float<T>(s_zy[r * TP + t]);
        }
      }
    }
    __syncthreads();  // the next chunk overwrites shared memory
  }
  if (ends_pass) {
    sdt = row_sum(sdt, G);  // every lane of the warp takes part, active or not
    const bool any_rst = row_sum(rst ? 1.f : 0.f, G) != 0.f;
    if (!active) return;
    float* e = p.seg_ends + ((b * p.dim + d) * (p.n_seg - 1) + seg) * (N + 2);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t n = lane * K + k;
      if (n < N) e[n] = x[k];
    }
    if (lane == 0) e[N] = sdt, e[N + 1] = any_rst ? 1.f : 0.f;
    return;
  }
  if (p.last_state && active && seg == p.n_seg - 1) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t n = lane * K + k;
      if (n < N) static_cast<float*>(p.last_state)[(b * p.dim + d) * N + n] = x[k];
    }
  }
}

// Chunk of the public forward (no checkpoints): the longest of 64/32/16 that fits in 48 KiB.
int fwd_chunk(const Layout& lo) {
  int chunk = 64;
  while (chunk > 16 && fwd_smem_bytes(lo, chunk) > 48 * 1024) chunk /= 2;
  return chunk;
}

// What the bulk staging's tensor maps are encoded from.
struct FwdMapsKey {
  const void* base[5];
  int64_t batch, dim, seqlen, b_rows, c_rows;
  int box_rows, chunk;
  bool bf16;
  bool operator==(const FwdMapsKey& o) const { return std::memcmp(this, &o, sizeof(*this)) == 0; }
};

// The bulk staging's tensor maps (see FwdMaps); ok = false where one doesn't encode (the kernel
// then stages from device memory as without them). The last ones encoded on this thread are
// kept with their key: calls on the same tensors (a benchmark, a layer run again) skip the
// driver's encoder (5 maps a launch).
FwdMaps fwd_maps(const SelectiveScanParams& p, const Layout& lo, int chunk, bool bf16) {
  FwdMapsKey key;
  std::memset(&key, 0, sizeof(key));  // the padding too: keys compare as bytes
  const ScanBCForm step = ScanBCForm::PerStep;
  key.base[0] = p.delta, key.base[1] = p.u, key.base[2] = p.z;
  key.base[3] = p.b_form == step ? p.B : nullptr, key.base[4] = p.c_form == step ? p.C : nullptr;
  key.batch = p.batch, key.dim = p.dim, key.seqlen = p.seqlen;
  key.b_rows = p.b_form == step ? p.b_groups * p.dstate : 0, key.c_rows = p.c_form == step ? p.c_groups * p.dstate : 0;
  key.box_rows = lo.dims, key.chunk = chunk, key.bf16 = bf16;
  thread_local FwdMapsKey last_key{};
  thread_local FwdMaps last{};
  if (last.ok && key == last_key) return last;
  FwdMaps m{};
  const uint64_t L = static_cast<uint64_t>(p.seqlen), stride[1] = {L * 2};
  auto tile = [&](CUtensorMap* map, const void* base, uint64_t rows, uint32_t box_rows) {
    const uint64_t dims[2] = {L, rows};
    const uint32_t box[2] = {static_cast<uint32_t>(kRawChunk), box_rows};
    return cuda::encode_tile_map_16(map, bf16, base, 2, dims, stride, box);
  };
  const uint64_t rows = static_cast<uint64_t>(p.batch) * p.dim;
  m.ok = L % 8 == 0 && chunk <= kRawChunk && tile(&m.dt, p.delta, rows, lo.dims) && tile(&m.u, p.u, rows, lo.dims) &&
         (!p.z || tile(&m.z, p.z, rows, lo.dims)) &&
         (p.b_form != ScanBCForm::PerStep ||
          tile(&m.B, p.B, static_cast<uint64_t>(p.batch) * p.b_groups * p.dstate, kRawStates)) &&
         (p.c_form != ScanBCForm::PerStep ||
          tile(&m.C, p.C, static_cast<uint64_t>(p.batch) * p.c_groups * p.dstate, kRawStates));
  if (m.ok) last_key = key, last = m;
  return m;
}

template <typename T, int K, int kG>
void launch_fwd(const SelectiveScanParams& p, const Layout& lo, const Tiling& tl, int chunk, cudaStream_t stream) {
  const bool bulk = fwd_bulk<T, kG>() && cuda::compute_capability() >= 90;
  FwdMaps maps{};
  if constexpr (fwd_bulk<T, kG>()) {
    if (bulk) maps = fwd_maps(p, lo, chunk, std::is_same_v<T, __nv_bfloat16>);
  }
  const size_t smem = fwd_launch_smem(lo, chunk, bulk);
  auto kernel = scan_fwd_kernel<T, K, kG>;
  if (smem > 48 * 1024) cuda::set_smem_once<scan_fwd_kernel<T, K, kG>>(smem, "selectiveScan: shared memory");
  const unsigned blocks = static_cast<unsigned>(tl.blocks()), batch = static_cast<unsigned>(p.batch);
  if (p.n_seg > 1) {  // every segment but the last from zero, for its end state
    kernel<<<dim3(blocks, batch, static_cast<unsigned>(p.n_seg - 1)), kThreads, smem, stream>>>(p, lo, tl, chunk, true, maps);
    cuda::check_launch("selectiveScan forward (segment ends)");
  }
  kernel<<<dim3(blocks, batch, static_cast<unsigned>(p.n_seg)), kThreads, smem, stream>>>(p, lo, tl, chunk, false, maps);
  cuda::check_launch("selectiveScan forward");
}

// Resident blocks of the forward on this device (cached per device): blocks per SM x SMs.
int64_t resident_fwd_blocks(int K) {
  return static_cast<int64_t>(K == 4 ? fwd_min_blocks<4>() : fwd_min_blocks<8>()) * cuda::sm_count();
}

// The forward kernels, loaded when a device is first used (not on an op's first call).
template <typename T>
struct TouchFwd {
  static void run() { touch_kernels(scan_fwd_kernel<T, 4, 4>, scan_fwd_kernel<T, 4, 0>, scan_fwd_kernel<T, 8, 32>); }
};
const bool g_preload = preload_per_dtype<TouchFwd>();

}  // namespace

// Every launch goes through here: sizes the grid can't take are refused, never truncated.
void check_grid(const SelectiveScanParams& p, const Tiling& tl) {
  if (p.batch > 65535)
    fail("ERR_SHAPE", ErrorKind::Range, "selectiveScan: batch must be at most 65535 on CUDA, got " + std::to_string(p.batch));
  if (tl.blocks() > 0x7fffffff) fail("ERR_SHAPE", ErrorKind::Range, "selectiveScan: dim too large for one launch");
}

}  // namespace scan_cuda

int64_t selective_scan_cuda_chunk(const SelectiveScanParams& p) {
  return scan_cuda::bwd_chunk(scan_cuda::layout_for(p.dstate));
}

// Rows (batch x dim) too few to fill the resident blocks of the device leave most of the GPU
// idle for the whole sequence (batch 1 x dim 5120: 160 blocks for 528 slots). Split along time:
// n segments (whole chunks each) multiply the blocks by n; the price is a first pass over all but
// the last segment for their end states (no y, no C, no z: ~40% of a forward's work per step).
int64_t selective_scan_cuda_segments(const SelectiveScanParams& p, int64_t* seg_len) {
  using namespace scan_cuda;
  const Layout lo = layout_for(p.dstate);
  const int64_t chunk = fwd_chunk(lo), blocks = tiling_for(p, lo).blocks() * p.batch;
  int64_t n = fwd_tp_applies(p) ? 1 : resident_fwd_blocks(lo.K) / std::max<int64_t>(blocks, 1);  // parallel in time already
  n = std::min<int64_t>({n, (p.seqlen + chunk - 1) / chunk, 16});
  if (p.checkpoints || n < 2) {
    *seg_len = p.seqlen;
    return 1;
  }
  const int64_t len = ((p.seqlen + n - 1) / n + chunk - 1) / chunk * chunk;
  *seg_len = len;
  return (p.seqlen + len - 1) / len;
}

void selective_scan_fwd_cuda(const SelectiveScanParams& p, void* stream) {
  using namespace scan_cuda;
  if (fwd_tp_applies(p)) return launch_fwd_tp(p, static_cast<cudaStream_t>(stream));
  const Layout lo = layout_for(p.dstate);
  const Tiling tl = tiling_for(p, lo);
  check_grid(p, tl);
  if (p.n_seg > 1 && (p.checkpoints || !p.seg_ends || p.n_seg > 65535 || p.seg_len % fwd_chunk(lo) != 0))
    fail("ERR_INTERNAL", ErrorKind::Plain, "selectiveScan: time segments set up wrongly");
  // With checkpoints the chunk is the checkpoint interval the backward expects.
  const int chunk = p.checkpoints ? bwd_chunk(lo) : fwd_chunk(lo);
  auto st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, T, [&] { SS_LAYOUT_SWITCH(lo, K, kG, [&] { launch_fwd<T, K, kG>(p, lo, tl, chunk, st); }); });
}

}  // namespace ss
