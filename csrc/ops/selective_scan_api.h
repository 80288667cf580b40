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
};

struct SelectiveScanGrads {
  Tensor du, ddelta, dA, dB, dC, dD, dz, d_delta_bias, d_initial_state;  // undefined where no input
};

SelectiveScanOutputs selective_scan(const SelectiveScanInputs& in, bool return_last_state);
SelectiveScanGrads selective_scan_backward(const SelectiveScanInputs& in, const Tensor& dy, const Tensor& d_last_state);

}  // namespace ss
