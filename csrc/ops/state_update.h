// One decode step of the selective SSM, state updated in place. Both forms share one view:
// rows (batch, heads, headdim) of dstate states each. Mamba-1 (state (batch, dim, dstate)) is
// heads = dim, headdim = 1 with A per state (dim, dstate); Mamba-2 (state (batch, heads,
// headdim, dstate)) has A per head.
//
// dt' = dt[b,h] + dtBias[h], softplus'd when asked; for each state n of row (b,h,p):
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
  DType state_dtype = DType::Float32;
  DType dtype = DType::Float32;  // x, dt, B, C, z, y
  DType param_dtype = DType::Float32;  // A, D, dtBias
  void* state = nullptr;       // contiguous (batch, heads, headdim, dstate)
  const void* x = nullptr;     // (batch, heads, headdim)
  const void* dt = nullptr;    // (batch, heads)
  const void* A = nullptr;
  const void* B = nullptr;     // (batch, groups, dstate)
  const void* C = nullptr;
  const void* D = nullptr;     // or null
  const void* z = nullptr;     // (batch, heads, headdim) or null
  const void* dt_bias = nullptr;  // (heads) or null
  void* y = nullptr;           // (batch, heads, headdim)
};

void state_update_cpu(const StateUpdateParams& p);
void state_update_cuda(const StateUpdateParams& p, void* stream);

struct StateUpdateArgs {
  Tensor state, x, dt, A, B, C, D, z, dt_bias;
  bool dt_softplus = false;
};

// Returns y (shaped like x); args.state is updated in place.
Tensor selective_state_update(const StateUpdateArgs& a);

}  // namespace ss
