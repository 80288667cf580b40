// SSD forward for 16-bit inputs, parallel over chunks (the public algorithm's structure), with
// 256-token chunks so the chunk states cost little memory traffic next to x, z and y:
//   1. ssd_fc_cb_kernel     C·Bᵀ of every chunk and group, lower 64×64 tiles (f32 scratch)
//   2. ssd_fc_state_kernel  chunk-local state S_c = Xᵀ·(w ∘ B), w = exp(cs_end − cs)·dt'  (f32 scratch)
//                           and the chunk's decay exp(cs_end) (0 when a sequence restarts inside)
//   3. ssd_fc_pass_kernel   H_c = decay_c·H_{c−1} + S_c, sequential over chunks, in place: the slot
//                           of chunk c ends up holding the state entering it; final states
//   4. ssd_fc_out_kernel    per 64-token row tile: Y = e_in·(C·H_inᵀ) + Σ_j (CB ∘ exp(segsum) ∘ dt')·X_j
//                           + D·x, gated by silu(z)
// Every product runs on tensor cores (block_gemm, f32 accumulation). The f32 forward and the
// backward's state pass keep the fused sequential kernel of ssd_fwd.cu.
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_launch.h"

namespace ss::cuda::ssd {

namespace {

constexpr int kQ = kChunkedQ;  // tokens per chunk
constexpr int kT = 64;          // row tile / K slice / headdim tile
constexpr int kR = kQ / kT;     // row tiles per chunk

struct ScalarLayout {  // per-chunk scalars at the start of every kernel's shared memory
  size_t sDtp, sDer, sCs, sSeg, sEin, sEout, bytes;
  __host__ __device__ ScalarLayout() {
    size_t o = 0;
    sDtp = o, o += kQ * 4;
    sDer = o, o += kQ * 4;
    sCs = o, o += kQ * 4;
    sSeg = o, o += kQ * 4;
    sEin = o, o += kQ * 4;
    sEout = o, o += kQ * 4;
    bytes = align128(o);
  }
};

struct Scalars {
  float *dtp, *der, *cs, *ein, *eout;
  int* seg;
  __device__ Scalars(unsigned char* smem) {
    const ScalarLayout s;
    dtp = reinterpret_cast<float*>(smem + s.sDtp);
    der = reinterpret_cast<float*>(smem + s.sDer);
    cs = reinterpret_cast<float*>(smem + s.sCs);
    seg = reinterpret_cast<int*>(smem + s.sSeg);
    ein = reinterpret_cast<float*>(smem + s.sEin);
    eout = reinterpret_cast<float*>(smem + s.sEout);
  }
};

struct CbTileLayout {
  int ldN;
  size_t sC, sB, bytes;
  __host__ __device__ CbTileLayout(int NP, int ts) {
    ldN = NP + 8;
    size_t o = 0;
    sC = o, o = align128(o + size_t(kT) * ldN * ts);
    sB = o, o = align128(o + size_t(kT) * ldN * ts);
    bytes = o;
  }
};

struct StateTileLayout {
  int ldX, ldN, ldS;
  size_t sX, sB, sS, bytes;
  __host__ __device__ StateTileLayout(int NP, int ts) {
    ldX = kT + 8, ldN = NP + 8, ldS = NP + 4;
    size_t o = ScalarLayout().bytes;
    sX = o, o = align128(o + size_t(kT) * ldX * ts);
    sB = o, o = align128(o + size_t(kT) * ldN * ts);
    sS = o, o = align128(o + size_t(kT) * ldS * 4);
    bytes = o;
  }
};

struct OutTileLayout {
  int ldN, ldX, ldM, ldY;
  size_t sC, sH, sX, sM, sY, bytes;
  __host__ __device__ OutTileLayout(int NP, int ts) {
    ldN = NP + 8, ldX = kT + 8, ldM = kT + 8, ldY = kT + 4;
    size_t o = ScalarLayout().bytes;
    sC = o, o = align128(o + size_t(kT) * ldN * ts);
    sH = o, o = align128(o + size_t(kT) * ldN * ts);
    sX = o, o = align128(o + size_t(kT) * ldX * ts);
    sM = o, o = align128(o + size_t(kT) * ldM * ts);
    sY = o, o = align128(o + size_t(kT) * ldY * 4);
    bytes = o;
  }
};

__device__ __forceinline__ int rows_in(int q, int r0) { return max(0, min(kT, q - r0)); }

}  // namespace

// grid (kR·kR tiles, nc, batch·G); tiles above the diagonal exit at once.
template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_fc_cb_kernel(Dev d) {
  const int r = blockIdx.x / kR, j = blockIdx.x % kR;
  if (j > r) return;
  extern __shared__ __align__(128) unsigned char smem[];
  const CbTileLayout lay(d.NP, sizeof(T));
  T* sC = reinterpret_cast<T*>(smem + lay.sC);
  T* sB = reinterpret_cast<T*>(smem + lay.sB);
  const int c = blockIdx.y, b = blockIdx.z / d.G, g = blockIdx.z % d.G;
  const int t0 = c * kQ, q = min(kQ, d.L - t0);
  const int64_t stride = int64_t(d.G) * d.N;
  const T* Cm = static_cast<const T*>(d.C) + ((int64_t(b) * d.L + t0) * d.G + g) * d.N;
  const T* Bm = static_cast<const T*>(d.B) + ((int64_t(b) * d.L + t0) * d.G + g) * d.N;
  load_tile(sC, lay.ldN, Cm + int64_t(r) * kT * stride, stride, rows_in(q, r * kT), kT, d.N, d.NP);
  load_tile(sB, lay.ldN, Bm + int64_t(j) * kT * stride, stride, rows_in(q, j * kT), kT, d.N, d.NP);
  __syncthreads();
  float* out = d.CB + ((int64_t(b) * d.nc + c) * d.G + g) * kQ * kQ + (r * kT) * kQ + j * kT;
  block_gemm<T, true, false, Tri::Full>(kT, kT, d.NP, sC, lay.ldN, sB, lay.ldN, out, kQ, 0.f);
}

// grid (H·(PP/64), nc, batch): S_c for one headdim tile of one head. REV (the backward's
// reverse pass): the chunk's contribution to dL/d(incoming state) instead, U_c = dyᵀ·(e_in ∘ C).
template <typename T, bool REV>
__global__ void __launch_bounds__(kThreads) ssd_fc_state_kernel(Dev d) {
  extern __shared__ __align__(128) unsigned char smem[];
  const StateTileLayout lay(d.NP, sizeof(T));
  const Scalars sc(smem);
  T* sX = reinterpret_cast<T*>(smem + lay.sX);
  T* sB = reinterpret_cast<T*>(smem + lay.sB);
  float* sS = reinterpret_cast<float*>(smem + lay.sS);
  const int h = blockIdx.x % d.H, pt = blockIdx.x / d.H, c = blockIdx.y, b = blockIdx.z, g = h / d.hpg;
  const int p0 = pt * kT, pw = min(kT, d.P - p0);
  const int t0 = c * kQ, q = min(kQ, d.L - t0);
  const int NP = d.NP;
  chunk_scalars<kQ>(d, b, h, t0, q, sc.dtp, sc.der, sc.cs, sc.seg, sc.ein, sc.eout);
  const int64_t xrow = ((int64_t(b) * d.L + t0) * d.H + h) * d.P + p0;
  const T* x = static_cast<const T*>(d.x) + xrow;
  const T* Bm = static_cast<const T*>(REV ? d.C : d.B) + ((int64_t(b) * d.L + t0) * d.G + g) * d.N;
  const int64_t xs = int64_t(d.H) * d.P, bs = int64_t(d.G) * d.N;
  const int nslices = (q + kT - 1) / kT;
  for (int j = 0; j < nslices; ++j) {
    if (j) __syncthreads();  // the previous slice's product is done with sX, sB
    const int rv = rows_in(q, j * kT);
    if constexpr (REV) {
      for (int idx = threadIdx.x; idx < kT * kT; idx += kThreads) {
        const int t = idx / kT, pp = idx % kT;
        float v = 0.f, zv;
        if (t < rv && pp < pw) v = grad_out<T>(d, xrow + (int64_t(j) * kT + t) * xs + pp, &zv);
        sX[t * lay.ldX + pp] = from_float<T>(v);
      }
    } else {
      load_tile(sX, lay.ldX, x + int64_t(j) * kT * xs, xs, rv, kT, pw, kT);
    }
    load_tile(sB, lay.ldN, Bm + int64_t(j) * kT * bs, bs, rv, kT, d.N, NP);
    __syncthreads();
    for (int idx = threadIdx.x; idx < kT * NP; idx += kThreads) {
      const int s = idx / NP, n = idx % NP;
      const float w = REV ? sc.ein[j * kT + s] : sc.eout[j * kT + s] * sc.dtp[j * kT + s];
      sB[s * lay.ldN + n] = from_float<T>(to_float(sB[s * lay.ldN + n]) * w);
    }
    __syncthreads();
    block_gemm<T, false, true, Tri::Full>(kT, NP, kT, sX, lay.ldX, sB, lay.ldN, sS, lay.ldS, j ? 1.f : 0.f);
  }
  __syncthreads();
  float* out = d.St + ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP + int64_t(p0) * NP;
  for (int idx = threadIdx.x; idx < kT * NP / 4; idx += kThreads) {
    const int p = idx / (NP / 4), n = (idx % (NP / 4)) * 4;
    const float* s = sS + p * lay.ldS + n;
    *reinterpret_cast<float4*>(out + int64_t(p) * NP + n) = make_float4(s[0], s[1], s[2], s[3]);
  }
  if (pt == 0 && threadIdx.x == 0)
    d.dec[(int64_t(b) * d.H + h) * d.nc + c] = sc.seg[kQ - 1] == 0 ? __expf(sc.cs[kQ - 1]) : 0.f;
}

// grid (⌈PP·NP/4/256⌉, batch·H): four consecutive state elements per thread, chunks in order
// (REV: in reverse, from dFinalStates, leaving dL/d(state) at each chunk's end; the last value
// is dInitialStates). Forward: from h0, leaving the state entering each chunk; then finalStates.
template <bool REV>
__global__ void __launch_bounds__(256) ssd_fc_pass_kernel(Dev d) {
  const int bh = blockIdx.y, b = bh / d.H, h = bh % d.H;
  const int64_t per = int64_t(d.PP) * d.NP;
  const int64_t e = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (e >= per) return;
  const int p = int(e / d.NP), n = int(e % d.NP);
  const float* seed = REV ? d.dfinal : d.h0;
  float* last = REV ? d.dh0 : d.final_states;
  const int64_t state_off = ((int64_t(b) * d.H + h) * d.P + p) * d.N + n;
  float hv[4];
  for (int k = 0; k < 4; ++k) hv[k] = (seed && p < d.P && n + k < d.N) ? seed[state_off + k] : 0.f;
  float* st = d.St + int64_t(bh) * d.nc * per + e;
  const float* dec = d.dec + int64_t(bh) * d.nc;
  auto chunk = [&](int i) { return REV ? d.nc - 1 - i : i; };  // i-th chunk visited
  float4 next = *reinterpret_cast<const float4*>(st + chunk(0) * per);
  for (int i = 0; i < d.nc; ++i) {
    const int c = chunk(i);
    const float4 s = next;
    if (i + 1 < d.nc) next = *reinterpret_cast<const float4*>(st + chunk(i + 1) * per);  // prefetch
    *reinterpret_cast<float4*>(st + c * per) = make_float4(hv[0], hv[1], hv[2], hv[3]);
    const float a = dec[c];
    hv[0] = a * hv[0] + s.x, hv[1] = a * hv[1] + s.y, hv[2] = a * hv[2] + s.z, hv[3] = a * hv[3] + s.w;
  }
  if (last)
    for (int k = 0; k < 4; ++k)
      if (p < d.P && n + k < d.N) last[state_off + k] = hv[k];
}

// grid (H·kR·(PP/64), nc, batch): 64 output rows × one 64-wide headdim tile of one head.
template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_fc_out_kernel(Dev d) {
  const int h = blockIdx.x % d.H, rest = blockIdx.x / d.H, r = rest % kR, pt = rest / kR;
  const int c = blockIdx.y, b = blockIdx.z, g = h / d.hpg;
  const int t0 = c * kQ, q = min(kQ, d.L - t0);
  if (r * kT >= q) return;  // whole block: rows past the sequence
  extern __shared__ __align__(128) unsigned char smem[];
  const OutTileLayout lay(d.NP, sizeof(T));
  const Scalars sc(smem);
  T* sC = reinterpret_cast<T*>(smem + lay.sC);
  T* sH = reinterpret_cast<T*>(smem + lay.sH);
  T* sX = reinterpret_cast<T*>(smem + lay.sX);
  T* sM = reinterpret_cast<T*>(smem + lay.sM);
  float* sY = reinterpret_cast<float*>(smem + lay.sY);
  const int p0 = pt * kT, pw = min(kT, d.P - p0);
  const int NP = d.NP;
  const int rv = rows_in(q, r * kT);

  chunk_scalars<kQ>(d, b, h, t0, q, sc.dtp, sc.der, sc.cs, sc.seg, sc.ein, sc.eout);
  const int64_t bs = int64_t(d.G) * d.N;
  load_tile(sC, lay.ldN, static_cast<const T*>(d.C) + ((int64_t(b) * d.L + t0 + r * kT) * d.G + g) * d.N, bs, rv, kT,
            d.N, NP);
  const float* hin = d.St + ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP + int64_t(p0) * NP;
  for (int idx = threadIdx.x; idx < kT * NP / 4; idx += kThreads) {
    const int p = idx / (NP / 4), n = (idx % (NP / 4)) * 4;
    const float4 v = *reinterpret_cast<const float4*>(hin + int64_t(p) * NP + n);
    T* o = sH + p * lay.ldN + n;
    o[0] = from_float<T>(v.x), o[1] = from_float<T>(v.y), o[2] = from_float<T>(v.z), o[3] = from_float<T>(v.w);
  }
  __syncthreads();
  block_gemm<T, true, false, Tri::Full>(kT, kT, NP, sC, lay.ldN, sH, lay.ldN, sY, lay.ldY, 0.f);  // C·H_inᵀ
  __syncthreads();
  for (int idx = threadIdx.x; idx < kT * kT; idx += kThreads) {
    const int t = idx / kT, p = idx % kT;
    sY[t * lay.ldY + p] *= sc.ein[r * kT + t];
  }

  const float* cb = d.CB + ((int64_t(b) * d.nc + c) * d.G + g) * kQ * kQ;
  const T* x = static_cast<const T*>(d.x) + ((int64_t(b) * d.L + t0) * d.H + h) * d.P + p0;
  const int64_t xs = int64_t(d.H) * d.P;
  for (int j = 0; j <= r; ++j) {
    __syncthreads();  // the previous product is done with sX, sM (and sY's scaling is complete)
    load_tile(sX, lay.ldX, x + int64_t(j) * kT * xs, xs, rows_in(q, j * kT), kT, pw, kT);
    for (int idx = threadIdx.x; idx < kT * kT; idx += kThreads) {
      const int tt = r * kT + idx / kT, ss = j * kT + idx % kT;
      float v = 0.f;
      if (ss <= tt && sc.seg[ss] == sc.seg[tt]) v = cb[tt * kQ + ss] * __expf(sc.cs[tt] - sc.cs[ss]) * sc.dtp[ss];
      sM[(idx / kT) * lay.ldM + idx % kT] = from_float<T>(v);
    }
    __syncthreads();
    if (j == r)
      block_gemm<T, true, true, Tri::LowerA>(kT, kT, kT, sM, lay.ldM, sX, lay.ldX, sY, lay.ldY, 1.f);
    else
      block_gemm<T, true, true, Tri::Full>(kT, kT, kT, sM, lay.ldM, sX, lay.ldX, sY, lay.ldY, 1.f);
  }
  __syncthreads();  // Y complete; sX holds this tile's own rows (the last slice, j == r)
  T* y = static_cast<T*>(d.y);
  const T* z = static_cast<const T*>(d.z);
  for (int idx = threadIdx.x; idx < rv * pw; idx += kThreads) {
    const int t = idx / pw, pp = idx % pw, p = p0 + pp;
    float v = sY[t * lay.ldY + pp];
    if (d.D) v += (d.d_per_channel ? d.D[h * d.P + p] : d.D[h]) * to_float(sX[t * lay.ldX + pp]);
    const int64_t off = ((int64_t(b) * d.L + t0 + r * kT + t) * d.H + h) * d.P + p;
    if (z) v *= silu_f(to_float(z[off]));
    y[off] = from_float<T>(v);
  }
}

namespace {
template <typename T, bool REV>
void launch_states(const Dev& d, cudaStream_t stream) {
  const StateTileLayout sl(d.NP, sizeof(T));
  check(cudaFuncSetAttribute(ssd_fc_state_kernel<T, REV>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(sl.bytes)),
        "ssdChunkScan: shared memory");
  ssd_fc_state_kernel<T, REV><<<dim3(d.H * (d.PP / kT), d.nc, d.batch), kThreads, sl.bytes, stream>>>(d);
  check_launch(REV ? "ssdChunkScanBackward chunk state gradients" : "ssdChunkScan chunk states");
  const int64_t per4 = int64_t(d.PP) * d.NP / 4;
  ssd_fc_pass_kernel<REV><<<dim3(unsigned((per4 + 255) / 256), d.batch * d.H), 256, 0, stream>>>(d);
  check_launch(REV ? "ssdChunkScanBackward state passing" : "ssdChunkScan state passing");
}
}  // namespace

template <typename T>
void launch_chunk_states(const Dev& d, bool reverse, cudaStream_t stream) {
  if (reverse)
    launch_states<T, true>(d, stream);
  else
    launch_states<T, false>(d, stream);
}

template <typename T>
void launch_forward_chunked(const Dev& d, cudaStream_t stream) {
  const int ptiles = d.PP / kT;
  const CbTileLayout cl(d.NP, sizeof(T));
  check(cudaFuncSetAttribute(ssd_fc_cb_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(cl.bytes)),
        "ssdChunkScan: shared memory");
  ssd_fc_cb_kernel<T><<<dim3(kR * kR, d.nc, d.batch * d.G), kThreads, cl.bytes, stream>>>(d);
  check_launch("ssdChunkScan C·Bᵀ");

  launch_states<T, false>(d, stream);

  const OutTileLayout ol(d.NP, sizeof(T));
  check(cudaFuncSetAttribute(ssd_fc_out_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(ol.bytes)),
        "ssdChunkScan: shared memory");
  ssd_fc_out_kernel<T><<<dim3(d.H * kR * ptiles, d.nc, d.batch), kThreads, ol.bytes, stream>>>(d);
  check_launch("ssdChunkScan chunk outputs");
}

template void launch_chunk_states<__half>(const Dev&, bool, cudaStream_t);
template void launch_chunk_states<__nv_bfloat16>(const Dev&, bool, cudaStream_t);
template void launch_forward_chunked<__half>(const Dev&, cudaStream_t);
template void launch_forward_chunked<__nv_bfloat16>(const Dev&, cudaStream_t);

}  // namespace ss::cuda::ssd
