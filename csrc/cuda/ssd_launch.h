// Launchers of the SSD CUDA kernels, one instantiation per storage type (float, __half,
// __nv_bfloat16). ssd_cuda.cu fills the Dev parameters and picks the type.
#pragma once
#include <cuda_runtime.h>
#include "cuda/check.cuh"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_stages.h"

namespace ss::cuda::ssd {

// A kernel's dynamic shared memory, and the largest shared-memory carveout: left to the driver,
// the L1 share may stay large and fewer blocks fit on an SM than the shared memory allows.
template <typename K> void set_smem(K* kernel, size_t bytes, const char* what) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), what);
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, int(cudaSharedmemCarveoutMaxShared)),
        what);
}

// The same problem seen by the 16-bit forward: kChunkedQ-token chunks, headdim padded to its
// 64-wide tiles.
inline Dev chunked_view(Dev d) {
  d.Q = kChunkedQ;
  d.nc = (d.L + kChunkedQ - 1) / kChunkedQ;
  d.Lpad = d.nc * d.Q;
  d.PP = (d.P + 63) / 64 * 64;
  return d;
}

// float32 only (16-bit types run launch_forward_mma). Without d.y: only the state entering
// every chunk into d.S0 (the backward's first stage).
template <typename T> void launch_forward(const Dev& d, cudaStream_t stream);
// Chunk-parallel forward for __half / __nv_bfloat16 on tensor cores (d.Q == kChunkedQ, d.PP a
// multiple of 64, d.St set; cb: forward_mma_cb_bytes(d) bytes; scal: (batch, H, Lpad)
// per-token (cumsum, dt'); segs: the same shape, only with seqIdx, else null): see ssd_fwd_mma.cu.
template <typename T> void launch_forward_mma(const Dev& d, void* cb, float2* scal, int* segs, cudaStream_t stream);
int64_t forward_mma_cb_bytes(const Dev& d);
// C·Bᵀ of every chunk and group into d.CB (the float32 forward launches it itself when it writes
// y; the backward before its general chunk-gradient kernel).
template <typename T> void launch_cb(const Dev& d, cudaStream_t stream);
// Backward of __half / __nv_bfloat16 (ssd_bwd_states.cu): S0 (state entering every chunk of d),
// S1 (dL/dstate at every chunk's end) and dInitialStates; d.dec gets the chunks' decays.
// weights: scratch of 2·batch·H·Lpad floats (the chunk products' token weights).
template <typename T>
void launch_backward_states_seq(const Dev& d, float* weights, cudaStream_t stream, StageTimer& timer);
// Backward chunk gradients on tensor cores (ssd_bwd_chunk.cu) for 16-bit types, headdim ≤ 64,
// dstate ≤ 128: false (nothing launched) for other sizes.
template <typename T> bool launch_chunk_gradients_mma(const Dev& d, cudaStream_t stream);
// Backward: chunk states (float32: forward kernel, reverse state pass; 16-bit:
// launch_backward_states_seq), chunk gradients, reductions.
// weights: 16-bit types, scratch for launch_backward_states_seq (float32: unused).
template <typename T> void launch_backward(const Dev& d, float* weights, cudaStream_t stream);

}  // namespace ss::cuda::ssd
