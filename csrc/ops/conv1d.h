// Depthwise causal 1-D convolution (Mamba's short convolution): forward, backward and the
// one-step decode update. All tensors are contiguous; x/y/states (batch, dim, seqlen|width-1),
// except in the CUDA forward with channels_last: x is then read with channel stride 1 and the
// given batch/time strides (a slice of a (batch, seqlen, channels) projection, in place), and y
// is written channels-last, (batch, seqlen, dim) in memory.
//
// y[b,d,t] = act(bias[d] + sum_k weight[d,k] * xp[b,d,t+k]), k in [0, width), where
// xp = concat(initialStates or zeros, x) along time (xp[t + width-1] = x[t]).
// With seqIdx, a tap reaches only inputs of the same sequence; the initial-state positions
// belong to the sequence of seqIdx[b,0]. finalStates = the last width-1 entries of xp, with
// entries from another sequence than seqIdx[b,seqlen-1] zeroed.
#pragma once
#include <cstdint>
#include "core/tensor.h"

namespace ss {

struct CausalConv1dParams {
  int64_t batch = 0, dim = 0, seqlen = 0, width = 0;
  DType dtype = DType::Float32;  // x, y, states, dy, dx, dInitialStates
  DType weight_dtype = DType::Float32, bias_dtype = DType::Float32;  // dweight/dbias use these too
  bool silu = false;
  bool channels_last = false;            // CUDA forward only (see above)
  int64_t x_stride_b = 0, x_stride_t = 0;  // with channels_last
  const void* x = nullptr;
  const void* weight = nullptr;          // (dim, width)
  const void* bias = nullptr;            // (dim) or null
  const void* initial_states = nullptr;  // (batch, dim, width-1) or null
  const int32_t* seq_idx = nullptr;      // (batch, seqlen) or null
  void* y = nullptr;
  void* final_states = nullptr;          // or null
  // backward
  const void* dy = nullptr;
  const void* dfinal_states = nullptr;   // or null
  void* dx = nullptr;
  void* dweight = nullptr;
  void* dbias = nullptr;                 // or null when there is no bias
  void* dinitial_states = nullptr;       // or null when there are no initial states
  float* scratch = nullptr;              // CUDA backward: causal_conv1d_bwd_scratch_floats(p) f32
};

// One decode step: x (batch, dim), state (batch, dim, width-1) updated in place, y (batch, dim).
// With state_idx, row b uses state slot state_idx[b] of a (slots, dim, width-1) state; a slot < 0
// is padding (skipped, y = 0).
struct CausalConv1dUpdateParams {
  int64_t batch = 0, dim = 0, width = 0;
  DType dtype = DType::Float32, state_dtype = DType::Float32;
  DType weight_dtype = DType::Float32, bias_dtype = DType::Float32;
  bool silu = false;
  const void* x = nullptr;
  int64_t x_stride = 0;  // elements between rows of x (a view of a wider projection in decode)
  void* state = nullptr;
  const int32_t* state_idx = nullptr;
  int64_t slots = 0;
  const void* weight = nullptr;
  const void* bias = nullptr;
  void* y = nullptr;
  int64_t y_stride = 0;  // elements between rows of y (y may be x itself: each element is read before it is written)
};

void causal_conv1d_fwd_cpu(const CausalConv1dParams& p);
void causal_conv1d_bwd_cpu(const CausalConv1dParams& p);
void causal_conv1d_update_cpu(const CausalConv1dUpdateParams& p);
void causal_conv1d_fwd_cuda(const CausalConv1dParams& p, void* stream);
void causal_conv1d_bwd_cuda(const CausalConv1dParams& p, void* stream);
int64_t causal_conv1d_bwd_scratch_floats(const CausalConv1dParams& p);
void causal_conv1d_update_cuda(const CausalConv1dUpdateParams& p, void* stream);

struct Conv1dArgs {
  Tensor x, weight, bias, initial_states, seq_idx;
  bool silu = false;
  bool return_final_states = false;
  Tensor final_states_out;   // forward, optional: receives the final states (then returned as final_states)
  Tensor dy, dfinal_states;  // backward only
};
struct Conv1dResult {
  Tensor y, final_states;
};
struct Conv1dGrads {
  Tensor dx, dweight, dbias, dinitial_states;
};

Conv1dResult causal_conv1d(const Conv1dArgs& a);
Conv1dGrads causal_conv1d_backward(const Conv1dArgs& a);
// Returns y; conv_state is updated in place.
Tensor causal_conv1d_update(const Tensor& x, const Tensor& conv_state, const Tensor& weight, const Tensor& bias, bool silu,
                            const Tensor& state_indices);

}  // namespace ss
