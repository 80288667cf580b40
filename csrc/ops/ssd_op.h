// SSD chunked scan as an op on Tensors (validation, staging, dispatch); see ops/ssd.h for the
// semantics and the backend parameter struct.
#pragma once
#include <cstddef>
#include <limits>
#include "core/tensor.h"
#include "ops/ssd.h"

namespace ss {

// Sizes the CUDA kernels take (larger ones are refused with ERR_SHAPE, never run wrong).
constexpr int64_t kSsdCudaMaxHeaddim = 128;
constexpr int64_t kSsdCudaMaxDstate = 256;

struct SsdInputs {
  Tensor x, dt, A, B, C;
  Tensor D, z, dt_bias, initial_states, seq_idx;  // optional
  double chunk_size = 256;
  bool dt_softplus = false;
  double dt_min = 0.0, dt_max = std::numeric_limits<double>::infinity();
  bool return_final_states = false;
};

struct SsdForwardResult {
  Tensor y, final_states;
  size_t workspace_bytes = 0;  // extra device memory the CUDA kernels used
  size_t staged_input_bytes = 0;  // copies made of x, z, B, C, dt before the kernels (0: all read in place)
};

struct SsdBackwardResult {
  Tensor dx, ddt, dA, dB, dC, dD, dz, ddt_bias, dinitial_states;
  size_t workspace_bytes = 0;
};

SsdForwardResult ssd_forward(const SsdInputs& in);
// dout: gradient of the output y; dfinal: of finalStates (optional).
SsdBackwardResult ssd_backward(const SsdInputs& in, const Tensor& dout, const Tensor& dfinal);

}  // namespace ss
