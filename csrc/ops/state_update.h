// One decode step of the selective SSM, state updated in place. Both forms share one view:
// rows (batch, heads, headdim) of dstate states each. Mamba-1 (state (batch, dim, dstate)) is
// heads = dim, headdim = 1 with A per state (dim, dstate); Mamba-2 (state (batch, heads,
// headdim, dstate)) has A per head.
//
// dt' = dt[b,h] + dtBias[h], softplus'd when asked, clamped to [dtMin, dtMax] (transformers'
// time_step_limit); for each state n of row (b,h,p):
//   s = exp(dt'·A[h(,n)])·s + dt'·B[b,g(h),n]·x[b,h,p];  y = Σ_n s·C[b,g(h),n] + D·x;  y *= silu(z).
#pragma once
#include <cstdint>
#include "core/tensor.h"

namespace ss {

struct StateUpdateParams {
  int64_t batch = 0, heads = 0, headdim = 0, dstate = 0, groups = 1;
  bool a_per_state = false;  // Mamba-1: A (heads, dstate); Mamba-2: A (heads)
  bool d_per_row = false;    // D (heads, headdim) rather than (heads)
  bool dt_softplus = false;
  float dt_min = 0.f, dt_max = 0.f;  // clamp of dt' when has_dt_limit
  bool has_dt_limit = false;
  DType state_dtype = DType::Float32;
  DType dtype = DType::Float32;  // x, dt, B, C, z, y; A, D and dtBias in its compute type
  void* state = nullptr;       // contiguous (slots, heads, headdim, dstate); slots = batch without indices
  const int32_t* state_idx = nullptr;  // (batch): the state slot of each row; < 0 skips the row (y = 0), >= slots too (y = NaN)
  int64_t slots = 0;
  const void* x = nullptr;     // (batch, heads, headdim)
  const void* dt = nullptr;    // (batch, heads)
  const void* A = nullptr;
  const void* B = nullptr;     // (batch, groups, dstate)
  const void* C = nullptr;
  const void* D = nullptr;     // or null
  const void* z = nullptr;     // (batch, heads, headdim) or null
  const void* dt_bias = nullptr;  // (heads) or null
  void* y = nullptr;           // (batch, heads, headdim), contiguous
  // Elements between consecutive batch entries of x, z, dt and of B and C (each entry itself
  // contiguous): the decode step passes views of wider projections without copying them.
  int64_t x_stride = 0, z_stride = 0, dt_stride = 0, bc_stride = 0;
  // Mamba-1 on CUDA (the one-row-per-thread kernel): dt is (batch, dt_rank) and dt[b, h] =
  // round_to_x_dtype(Σ_r dt_proj[h, r]·dt[b, r]), before dt_bias and the softplus.
  const void* dt_proj = nullptr;
  int64_t dt_rank = 0;
  // The caller's promise that the kernels still running when this one starts do not write the
  // state or state_idx (StateUpdateArgs::read_state_early): the batched Mamba-1 kernel then
  // requests them before its programmatic-launch wait. (A, D, dt_bias and dt_proj are parameters:
  // the kernels read them before that wait in any case.)
  bool state_early = false;
};
// Whether state_update_cuda computes the dt projection itself for these parameters.
bool state_update_cuda_fuses_dt_proj(const StateUpdateParams& p);

void state_update_cpu(const StateUpdateParams& p);
void state_update_cuda(const StateUpdateParams& p, void* stream);

struct StateUpdateArgs {
  Tensor state, x, dt, A, B, C, D, z, dt_bias, state_indices;
  Tensor dt_proj;  // Mamba-1: (dim, rank); dt is then (batch, rank) and dt' = dt_proj · dt
  bool dt_softplus = false;
  bool has_dt_limit = false;
  double dt_min = 0, dt_max = 0;
  // The ops just before this one on the device's stream do not write `state` or `state_indices`
  // (a decode step: the update follows linear_conv_update_proj, whose kernels touch neither).
  bool read_state_early = false;
};

// Returns y (shaped like x); args.state is updated in place. With state_indices, row b of the
// batch uses state slot state_indices[b] (a slot < 0 is padding: skipped, y = 0).
Tensor selective_state_update(const StateUpdateArgs& a);

}  // namespace ss
