// Mamba-2 SSD (state space duality) chunked scan: parameters and backend entry points.
//
// Per head h and step t (dt' = clamp(softplus?(dt + dtBias), dtMin, dtMax)):
//   H_t = exp(dt'_t A_h) H_{t-1} + dt'_t x_t B_tᵀ        state (headdim, dstate)
//   y_t = H_t C_t + D x_t,  out_t = y_t silu(z_t)
// The state restarts (from zero) where seqIdx changes; initialStates seed the row's start.
//
// x, z, y, dx, dz: (batch, seqlen, heads, headdim); B, C, dB, dC: (batch, seqlen, groups, dstate);
// dt, ddt: (batch, seqlen, heads); A, dtBias: (heads); D: (heads) or (heads, headdim);
// states: (batch, heads, headdim, dstate); seqIdx (batch, seqlen).
// Every tensor handed to a backend is contiguous, except the inputs x, z, B, C, dt of the CUDA
// forward: those are "row-strided", their inner dims ((heads, headdim), (groups, dstate), heads)
// contiguous and their batch / token strides given by x_str .. dt_str (the strides of a
// contiguous tensor everywhere else: the CPU backends and the backward ignore them).
//
// CPU: every floating array is in the compute type (float32, or float64 when `dtype` is float64).
// CUDA: x, z, B, C, y, dout, dx, dz in `dtype`; dt float32 (forward: `dt_dtype`, any of float32,
//       float16, bfloat16); all per-head/state arrays float32; dB, dC are float32 (converted to
//       `dtype` by the ops layer).
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "core/hd.h"

namespace ss {

// Element strides between the batch entries and between the tokens of a (batch, seqlen, ...)
// operand whose inner dims are contiguous: row (b, t) starts at at(b, t).
struct SsdTokenStrides {
  int64_t batch = 0, token = 0;
  SS_HD int64_t at(int64_t b, int64_t t) const { return b * batch + t * token; }
};

struct SsdParams {
  int64_t batch = 0, seqlen = 0, heads = 0, headdim = 0, dstate = 0, groups = 0;
  int64_t chunk = 256;
  DType dtype = DType::Float32;  // storage type of x, z, B, C, y

  const void *x = nullptr, *z = nullptr, *B = nullptr, *C = nullptr, *dt = nullptr;
  const void *A = nullptr, *D = nullptr, *dt_bias = nullptr, *initial_states = nullptr;
  const int32_t* seq_idx = nullptr;
  SsdTokenStrides x_str, z_str, B_str, C_str, dt_str;  // see above
  DType dt_dtype = DType::Float32;                     // storage type of dt
  bool d_per_channel = false;  // D is (heads, headdim)
  bool dt_softplus = false;
  double dt_min = 0.0, dt_max = 0.0;  // clamp; applied only when clamp_dt
  bool clamp_dt = false;

  // forward outputs
  void* y = nullptr;
  void* final_states = nullptr;

  // backward: inputs dout (like y) and dFinalStates; outputs every gradient
  const void *dout = nullptr, *dfinal_states = nullptr;
  void *dx = nullptr, *dz = nullptr, *dB = nullptr, *dC = nullptr, *ddt = nullptr;
  void *dA = nullptr, *dD = nullptr, *ddt_bias = nullptr, *dinitial_states = nullptr;

  int64_t heads_per_group() const { return heads / groups; }
  int64_t nchunks(int64_t q) const { return (seqlen + q - 1) / q; }
};

void ssd_forward_cpu(const SsdParams& p);
void ssd_backward_cpu(const SsdParams& p);

// Scratch device memory the CUDA backends need (bytes), so the ops layer allocates it from the
// stream-ordered pool and reports it; `scratch` points at that many bytes.
size_t ssd_forward_cuda_scratch(const SsdParams& p);
size_t ssd_backward_cuda_scratch(const SsdParams& p);
void ssd_forward_cuda(const SsdParams& p, void* scratch, void* stream);
void ssd_backward_cuda(const SsdParams& p, void* scratch, void* stream);

}  // namespace ss
