// CUDA decode step of the selective SSM (both forms; see ops/state_update.h).
//
// The step is bound by reading and writing the state once, so the kernel is laid out for the
// memory system: a row of dstate states is split across LPR lanes (LPR a power of two, each
// lane V contiguous states = 16-byte vector loads and stores), a warp covers 32/LPR rows, and
// each thread carries R rows at once so R independent loads are in flight before any math.
// Consecutive rows are consecutive in memory, so a warp's accesses for one r are one
// contiguous span. The per-row scalars (dt', exp(dt'·A) for the Mamba-2 form, x, D, z) are
// computed once per row; B and C come through L1 (shared by every row of a group).
// The partial sums Σ s·C are reduced across the LPR lanes of a row by shuffles.
#include <cstdint>
#include "cuda/check.cuh"
#include "cuda/load_any.cuh"
#include "cuda/runtime.h"
#include "ops/state_update.h"

namespace ss {
namespace {

using cuda::to_float;

template <typename T, int V> struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

struct Traits {
  static constexpr int kThreads = 256;
  static constexpr int kRows = 4;  // rows per thread in flight
};

template <typename S, typename I, int V, bool kAPerState>
__global__ void __launch_bounds__(Traits::kThreads) state_update_kernel(StateUpdateParams p, int lpr_log2) {
  constexpr int R = Traits::kRows;
  const int lpr = 1 << lpr_log2, rpw = 32 / lpr;
  const int lane = threadIdx.x & 31, sub = lane & (lpr - 1), slot = lane >> lpr_log2;
  const int64_t H = p.heads, P = p.headdim, N = p.dstate, G = p.groups;
  const int64_t rows = p.batch * H * P;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int64_t per_warp = static_cast<int64_t>(R) * rpw;
  S* state = static_cast<S*>(p.state);
  const I* Bg = static_cast<const I*>(p.B);
  const I* Cg = static_cast<const I*>(p.C);
  const float* A = static_cast<const float*>(p.A);

  for (int64_t base = (blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32) * per_warp; base < rows;
       base += warps * per_warp) {
    int64_t row[R], bc[R], h_of[R];
    float dt[R], dA[R], x[R], acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      row[r] = base + r * rpw + slot;
      const int64_t rr = row[r] < rows ? row[r] : rows - 1;  // clamp: loads stay in bounds
      const int64_t bh = rr / P, b = bh / H, h = bh % H;
      h_of[r] = h;
      bc[r] = (b * G + h / (H / G)) * N;
      float d = to_float(static_cast<const I*>(p.dt)[bh]);
      if (p.dt_bias) d += static_cast<const float*>(p.dt_bias)[h];
      if (p.dt_softplus) d = cuda::softplus_f(d);
      dt[r] = d;
      dA[r] = kAPerState ? 0.f : __expf(d * A[h]);
      x[r] = to_float(static_cast<const I*>(p.x)[rr]);
      acc[r] = 0.f;
    }
    for (int64_t n0 = static_cast<int64_t>(sub) * V; n0 < N; n0 += static_cast<int64_t>(lpr) * V) {
      Pack<S, V> s[R];
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (row[r] < rows) s[r] = *reinterpret_cast<const Pack<S, V>*>(state + row[r] * N + n0);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (row[r] >= rows) continue;
        const Pack<I, V> bv = *reinterpret_cast<const Pack<I, V>*>(Bg + bc[r] + n0);
        const Pack<I, V> cv = *reinterpret_cast<const Pack<I, V>*>(Cg + bc[r] + n0);
        Pack<float, V> av;
        if constexpr (kAPerState) av = *reinterpret_cast<const Pack<float, V>*>(A + h_of[r] * N + n0);
        const float dtx = dt[r] * x[r];
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float decay = kAPerState ? __expf(dt[r] * av.v[j]) : dA[r];
          const float v = to_float(s[r].v[j]) * decay + dtx * to_float(bv.v[j]);
          acc[r] += v * to_float(cv.v[j]);
          s[r].v[j] = cuda::from_float<S>(v);
        }
        *reinterpret_cast<Pack<S, V>*>(state + row[r] * N + n0) = s[r];
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      for (int o = lpr / 2; o > 0; o >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], o);
      if (sub == 0 && row[r] < rows) {
        float y = acc[r];
        if (p.D) {
          const float* D = static_cast<const float*>(p.D);
          y += (p.d_per_row ? D[h_of[r] * P + row[r] % P] : D[h_of[r]]) * x[r];
        }
        if (p.z) y *= cuda::silu_f(to_float(static_cast<const I*>(p.z)[row[r]]));
        static_cast<I*>(p.y)[row[r]] = cuda::from_float<I>(y);
      }
    }
  }
}

bool aligned(const void* ptr, size_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

template <typename S, typename I, int V, bool kAPerState> void launch(const StateUpdateParams& p, cudaStream_t st) {
  int64_t lanes = (p.dstate + V - 1) / V;
  int lg = 0;
  while ((1 << lg) < lanes && lg < 5) ++lg;
  const int64_t rows = p.batch * p.heads * p.headdim;
  const int64_t rows_per_block = static_cast<int64_t>(Traits::kThreads / 32) * (32 >> lg) * Traits::kRows;
  int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
  if (blocks > (1 << 20)) blocks = 1 << 20;
  state_update_kernel<S, I, V, kAPerState><<<static_cast<unsigned>(blocks), Traits::kThreads, 0, st>>>(p, lg);
}

template <typename S, typename I, bool kAPerState> void pick_width(const StateUpdateParams& p, cudaStream_t st) {
  constexpr int V = 16 / sizeof(S);
  bool vec = p.dstate % V == 0 && aligned(p.state, 16) && aligned(p.B, V * sizeof(I)) && aligned(p.C, V * sizeof(I)) &&
             (!kAPerState || aligned(p.A, V * sizeof(float)));
  if (vec)
    launch<S, I, V, kAPerState>(p, st);
  else
    launch<S, I, 1, kAPerState>(p, st);
}

}  // namespace

void state_update_cuda(const StateUpdateParams& p, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, I, [&] {
    auto by_state = [&](auto* tag) {
      using S = std::remove_pointer_t<decltype(tag)>;
      if (p.a_per_state)
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
