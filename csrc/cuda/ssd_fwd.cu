// SSD forward on CUDA. ssd_cb_kernel computes C·Bᵀ once per (batch, chunk, group) (the heads
// of a group share it); then one fused kernel: a block owns (batch, head, headdim tile) and walks
// the chunks in order with the state in shared memory, so chunk states, state passing and the
// chunk output never leave the chip:
//   Lm = CB ∘ exp(segsum) ∘ dt',  Y = Lm·X + diag(e_in)·C·H0ᵀ + D·X (gated),
//   H  = decay·H0 + Xᵀ·(w ∘ B)
// The same kernel, without Y, writes each chunk's incoming state for the backward pass.
// Runs float32 only (exact FMA); 16-bit inputs take the tensor-core kernels of ssd_fwd_mma.cu.
// ssd_cb_kernel (64-token chunks) also serves the 16-bit backward's general chunk-gradient path.
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_launch.h"
#include "ops/ssd.h"

namespace ss::cuda::ssd {

template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_cb_kernel(Dev d) {
  constexpr int Q = Traits<T>::Q;
  extern __shared__ __align__(128) unsigned char smem[];
  const CbLayout lay(Q, d.NP, sizeof(T));
  T* sB = reinterpret_cast<T*>(smem + lay.sB);
  T* sC = reinterpret_cast<T*>(smem + lay.sC);
  const int c = blockIdx.x, g = blockIdx.y, b = blockIdx.z;
  const int t0 = c * Q, q = min(Q, d.L - t0);
  load_tile(sB, lay.ldN, static_cast<const T*>(d.B) + d.B_str.at(b, t0) + int64_t(g) * d.N, d.B_str.token, q, Q, d.N, d.NP);
  load_tile(sC, lay.ldN, static_cast<const T*>(d.C) + d.C_str.at(b, t0) + int64_t(g) * d.N, d.C_str.token, q, Q, d.N, d.NP);
  __syncthreads();
  float* out = d.CB + ((int64_t(b) * d.nc + c) * d.G + g) * Q * Q;
  block_gemm<T, true, false, Tri::SkipUpper>(Q, Q, d.NP, sC, lay.ldN, sB, lay.ldN, out, Q, 0.f);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_fwd_kernel(Dev d) {
  static_assert(std::is_same_v<T, float>, "16-bit inputs run ssd_fwd_mma.cu");
  constexpr int Q = Traits<T>::Q;
  extern __shared__ __align__(128) unsigned char smem[];
  const FwdLayout lay(Q, d.NP, d.PT, sizeof(T));
  T* sB = reinterpret_cast<T*>(smem + lay.sB);
  T* sC = reinterpret_cast<T*>(smem + lay.sC);
  T* sX = reinterpret_cast<T*>(smem + lay.sX);
  T* sMT = reinterpret_cast<T*>(smem + lay.sMT);
  float* sH = reinterpret_cast<float*>(smem + lay.sH);
  float* sY = reinterpret_cast<float*>(smem + lay.sY);
  float* sY2 = reinterpret_cast<float*>(smem + lay.sY2);
  const ScalarPtrs sc(smem, lay);

  const int pt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / d.hpg;
  const int p0 = pt * d.PT, pw = min(d.PT, d.P - p0);
  const int NP = d.NP, PT = d.PT;
  // this block's (batch, head or group, headdim tile) of the inputs and of y, at token 0
  const T* x = static_cast<const T*>(d.x) + d.x_str.at(b, 0) + int64_t(h) * d.P + p0;
  const T* Bm = static_cast<const T*>(d.B) + d.B_str.at(b, 0) + int64_t(g) * d.N;
  const T* Cm = static_cast<const T*>(d.C) + d.C_str.at(b, 0) + int64_t(g) * d.N;
  const T* z = d.z ? static_cast<const T*>(d.z) + d.z_str.at(b, 0) + int64_t(h) * d.P + p0 : nullptr;
  T* y = d.y ? static_cast<T*>(d.y) + (int64_t(b) * d.L * d.H + h) * d.P + p0 : nullptr;
  const bool want_y = y != nullptr;

  for (int i = threadIdx.x; i < PT * NP; i += kThreads) {
    const int p = i / NP, n = i % NP;
    sH[p * lay.ldH + n] = (d.h0 && p < pw && n < d.N) ? d.h0[((int64_t(b) * d.H + h) * d.P + p0 + p) * d.N + n] : 0.f;
  }

  for (int c = 0; c < d.nc; ++c) {
    const int t0 = c * Q, q = min(Q, d.L - t0);
    __syncthreads();  // the previous chunk is done with shared memory; H is complete
    if (d.S0) {
      T* s0 = static_cast<T*>(d.S0) + ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP + int64_t(p0) * NP;
      for (int i = threadIdx.x; i < PT * NP; i += kThreads) s0[i] = from_float<T>(sH[(i / NP) * lay.ldH + i % NP]);
    }
    load_tile(sB, lay.ldN, Bm + t0 * d.B_str.token, d.B_str.token, q, Q, d.N, NP);
    if (want_y) load_tile(sC, lay.ldN, Cm + t0 * d.C_str.token, d.C_str.token, q, Q, d.N, NP);
    load_tile(sX, lay.ldX, x + t0 * d.x_str.token, d.x_str.token, q, Q, pw, PT);
    chunk_scalars<Q>(d, b, h, t0, q, sc.dtp, sc.der, sc.cs, sc.seg, sc.ein, sc.eout);  // ends with __syncthreads

    const float cs_end = sc.cs[Q - 1];
    const int seg_end = sc.seg[Q - 1];
    if (want_y) {
      block_gemm<T, true, false, Tri::Full>(Q, PT, NP, sC, lay.ldN, sH, lay.ldH, sY2, lay.ldY, 0.f);  // C·H0ᵀ
      const float* cb = d.CB + ((int64_t(b) * d.nc + c) * d.G + g) * Q * Q;
      for (int idx = threadIdx.x; idx < Q * Q; idx += kThreads) {
        const int t = idx / Q, s = idx % Q;
        float v = 0.f;
        if (s <= t && sc.seg[s] == sc.seg[t]) v = cb[idx] * __expf(sc.cs[t] - sc.cs[s]) * sc.dtp[s];
        sMT[t * lay.ldMT + s] = from_float<T>(v);
      }
    }
    for (int idx = threadIdx.x; idx < Q * NP; idx += kThreads) {
      const int s = idx / NP, n = idx % NP;
      const float w = sc.eout[s] * sc.dtp[s];
      sB[s * lay.ldN + n] = from_float<T>(to_float(sB[s * lay.ldN + n]) * w);
    }
    __syncthreads();  // Lm, Bw and C·H0ᵀ done (read H itself there: it may change now)
    if (want_y) block_gemm<T, true, true, Tri::LowerA>(Q, PT, Q, sMT, lay.ldMT, sX, lay.ldX, sY, lay.ldY, 0.f);  // Lm·X
    const float decay = seg_end == 0 ? __expf(cs_end) : 0.f;
    block_gemm<T, false, true, Tri::Full>(PT, NP, Q, sX, lay.ldX, sB, lay.ldN, sH, lay.ldH, decay);  // H = decay·H + Xᵀ·Bw
    __syncthreads();  // Y complete
    if (want_y) {
      const T* zc = z ? z + t0 * d.z_str.token : nullptr;  // the chunk's rows
      T* yc = y + int64_t(t0) * d.H * d.P;                 // (y contiguous)
      for (int idx = threadIdx.x; idx < q * pw; idx += kThreads) {
        const int t = idx / pw, pp = idx % pw, p = p0 + pp;
        const float e_in = sc.ein[t];
        const float xv = to_float(sX[t * lay.ldX + pp]);
        float v = sY[t * lay.ldY + pp] + e_in * sY2[t * lay.ldY + pp];
        if (d.D) v += (d.d_per_channel ? d.D[h * d.P + p] : d.D[h]) * xv;
        if (zc) v *= silu_f(to_float(zc[t * d.z_str.token + pp]));
        yc[int64_t(t) * d.H * d.P + pp] = from_float<T>(v);
      }
    }
  }
  __syncthreads();
  if (d.final_states)
    for (int i = threadIdx.x; i < pw * d.N; i += kThreads) {
      const int p = i / d.N, n = i % d.N;
      d.final_states[((int64_t(b) * d.H + h) * d.P + p0 + p) * d.N + n] = sH[p * lay.ldH + n];
    }
}

template <typename T>
void launch_cb(const Dev& d, cudaStream_t stream) {
  const CbLayout cl(d.Q, d.NP, sizeof(T));
  set_smem(ssd_cb_kernel<T>, cl.bytes, "ssdChunkScan: shared memory");
  ssd_cb_kernel<T><<<dim3(d.nc, d.G, d.batch), kThreads, cl.bytes, stream>>>(d);
  check_launch("ssdChunkScan C·Bᵀ");
}

template <typename T>
void launch_forward(const Dev& d, cudaStream_t stream) {
  if (d.y) launch_cb<T>(d, stream);  // the output needs C·Bᵀ; the backward's state-only pass does not
  const FwdLayout lay(d.Q, d.NP, d.PT, sizeof(T));
  set_smem(ssd_fwd_kernel<T>, lay.bytes, "ssdChunkScan: shared memory");
  dim3 grid(d.PP / d.PT, d.H, d.batch);
  ssd_fwd_kernel<T><<<grid, kThreads, lay.bytes, stream>>>(d);
  check_launch("ssdChunkScan forward");
}

template void launch_cb<float>(const Dev&, cudaStream_t);
template void launch_cb<__half>(const Dev&, cudaStream_t);
template void launch_cb<__nv_bfloat16>(const Dev&, cudaStream_t);
template void launch_forward<float>(const Dev&, cudaStream_t);  // 16-bit: ssd_fwd_mma.cu

}  // namespace ss::cuda::ssd
