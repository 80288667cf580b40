// Launchers of the SSD CUDA kernels, one instantiation per storage type (float, __half,
// __nv_bfloat16). ssd_cuda.cu fills the Dev parameters and picks the type.
#pragma once
#include <cuda_runtime.h>
#include "cuda/ssd_common.cuh"

namespace ss::cuda::ssd {

template <typename T> void launch_forward(const Dev& d, cudaStream_t stream);
// C·Bᵀ of every chunk and group into d.CB (the forward launches it itself when it writes y).
template <typename T> void launch_cb(const Dev& d, cudaStream_t stream);
// Backward: chunk states (forward kernel), reverse state pass, chunk gradients, reductions.
template <typename T> void launch_backward(const Dev& d, cudaStream_t stream);

}  // namespace ss::cuda::ssd
