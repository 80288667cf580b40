// CUDA selective scan forward: one fused kernel. Per chunk of steps a block stages delta' (bias +
// softplus applied once per element), u, silu(z) and the B/C tiles in shared memory, and asks L2
// for the next chunk's inputs. Each lane then advances its K states through the chunk four steps
// at a time (one 16-byte load brings four steps of delta' and of u; exp2 of a pre-scaled A, f32
// state), two such groups per loop iteration with no branch inside (the lanes per row are a
// compile-time constant at the usual dstate), so the scheduler overlaps one group's shuffles with
// the other's exps. The G lanes of a row reduce <C, x> of four steps by a transpose-reduce
// (reduce_steps4), and the lane owning a step applies D and the gate. y goes back coalesced. When
// p.checkpoints is set it also writes the state after every chunk (for the backward). Rows too
// few to fill the GPU are split along time (see selective_scan_cuda_segments).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/selective_scan_common.cuh"

namespace ss {
namespace scan_cuda {
namespace {

// Time segments of a row (few rows; see selective_scan_cuda_segments): segment s covers steps
// [start[s], start[s + 1]).
constexpr int kMaxSeg = 16;
struct Segments {
  int n;
  int64_t start[kMaxSeg + 1];
};

// A block of segment s >= 1 also runs segment s - 1 once more for its end state, at about
// kEndsCost of the time per step of a full pass; so the segments after the first are shorter, to
// even out the blocks' work: L_s = L_0 - kEndsCost L_{s-1}, in whole chunks (the last takes the rest).
constexpr double kEndsCost = 0.45;
Segments segments_for(int64_t seqlen, int n, int chunk) {
  double e = kEndsCost;
  if (const char* v = std::getenv("STATESPACE_SCAN_ENDS_COST")) e = std::atof(v);  // EXPERIMENT knob
  Segments sg{};
  sg.n = n;
  double w[kMaxSeg], total = 0;
  for (int s = 0; s < n; ++s) total += w[s] = s == 0 ? 1.0 : 1.0 - e * w[s - 1];
  const int64_t chunks = (seqlen + chunk - 1) / chunk;
  double cum = 0;
  int64_t c = 0;
  for (int s = 1; s < n; ++s) {
    cum += w[s - 1];
    const int64_t want = std::llround(static_cast<double>(chunks) * cum / total);
    c = std::min(std::max(want, c + 1), chunks - (n - s));
    sg.start[s] = c * chunk;
  }
  sg.start[n] = seqlen;
  return sg;
}

// 2^x on the FMA pipe (Cody-Waite: x = j + f, j = round(x), |f| <= 1/2; 2^f by a degree-5 minimax
// polynomial, relative error below 2e-7 like MUFU's ex2.approx; 2^j added to the exponent bits).
// x is clamped to [-126, 127] (2^-126 flushes to about zero as ex2.approx.ftz would).
__device__ __forceinline__ float exp2_fma(float x) {
  x = fminf(fmaxf(x, -126.f), 127.f);
  const float t = x + 12582912.f;  // 1.5 * 2^23: round(x) lands in the low mantissa bits
  const float f = x - (t - 12582912.f);
  float q = fmaf(f, 1.3264698e-3f, 9.6715093e-3f);
  q = fmaf(q, f, 5.5507340e-2f);
  q = fmaf(q, f, 2.4022242e-1f);
  q = fmaf(q, f, 6.9314700e-1f);
  q = fmaf(q, f, 1.f);
  return __int_as_float(__float_as_int(q) + (__float_as_int(t) << 23));
}

// sigmoid(v) = (1 + tanh(v / 2)) / 2: one MUFU op (tanh.approx, ~5e-4 relative) instead of two.
__device__ __forceinline__ float sigmoid_tanh(float v) {
  float th;
  asm("tanh.approx.f32 %0, %1;" : "=f"(th) : "f"(0.5f * v));
  return fmaf(0.5f, th, 0.5f);
}

// Hand-off flags between the blocks of consecutive segments.
__device__ __forceinline__ int ld_acquire(const int* f) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(f) : "memory");
  return v;
}
__device__ __forceinline__ void st_release(int* f, int v) {
  asm volatile("st.release.gpu.global.s32 [%0], %1;" ::"l"(f), "r"(v) : "memory");
}

// Registers allow 4 resident blocks with 4 states per lane; 8 per lane (dstate > 128) needs more.
template <int K>
constexpr int fwd_min_blocks() { return K == 2 ? 8 : K == 4 ? 4 : 1; }

// The forward's layout: layout_for's, except (EXPERIMENT knob STATESPACE_SCAN_FWD_LANES=8) dstate
// 9-16 on 8 lanes of 2 states: twice the threads per row, half the registers per thread.
Layout fwd_layout_for(int64_t dstate) {
  Layout lo = layout_for(dstate);
  const char* e = std::getenv("STATESPACE_SCAN_FWD_LANES");
  if (lo.K == 4 && lo.G == 4 && e && std::atoi(e) == 8) lo = {8, 2, 16, kThreads / 8};
  return lo;
}

// kOpt (EXPERIMENT, K = 4 with G = 4 only): bit 0, silu's sigmoid from one tanh.approx (16-bit
// dtypes); bit 1, the exp of each lane's last state on the FMA pipe (exp2_fma) instead of MUFU.
template <typename T, int K, int kG, int kOpt = 0>
__global__ void __launch_bounds__(kThreads, fwd_min_blocks<K>())
    scan_fwd_kernel(SelectiveScanParams p, Layout lo, Tiling tl, int chunk, Segments sg) {
  extern __shared__ __align__(16) float smem[];
  const int TP = row_stride(chunk);
  float* s_dt = smem;
  float* s_u = s_dt + lo.dims * TP;
  float* s_zy = s_u + lo.dims * TP;  // silu(z) in, gated y out
  float* s_B = s_zy + lo.dims * TP;  // [chunk][npad]; 16-byte aligned (TP and npad are multiples of 4)
  float* s_C = s_B + chunk * lo.npad;
  int* s_rst = reinterpret_cast<int*>(s_C + chunk * lo.npad);
  // [2][kThreads][K]: each lane's time-invariant B and C (read like a tile row with step stride 0)
  float* s_ti = reinterpret_cast<float*>(s_rst + chunk);

  // The (tile, batch row, segment) this block serves. Time segments hand states on from block to
  // block (see below), so a block must never wait on one that has not started: blocks draw
  // tickets in the order they start, segment-major, and wait only on earlier tickets.
  // flags[tile * (n - 1) + j], tile = by * gridDim.x + bx: segment j's true end is out.
  int* const flags = sg.n > 1 ? reinterpret_cast<int*>(p.seg_scratch + p.batch * p.dim * (sg.n - 1) * p.dstate) : nullptr;
  __shared__ int s_ticket;
  if (threadIdx.x == 0) s_ticket = sg.n > 1 ? atomicAdd(flags + gridDim.x * gridDim.y * (sg.n - 1), 1) : 0;
  __syncthreads();
  // ticket -> (segment, tile); read again from shared memory where needed (registers are tight)
  const int per = gridDim.x * gridDim.y;
  const int seg = sg.n > 1 ? s_ticket / per : 0;
  const int tile = sg.n > 1 ? s_ticket % per : blockIdx.y * gridDim.x + blockIdx.x;
  const BlockRows br = block_rows(lo, tl, tile % gridDim.x, tile / gridDim.x);
  // kG > 0: the lanes per row are known at compile time (the reduction then has no branches)
  const int G = kG > 0 ? kG : lo.G, npad = G * K;
  const int tid = threadIdx.x, dl = tid / G, lane = tid % G;
  const bool active = dl < br.nd;
  const int64_t b = br.b, d = br.d0 + (active ? dl : 0), L = p.seqlen, N = p.dstate;
  const bool b_ti = p.b_form == ScanBCForm::TimeInvariant, c_ti = p.c_form == ScanBCForm::TimeInvariant;
  const T* u = static_cast<const T*>(p.u);
  const T* delta = static_cast<const T*>(p.delta);
  // Time segments (sg.n > 1): segment s covers steps [sg.start[s], sg.start[s + 1]). A block of
  // segment s >= 1 first runs segment s - 1 from a zero state (from the initial state when s = 1)
  // with no y, C or z work (the ends phase), folds in the true end of segment s - 2 that the block
  // before it published (x <- exp(A sum delta') x_prev + x; x alone after a seqIdx restart), publishes
  // that (segment s - 1's true end) for the block after it, and then runs its own segment from it.
  // Every segment runs at once; a block waits only for the ends phase of the block before it.
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
                                   reinterpret_cast<uintptr_t>(p.z) | reinterpret_cast<uintptr_t>(p.y) |
                                   reinterpret_cast<uintptr_t>(Bg) | reinterpret_cast<uintptr_t>(Cg)) & 15) == 0;

  // Per-lane constants; states past dstate (and rows past the block's) stay exactly zero.
  float A2[K], x[K];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t n = lane * K + k;
    const bool ok = active && n < N;
    A2[k] = ok ? A[d * N + n] * kLog2e : 0.f;
    // the first phase of this block starts at step 0 when seg <= 1, from zero otherwise
    x[k] = ok && p.initial_state && seg <= 1 ? static_cast<const float*>(p.initial_state)[(b * p.dim + d) * N + n] : 0.f;
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

  // One chunk's recurrence, four steps per iteration. kRestart: seqIdx present (a restart flag
  // zeroes the decay of that step); kY: y wanted (not for the checkpoint-only pass of the
  // backward, nor the ends phase). Steps past seqlen have delta' = 0: the state stays as is.
  auto run_steps = [&](auto restart_tag, auto y_tag, int ngroups) {
    constexpr bool kRestart = decltype(restart_tag)::value, kY = decltype(y_tag)::value;
#pragma unroll(kY ? 2 : 1)
    for (int gq = 0; gq < ngroups; ++gq) {
      const int t = gq * 4;
      const Steps4 st = load_steps4<kRestart>(rdt, ru, s_rst, t);
      float part[1][4];  // this lane's share of <C_t, x_t> for the four steps
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        const float dt = st.dt[s], du = dt * st.u[s];
        float bv[K], cv[K];
        load_k<K>(bv, b_src + (t + s) * b_step);
        if (kY) {
          load_k<K>(cv, c_src + (t + s) * c_step);
        } else {
#pragma unroll
          for (int k = 0; k < K; ++k) cv[k] = 0.f;
        }
        float acc = 0.f;
#pragma unroll
        for (int k = 0; k < K; ++k) {
          float a = (kOpt & 2) && k == K - 1 ? exp2_fma(dt * A2[k]) : exp2f(dt * A2[k]);
          if (kRestart && st.rst[s]) a = 0.f;
          x[k] = fmaf(a, x[k], du * bv[k]);
          if (kY) acc = fmaf(cv[k], x[k], acc);
        }
        part[0][s] = acc;
      }
      if (!kY) continue;
      // The owner of step t+s: y = <C, x> + D u, times silu(z) (staged as 1 without z); the
      // gate's slot takes y.
      reduce_steps4<1>(part, G, lane, [&](int s, const float(&v)[1]) {
        rzy[t + s] = fmaf(Dd, st.u_at(s), v[0]) * rzy[t + s];
      });
    }
  };

  // Blocks of one SM run the same code in near lockstep, so their staging loads would all wait at
  // once; odd blocks start with half a chunk (only without checkpoints, whose chunks are fixed)
  // so that their chunk boundaries fall between the even blocks'.
  const int first = !p.checkpoints && (tile & 1) ? chunk / 2 : chunk;
  // ends phase (kEnds): segment seg - 1, for its end state only
  __shared__ float s_sdt[kThreads];
  __shared__ int s_anyrst[kThreads];
  auto run_phase = [&](auto ends_tag) {
    constexpr bool ends = decltype(ends_tag)::value;
    const int s_run = ends ? seg - 1 : seg;
    int64_t t_begin = 0, t_end = L;
#pragma unroll
    for (int i = 0; i < kMaxSeg; ++i) {  // constant indices: sg stays in the parameter bank
      if (sg.n > 1 && i == s_run) t_begin = sg.start[i], t_end = sg.start[i + 1];
    }
    const bool want_y = p.y != nullptr && !ends;
    // the checkpoint-only pass of the backward and the ends phase need neither z nor a C tile
    const T* z = want_y ? static_cast<const T*>(p.z) : nullptr;
    const bool c_tile = !c_ti && want_y;
    // ends phase: this lane's share of the segment's sum of delta' (and whether a restart falls
    // in it), kept in shared memory across the chunk loop (registers are tight)
    if (ends) s_sdt[tid] = 0.f, s_anyrst[tid] = 0;
    int c = 0, span = first;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += span, span = chunk, ++c) {
      const int len = static_cast<int>(t_end - t0 < span ? t_end - t0 : span);
      // Stage the chunk (zeros past seqlen and past the block's rows): 16-byte loads along each
      // row for whole chunks of aligned rows, element by element otherwise.
      if (vec && len == chunk) {
        for (int i = tid; i < lo.dims * vpr; i += kThreads) {
          const int r = i >> lgv, t = (i & (vpr - 1)) * V;
          // raw 16-byte loads first (all in flight at once), then one row at a time converted
          // and stored, so that only one row's V floats are live
          uint4 rd = make_uint4(0, 0, 0, 0), ru = rd, rz = rd;
          float bb = 0.f;
          const bool in = r < br.nd;
          if (in) {
            const int64_t gi = base + r * L + t0 + t;
            rd = *reinterpret_cast<const uint4*>(delta + gi);
            ru = *reinterpret_cast<const uint4*>(u + gi);
            if (z) rz = *reinterpret_cast<const uint4*>(z + gi);
            if (bias) bb = bias[br.d0 + r];
          }
          float v[V];
          unpack_vec<T>(v, rd);
#pragma unroll
          for (int j = 0; j < V; ++j) v[j] = in ? (p.delta_softplus ? softplus(v[j] + bb) : v[j] + bb) : 0.f;
          store_k<V>(s_dt + r * TP + t, v);
          unpack_vec<T>(v, ru);
          store_k<V>(s_u + r * TP + t, v);
          if (want_y) {
            unpack_vec<T>(v, rz);
#pragma unroll
            for (int j = 0; j < V; ++j) v[j] = z ? v[j] * ((kOpt & 1) && sizeof(T) == 2 ? sigmoid_tanh(v[j]) : sigmoid(v[j])) : 1.f;
            store_k<V>(s_zy + r * TP + t, v);
          }
        }
      } else {
        for (int i = tid; i < lo.dims * chunk; i += kThreads) {
          const int r = i >> lg, t = i & (chunk - 1);
          float dtv = 0.f, uv = 0.f, zv = 1.f;
          if (r < br.nd && t < len) {
            const int64_t gi = base + r * L + t0 + t;
            const float pre = cuda::to_float(delta[gi]) + (bias ? bias[br.d0 + r] : 0.f);
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
      if (p.seq_idx) load_restarts(s_rst, p, b, chunk, t0, len);
      __syncthreads();
      if (t0 + span < t_end) {  // the next chunk's inputs into L2
        const int64_t tn = t0 + span;
        const int ln = static_cast<int>(t_end - tn < chunk ? t_end - tn : chunk);
        prefetch_rows(delta + base, L, br.nd, tn, ln);
        prefetch_rows(u + base, L, br.nd, tn, ln);
        if (z) prefetch_rows(z + base, L, br.nd, tn, ln);
        if (!b_ti) prefetch_rows(Bg, L, static_cast<int>(N), tn, ln);
        if (c_tile) prefetch_rows(Cg, L, static_cast<int>(N), tn, ln);
      }

      const int ngroups = (len + 3) >> 2;
      if (p.seq_idx) {
        if (want_y)
          run_steps(std::true_type{}, std::true_type{}, ngroups);
        else
          run_steps(std::true_type{}, std::false_type{}, ngroups);
      } else {
        if (want_y)
          run_steps(std::false_type{}, std::true_type{}, ngroups);
        else
          run_steps(std::false_type{}, std::false_type{}, ngroups);
      }

      if (ends) {
        float sdt = 0.f;
        int rst = 0;
        for (int t = lane; t < len; t += G) {
          sdt += rdt[t];
          rst |= p.seq_idx ? s_rst[t] : 0;
        }
        s_sdt[tid] += sdt, s_anyrst[tid] |= rst;
      }
      if (p.checkpoints && active) {
#pragma unroll
        for (int k = 0; k < K; ++k) {
          const int64_t n = lane * K + k;
          if (n < N) p.checkpoints[((b * p.dim + d) * p.n_chunks + c) * N + n] = x[k];
        }
      }
      if (want_y) {
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
    if (!ends) return;
    // x: segment seg - 1's end from its start state. Fold in the true end of segment seg - 2.
    const float sdt = row_sum(s_sdt[tid], G);  // every lane of the warp takes part, active or not
    const bool any_rst = row_sum(s_anyrst[tid] ? 1.f : 0.f, G) != 0.f;
    float* seg_x = p.seg_scratch + (b * p.dim + d) * (sg.n - 1) * N;  // [n - 1][N] true ends of this row
    int* seg_flag = flags + (s_ticket % per) * (sg.n - 1);
    if (seg >= 2) {
      if (tid == 0) {
        while (ld_acquire(seg_flag + seg - 2) == 0) __nanosleep(64);
      }
      __syncthreads();
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t n = lane * K + k;
        if (active && n < N) {
          const float decay = any_rst ? 0.f : exp2f(A2[k] * sdt);
          x[k] = fmaf(decay, __ldcg(seg_x + (seg - 2) * N + n), x[k]);
        }
      }
    }
    if (seg <= sg.n - 2) {  // a block of segment seg + 1 waits for it
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t n = lane * K + k;
        if (active && n < N) seg_x[(seg - 1) * N + n] = x[k];
      }
      __threadfence();
      __syncthreads();
      if (tid == 0) st_release(seg_flag + seg - 1, 1);
    }
  };
  if (seg > 0) run_phase(std::true_type{});
  run_phase(std::false_type{});
  if (p.last_state && active && (sg.n == 1 || s_ticket / per == sg.n - 1)) {  // the row's last segment
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

template <typename T, int K, int kG, int kOpt>
void launch_fwd(const SelectiveScanParams& p, const Layout& lo, const Tiling& tl, int chunk, const Segments& sg,
                cudaStream_t stream) {
  const size_t smem = fwd_smem_bytes(lo, chunk);
  auto kernel = scan_fwd_kernel<T, K, kG, kOpt>;
  if (smem > 48 * 1024)
    cuda::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
                "selectiveScan: shared memory");
  const unsigned blocks = static_cast<unsigned>(tl.blocks()), batch = static_cast<unsigned>(p.batch);
  if (sg.n > 1) {  // the hand-off flags and the ticket counter start at zero
    const int64_t flags = static_cast<int64_t>(blocks) * batch * (sg.n - 1) + 1;
    cuda::check(cudaMemsetAsync(p.seg_scratch + p.batch * p.dim * (sg.n - 1) * p.dstate, 0, flags * sizeof(int), stream),
                "selectiveScan: segment flags");
  }
  kernel<<<dim3(blocks, batch, static_cast<unsigned>(sg.n)), kThreads, smem, stream>>>(p, lo, tl, chunk, sg);
  cuda::check_launch("selectiveScan forward");
}

// Resident blocks of the forward on this device (cached per device): blocks per SM x SMs.
int64_t resident_fwd_blocks(int K) {
  return static_cast<int64_t>(K == 2 ? fwd_min_blocks<2>() : K == 4 ? fwd_min_blocks<4>() : fwd_min_blocks<8>()) * cuda::sm_count();
}

// The forward kernels, loaded when a device is first used (not on an op's first call).
template <typename T>
struct TouchFwd {
  static void run() {
    touch_kernels(scan_fwd_kernel<T, 4, 4>, scan_fwd_kernel<T, 4, 0>, scan_fwd_kernel<T, 8, 32>, scan_fwd_kernel<T, 2, 8>);
  }
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
// n segments (whole chunks each) multiply the blocks by n, in one launch; the price is each later
// segment's block running the segment before it once more for its end state (no y, no C, no z).
int64_t selective_scan_cuda_segments(const SelectiveScanParams& p, int64_t* scratch_floats) {
  using namespace scan_cuda;
  const Layout lo = fwd_layout_for(p.dstate);
  const Tiling tl = tiling_for(p, lo);
  const int64_t chunk = fwd_chunk(lo), blocks = tl.blocks() * p.batch;
  int64_t n = resident_fwd_blocks(lo.K) / std::max<int64_t>(blocks, 1);
  if (const char* e = std::getenv("STATESPACE_SCAN_SEGMENTS")) n = std::atoi(e);  // EXPERIMENT knob
  n = std::min<int64_t>({n, (p.seqlen + chunk - 1) / chunk, kMaxSeg});
  if (p.checkpoints || n < 2) {
    *scratch_floats = 0;
    return 1;
  }
  // per row the true ends of segments 0 .. n-2 (f32), then the hand-off flags and a ticket (int32)
  *scratch_floats = p.batch * p.dim * (n - 1) * p.dstate + blocks * (n - 1) + 1;
  return n;
}

void selective_scan_fwd_cuda(const SelectiveScanParams& p, void* stream) {
  using namespace scan_cuda;
  const Layout lo = fwd_layout_for(p.dstate);
  const Tiling tl = tiling_for(p, lo);
  check_grid(p, tl);
  if (p.n_seg > 1 && (p.checkpoints || !p.seg_scratch || p.n_seg > kMaxSeg))
    fail("ERR_INTERNAL", ErrorKind::Plain, "selectiveScan: time segments set up wrongly");
  // With checkpoints the chunk is the checkpoint interval the backward expects.
  const int chunk = p.checkpoints ? bwd_chunk(layout_for(p.dstate)) : fwd_chunk(lo);
  const Segments sg = segments_for(p.seqlen, static_cast<int>(p.n_seg), chunk);
  auto st = static_cast<cudaStream_t>(stream);
  const int opt = std::getenv("STATESPACE_SCAN_FWD_OPT") ? std::atoi(std::getenv("STATESPACE_SCAN_FWD_OPT")) : 0;  // EXPERIMENT knob
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    if (lo.K == 2) return launch_fwd<T, 2, 8, 0>(p, lo, tl, chunk, sg, st);
    SS_LAYOUT_SWITCH(lo, K, kG, [&] {
      if constexpr (K == 4 && kG == 4) {
        switch (opt & 3) {
          case 1: return launch_fwd<T, K, kG, 1>(p, lo, tl, chunk, sg, st);
          case 2: return launch_fwd<T, K, kG, 2>(p, lo, tl, chunk, sg, st);
          case 3: return launch_fwd<T, K, kG, 3>(p, lo, tl, chunk, sg, st);
          default: break;
        }
      }
      launch_fwd<T, K, kG, 0>(p, lo, tl, chunk, sg, st);
    });
  });
}

}  // namespace ss
