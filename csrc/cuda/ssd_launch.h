// Launchers of the SSD CUDA kernels, one instantiation per storage type (float, __half,
// __nv_bfloat16). ssd_cuda.cu fills the Dev parameters and picks the type.
#pragma once
#include <cuda_runtime.h>
#include <atomic>
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/smem_optin.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_stages.h"
#include "cuda/tensor_map.h"

namespace ss::cuda::ssd {

constexpr size_t kMaxSmem = 227 * 1024;  // opt-in shared memory per block (sm_90)

// The SSD kernels' shared-memory opt-in (cuda/smem_optin.h), named for the op.
template <auto* KERNEL> void set_smem_once(size_t bytes) { cuda::set_smem_once<KERNEL>(bytes, "ssdChunkScan: shared memory"); }

// Kernel preload (cuda::register_kernel_preload: run when a device is first used): loads the
// kernels' module (CUDA loads lazily, ~1 ms on a kernel's first launch) and gives each the
// device's whole opt-in shared memory and the largest carveout, so that an op's first call
// neither loads code nor sets attributes. The size is a cap, not a reservation: a launch is
// placed by the shared memory it asks for. Errors are left for the runtime to clear (a kernel
// the device can't run fails at its launch, with its name).
template <auto*... KERNELS>
void preload_kernels() {
  int dev = 0, optin = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev >= 64) return;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) return;
  auto one = [&](auto* kernel, std::atomic<size_t>& done) {
    cudaFuncAttributes a;
    if (cudaFuncGetAttributes(&a, kernel) != cudaSuccess) return;
    const int dyn = optin - int(a.sharedSizeBytes);
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dyn) == cudaSuccess &&
        cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                             int(cudaSharedmemCarveoutMaxShared)) == cudaSuccess)
      done.store(size_t(dyn), std::memory_order_release);
  };
  (one(KERNELS, smem_set_for<KERNELS>(dev)), ...);
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
// per-token (cumsum, dt'); segs: the same shape, only with seqIdx, else null; ready: (batch, H,
// nc) counters): see ssd_fwd_mma.cu.
template <typename T>
void launch_forward_mma(const Dev& d, void* cb, float2* scal, int* segs, unsigned* ready, cudaStream_t stream);
int64_t forward_mma_cb_bytes(const Dev& d);
// Whether this build carries sm_90a code and the current device runs it (compute capability 9.0):
// the warpgroup-product (wgmma) kernels below.
bool wgmma_available();
// The 16-bit forward's tile maps (64 x 64 boxes, through the per-thread cache): x and z as (P, H,
// L, batch), B and C as (N, G, L, batch) — with the inputs' own token and batch strides (d.x_str
// ..., views read in place) —, the chunk states St as (NP, batch·H·nc·PP). A null map pointer (or
// a null d.z) skips that map. False where one doesn't encode (an address or a stride not a
// multiple of 16 bytes: rows of P or N not multiples of 8, ...).
bool encode_forward_maps(const Dev& d, bool bf16, CUtensorMap* x, CUtensorMap* z, CUtensorMap* B, CUtensorMap* C,
                         CUtensorMap* St);
