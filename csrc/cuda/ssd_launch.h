// Launchers of the SSD CUDA kernels, one instantiation per storage type (float, __half,
// __nv_bfloat16). ssd_cuda.cu fills the Dev parameters and picks the type.
#pragma once
#include <cuda_runtime.h>
#include "cuda/ssd_common.cuh"

namespace ss::cuda::ssd {

// The same problem seen by the chunk-parallel kernels: kChunkedQ-token chunks, headdim padded
// to their 64-wide tiles.
inline Dev chunked_view(Dev d) {
  d.Q = kChunkedQ;
  d.nc = (d.L + kChunkedQ - 1) / kChunkedQ;
  d.Lpad = d.nc * d.Q;
  d.PP = (d.P + 63) / 64 * 64;
  return d;
}

template <typename T> void launch_forward(const Dev& d, cudaStream_t stream);
// Chunk-parallel forward for __half / __nv_bfloat16 (d.Q == kChunkedQ, d.PP a multiple of 64,
// d.CB / d.St / d.dec set): see ssd_fwd_chunked.cu.
template <typename T> void launch_forward_chunked(const Dev& d, cudaStream_t stream);
// Chunk-parallel states for __half / __nv_bfloat16 on kChunkedQ-token chunks into d.St (d.dec
// the decays): forward, the state entering each chunk (from h0; finalStates when asked);
// reverse, dL/d(state) at each chunk's end (from dfinal; dInitialStates when asked).
template <typename T> void launch_chunk_states(const Dev& d, bool reverse, cudaStream_t stream);
// C·Bᵀ of every chunk and group into d.CB (the forward launches it itself when it writes y).
template <typename T> void launch_cb(const Dev& d, cudaStream_t stream);
// Backward: chunk states (forward kernel), reverse state pass, chunk gradients, reductions.
// 16-bit types with d.St set (sized for chunked_view(d)): the two sequential state kernels walk
// kChunkedQ-token runs in parallel, seeded by the chunk-parallel passes.
template <typename T> void launch_backward(const Dev& d, cudaStream_t stream);

}  // namespace ss::cuda::ssd
