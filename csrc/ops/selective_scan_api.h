// Tensor-level entry points of the selective scan (validation, allocation, dispatch).
#pragma once
#include "core/tensor.h"

namespace ss {

struct SelectiveScanInputs {
  Tensor u, delta, A, B, C;                      // required
  Tensor D, z, delta_bias, initial_state, seq_idx;  // optional (undefined when absent)
  bool delta_softplus = false;
};

struct SelectiveScanOutputs {
  Tensor y, last_state;  // last_state only when asked for
  Tensor checkpoints;    // CUDA, when asked for: the states the backward would recompute first
};

struct SelectiveScanGrads {
  Tensor du, ddelta, dA, dB, dC, dD, dz, d_delta_bias, d_initial_state;  // undefined where no input
};

// last_state_out: optional (batch, dim, dstate) contiguous float32 (float64 on the f64 path) that
// receives the last state (then returned as last_state): a slot of a decode state cache.
SelectiveScanOutputs selective_scan(const SelectiveScanInputs& in, bool return_last_state, bool return_checkpoints = false,
                                    const Tensor& last_state_out = Tensor());
// checkpoints: optional, from selective_scan(..., return_checkpoints) on the same inputs (CUDA; the
// CPU backward needs none and ignores them).
SelectiveScanGrads selective_scan_backward(const SelectiveScanInputs& in, const Tensor& dy, const Tensor& d_last_state,
                                           const Tensor& checkpoints = Tensor());

}  // namespace ss
