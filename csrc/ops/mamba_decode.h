// The whole Mamba-1 layer stack of a batch-1 decode step in one persistent CUDA kernel (the
// "megakernel", mamba_decode_cuda.cu): for each layer the folded pre-norm block
//   x = rmsnorm(h) · norm_w;  [xc, z] = in_proj · x;  u = silu(conv step of xc);
//   [dt_low, B, C] = x_proj · u;  dt = softplus(dt_proj · dt_low + dt_bias);
//   state = exp(dt·A)·state + dt·u·B;  y = (C·state + D·u) · silu(z);  h += out_proj · y
// with the same rounding points as the unfused folded step (lib/models/lm.ts decodeOps): the
// products and the conv output rounded to the weight dtype, the residual stream h in float32.
// CUDA only (sm_90: bulk copies), internal: lib/models/mamba.ts calls it for one sequence and
// runs the separate kernels where mamba_decode_stack declines.
#pragma once
#include <cstdint>
#include <vector>
#include "core/tensor.h"

namespace ss {

// One layer's parameters and state slot (batch 1). T: the weight dtype (bf16/f16).
struct MambaDecodeLayer {
  const void* norm_w = nullptr;    // (H) T: the block's RMSNorm weight
  const void* in_proj = nullptr;   // (2I, H) T
  const void* conv_w = nullptr;    // (I, W) T
  const void* conv_b = nullptr;    // (I) T or null
  void* conv_state = nullptr;      // (I, W-1) in conv_dtype, updated in place
  const void* x_proj = nullptr;    // (R + 2N, I) T
  const void* dt_proj = nullptr;   // (I, R) T
  const float* dt_bias = nullptr;  // (I)
  const float* A = nullptr;        // (I, N)
  const float* D = nullptr;        // (I) or null
  void* ssm_state = nullptr;       // (I, N) float32 or bfloat16, updated in place
  const void* out_proj = nullptr;  // (H, I) T
};

// Layers per launch: the layer table travels as a kernel argument (CUDA 12.1+: up to 32 KB), so
// a captured graph holds it and no device table has to be built, cached and freed; deeper stacks
// take several launches.
constexpr int kMambaDecodeMaxLayers = 64;

struct MambaDecodeParams {
  int64_t H = 0, I = 0, N = 0, R = 0, W = 0;  // hidden, intermediate, dstate, dt rank, conv width
  int layers = 0;
  float eps = 1e-5f;
  DType dtype = DType::BFloat16;        // every weight
  DType conv_dtype = DType::BFloat16;   // conv states
  DType state_dtype = DType::Float32;   // SSM states
  float* h = nullptr;                   // (H) float32 residual stream, updated in place
  const MambaDecodeLayer* layer = nullptr;  // [layers]
  // Device scratch of mamba_decode_scratch_bytes(p): u, z, y, x_proj partial sums, barrier words.
  void* scratch = nullptr;
};

// Whether the megakernel takes p on the current device (sizes, dtypes, sm_90, shared memory,
// STATESPACE_DECODE_MEGAKERNEL != 0); scratch bytes it needs.
bool mamba_decode_cuda_fits(const MambaDecodeParams& p);
size_t mamba_decode_scratch_bytes(const MambaDecodeParams& p);
void mamba_decode_cuda(const MambaDecodeParams& p, void* stream);

// Tensor-level entry (validation + dispatch). Every vector holds one tensor per layer; conv_b
// and D may be empty (no conv bias / no D). h: (1, H) float32, updated in place. Returns false
// (nothing done) when the megakernel does not take these inputs: the caller runs the layers
// op by op.
struct MambaDecodeArgs {
  Tensor h;
  std::vector<Tensor> norm_w, in_proj, conv_w, conv_b, conv_state, x_proj, dt_proj, dt_bias, A, D, ssm_state, out_proj;
  double eps = 1e-5;
};
bool mamba_decode_stack(const MambaDecodeArgs& a);

}  // namespace ss