// A wgmma file's kernel preload (preload_kernels for each 16-bit type), registered where the
// wgmma kernels run: `const bool g_preload = register_wgmma_preload<f<__half>, f<__nv_bfloat16>>();`.
template <void (*HALF)(), void (*BF16)()>
bool register_wgmma_preload() {
  cuda::register_kernel_preload([] {
    if (!wgmma_available()) return;
    HALF();
    BF16();
  });
  return true;
}
// The forward's state stage on warpgroup products (ssd_fwd_state_wg.cu) where wgmma_available;
// false (nothing launched) otherwise.
// ready: null, or the per-chunk readiness counters ((batch, H, nc), zeroed) it increments (see
// signal_ready in ssd_fwd_tiles.cuh).
template <typename T>
bool launch_state_wgmma(const Dev& d, float2* scal, int* segs, unsigned* ready, cudaStream_t stream);
// Its output stage on warpgroup products (ssd_fwd_out_wg.cu) where the device runs this build's
// sm_90a code and the tiles fit; false (nothing launched) otherwise.
template <typename T>
bool launch_out_wgmma(const Dev& d, const void* cb, const float2* scal, const int* segs, cudaStream_t stream);
// Whether the output stage runs as a 64-token state walk inside each chunk (ssd_fwd_fold_wg.cu: no
// C·Bᵀ kernel): the device runs this build's sm_90a code, dstate ≤ 128 and the tensor maps encode
// (P, N multiples of 8).
template <typename T> bool fold_wgmma_fits(const Dev& d);
// ... and launches it (where fold_wgmma_fits), as a programmatic dependent of the state kernel;
// ready: the counters the state kernel increments (its blocks then wait per chunk), or null (they
// wait for the whole state kernel).
template <typename T>
void launch_fold_wgmma(const Dev& d, const float2* scal, const int* segs, const unsigned* ready, cudaStream_t stream);
// C·Bᵀ of every chunk and group into d.CB (the float32 forward launches it itself when it writes
// y; the backward before its general chunk-gradient kernel).
template <typename T> void launch_cb(const Dev& d, cudaStream_t stream);
// Backward of __half / __nv_bfloat16 (ssd_bwd_states.cu): S0 (state entering every chunk of d),
// S1 (dL/dstate at every chunk's end) and dInitialStates; d.dec gets the chunks' decays.
// weights: scratch of 2·batch·H·Lpad floats (the chunk products' token weights).
template <typename T>
void launch_backward_states_seq(const Dev& d, float* weights, cudaStream_t stream, StageTimer& timer);
// Whether the backward chunk gradients run on tensor cores (ssd_bwd_chunk.cu): 16-bit types,
// headdim ≤ 64, dstate ≤ 128, 64-token chunks.
inline bool chunk_gradients_mma_fits(const Dev& d, bool f32) { return !f32 && d.PC <= 64 && d.NP <= 128 && d.Q == 64; }
// Heads per block of the backward chunk gradients (d.HB: a run of heads of one group shares B, C
// and C·Bᵀ and sums dB / dC over its heads, in order). The tensor-core kernel takes a whole group
// per block once the (chunk, batch, group) grid alone gives two blocks per SM of an H100-class
// GPU (256): the makespan is the same as with runs of 8 heads (≈ 155 head-steps per SM at 4 × 4096
// × 80 heads either way), the per-block prologue is paid 10× less often, and dB / dC are written
// once, without partial slots or their reduction. Depends on the shape only (the scratch size
// follows from it).
inline int chunk_gradient_heads(const Dev& d, bool f32) {
  const int run = d.hpg < 8 ? d.hpg : 8;
  if (!chunk_gradients_mma_fits(d, f32)) return run;
  return int64_t(d.nc) * d.batch * d.G >= 256 ? d.hpg : run;
}
// Whether the tensor-core chunk-gradient kernel writes dB / dC itself (a run is the whole group;
// float2 rows) instead of per-run partials that ssd_bwd_reduce_kernel sums.
__host__ __device__ inline bool chunk_gradients_direct(const Dev& d) { return d.nhb == 1 && d.N % 2 == 0; }
// Backward chunk gradients on tensor cores (ssd_bwd_chunk.cu) where chunk_gradients_mma_fits:
// false (nothing launched) for other sizes.
template <typename T> bool launch_chunk_gradients_mma(const Dev& d, cudaStream_t stream);
// Backward: chunk states (float32: forward kernel, reverse state pass; 16-bit:
// launch_backward_states_seq), chunk gradients, reductions.
// weights: 16-bit types, scratch for launch_backward_states_seq (float32: unused).
template <typename T> void launch_backward(const Dev& d, float* weights, cudaStream_t stream);

}  // namespace ss::cuda::ssd
