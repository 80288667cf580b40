// Chunk-parallel state kernels of the 16-bit backward, over 256-token chunks (the public
// algorithm's structure); the 16-bit forward runs ssd_fwd_mma.cu:
//   ssd_fc_state_kernel  chunk-local state S_c = Xᵀ·(w ∘ B), w = exp(cs_end − cs)·dt'  (T scratch)
//                        and the chunk's decay exp(cs_end) (0 when a sequence restarts inside);
//                        REV: U_c = dyᵀ·(e_in ∘ C)
//   ssd_fc_pass_kernel   H_c = decay_c·H_{c−1} + S_c, sequential over chunks (f32 in registers),
//                        in place: the slot of chunk c ends up holding the state entering it
//   ssd_run_pass_kernel  the same within runs of 64-token chunks, seeded by the above
// Every product runs on tensor cores (block_gemm, f32 accumulation).
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_launch.h"
#include "cuda/ssd_stages.h"

namespace ss::cuda::ssd {

namespace {

constexpr int kQ = kChunkedQ;  // tokens per chunk
constexpr int kT = 64;          // row tile / K slice / headdim tile

struct ScalarLayout : ChunkScalars {  // per-chunk scalars at the start of every kernel's shared memory
  size_t bytes;
  __host__ __device__ ScalarLayout() { bytes = place_scalars(0, kQ); }
};

struct StateTileLayout {  // sZ: the gate's z (reverse pass only)
  int ldX, ldN, ldS;
  size_t sX, sB, sS, sZ, bytes;
  __host__ __device__ StateTileLayout(int NP, int ts, bool rev) {
    ldX = kT + 8, ldN = NP + 8, ldS = NP + 4;
    size_t o = ScalarLayout().bytes;
    sX = o, o = align128(o + size_t(kT) * ldX * ts);
    sB = o, o = align128(o + size_t(kT) * ldN * ts);
    sS = o, o = align128(o + size_t(kT) * ldS * 4);
    sZ = o, o = align128(o + (rev ? size_t(kT) * ldX * ts : 0));
    bytes = o;
  }
};

__device__ __forceinline__ int rows_in(int q, int r0) { return max(0, min(kT, q - r0)); }

// Four consecutive 16-bit values (8-byte aligned) as floats, and back.
template <typename T>
__device__ __forceinline__ float4 load4(const T* p) {
  union { uint2 u; T v[4]; } w;
  w.u = *reinterpret_cast<const uint2*>(p);
  return make_float4(to_float(w.v[0]), to_float(w.v[1]), to_float(w.v[2]), to_float(w.v[3]));
}
template <typename T>
__device__ __forceinline__ void store4(T* p, float4 f) {
  union { uint2 u; T v[4]; } w;
  w.v[0] = from_float<T>(f.x), w.v[1] = from_float<T>(f.y), w.v[2] = from_float<T>(f.z), w.v[3] = from_float<T>(f.w);
  *reinterpret_cast<uint2*>(p) = w.u;
}

}  // namespace

// Slice j of the state kernel's operands: X (REV: dout, and z into sZ; the kernel forms
// dy = dout·silu(z) in place) and B (REV: C); the copies may still be in flight on return
// (cp_async_wait).
template <typename T, bool REV>
__device__ __forceinline__ void load_state_slice(const Dev& d, const StateTileLayout& lay, T* sX, T* sB, T* sZ,
                                                 int64_t xrow, const T* Bm, int q, int pw, int j) {
  const int rv = rows_in(q, j * kT);
  const int64_t xs = int64_t(d.H) * d.P, bs = int64_t(d.G) * d.N;
  const int64_t off = xrow + int64_t(j) * kT * xs;
  if constexpr (REV) {
    load_tile<false>(sX, lay.ldX, static_cast<const T*>(d.dout) + off, xs, rv, kT, pw, kT);
    if (d.z) load_tile<false>(sZ, lay.ldX, static_cast<const T*>(d.z) + off, xs, rv, kT, pw, kT);
  } else {
    load_tile<false>(sX, lay.ldX, static_cast<const T*>(d.x) + off, xs, rv, kT, pw, kT);
  }
  load_tile<false>(sB, lay.ldN, Bm + int64_t(j) * kT * bs, bs, rv, kT, d.N, d.NP);
}

// grid (H·⌈PP/64⌉, nc, batch): S_c of one QC-token chunk for one headdim tile of one head, into
// dst (batch, H, nc, PP, NP) T, and the chunk's decay into dec_out (batch, H, nc). REV (the
// backward's reverse pass): the chunk's contribution to dL/d(incoming state), U_c = dyᵀ·(e_in ∘ C).
template <typename T, bool REV, int QC>
__global__ void __launch_bounds__(kThreads) ssd_fc_state_kernel(Dev d, void* dst, float* dec_out) {
  extern __shared__ __align__(128) unsigned char smem[];
  const StateTileLayout lay(d.NP, sizeof(T), REV);
  const ScalarPtrs sc(smem, ScalarLayout());
  T* sX = reinterpret_cast<T*>(smem + lay.sX);
  T* sB = reinterpret_cast<T*>(smem + lay.sB);
  float* sS = reinterpret_cast<float*>(smem + lay.sS);
  T* sZ = reinterpret_cast<T*>(smem + lay.sZ);
  const int h = blockIdx.x % d.H, pt = blockIdx.x / d.H, c = blockIdx.y, b = blockIdx.z, g = h / d.hpg;
  const int p0 = pt * kT, pw = min(kT, d.P - p0);
  const int t0 = c * QC, q = min(QC, d.L - t0);
  const int NP = d.NP;
  const int64_t xrow = ((int64_t(b) * d.L + t0) * d.H + h) * d.P + p0;
  const T* Bm = static_cast<const T*>(REV ? d.C : d.B) + ((int64_t(b) * d.L + t0) * d.G + g) * d.N;
  const int nslices = (q + kT - 1) / kT;
  load_state_slice<T, REV>(d, lay, sX, sB, sZ, xrow, Bm, q, pw, 0);  // in flight while the chunk scalars are computed
  chunk_scalars<QC>(d, b, h, t0, q, sc.dtp, sc.der, sc.cs, sc.seg, sc.ein, sc.eout);
  for (int j = 0; j < nslices; ++j) {
    if (j) {
      __syncthreads();  // the previous slice's product is done with sX, sB
      load_state_slice<T, REV>(d, lay, sX, sB, sZ, xrow, Bm, q, pw, j);
    }
    cp_async_wait();
    __syncthreads();
    for (int idx = threadIdx.x; idx < kT * NP; idx += kThreads) {
      const int s = idx / NP, n = idx % NP;
      const float w = REV ? sc.ein[j * kT + s] : sc.eout[j * kT + s] * sc.dtp[j * kT + s];
      sB[s * lay.ldN + n] = from_float<T>(to_float(sB[s * lay.ldN + n]) * w);
    }
    if (REV && d.z)
      for (int idx = threadIdx.x; idx < kT * kT; idx += kThreads) {  // dy = dout·silu(z)
        const int o = (idx / kT) * lay.ldX + idx % kT;
        sX[o] = from_float<T>(to_float(sX[o]) * silu_f(to_float(sZ[o])));
      }
    __syncthreads();
    block_gemm<T, false, true, Tri::Full>(kT, NP, kT, sX, lay.ldX, sB, lay.ldN, sS, lay.ldS, j ? 1.f : 0.f);
  }
  __syncthreads();
  T* out = static_cast<T*>(dst) + ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP + int64_t(p0) * NP;
  const int rows = min(kT, d.PP - p0);  // the 64-token view's PP is a multiple of 32 only
  for (int idx = threadIdx.x; idx < rows * NP / 4; idx += kThreads) {
    const int p = idx / (NP / 4), n = (idx % (NP / 4)) * 4;
    const float* s = sS + p * lay.ldS + n;
    store4(out + int64_t(p) * NP + n, make_float4(s[0], s[1], s[2], s[3]));
  }
  if (pt == 0 && threadIdx.x == 0)
    dec_out[(int64_t(b) * d.H + h) * d.nc + c] = sc.seg[QC - 1] == 0 ? __expf(sc.cs[QC - 1]) : 0.f;
}

// grid (⌈PP·NP/4/256⌉, batch·H): four consecutive state elements per thread, chunks in order
// (REV: in reverse, from dFinalStates, leaving dL/d(state) at each chunk's end; the last value
// is dInitialStates). Forward: from h0, leaving the state entering each chunk; then finalStates.
template <typename T, bool REV>
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
  T* st = static_cast<T*>(d.St) + int64_t(bh) * d.nc * per + e;
  const float* dec = d.dec + int64_t(bh) * d.nc;
  auto chunk = [&](int i) { return REV ? d.nc - 1 - i : i; };  // i-th chunk visited
  float4 next = load4(st + chunk(0) * per);
  for (int i = 0; i < d.nc; ++i) {
    const int c = chunk(i);
    const float4 s = next;
    if (i + 1 < d.nc) next = load4(st + chunk(i + 1) * per);  // prefetch
    store4(st + c * per, make_float4(hv[0], hv[1], hv[2], hv[3]));
    const float a = dec[c];
    hv[0] = a * hv[0] + s.x, hv[1] = a * hv[1] + s.y, hv[2] = a * hv[2] + s.z, hv[3] = a * hv[3] + s.w;
  }
  if (last)
    for (int k = 0; k < 4; ++k)
      if (p < d.P && n + k < d.N) last[state_off + k] = hv[k];
}

// Backward, 64-token chunks: the states entering every chunk (REV: dL/dstate at every chunk's
// end) from the chunk-local ones in src, one run of kChunkedQ tokens per thread, seeded by the
// chunk-parallel pass's states of the run (seeds: (batch, H, nruns, ⌈P/64⌉·64, NP) T).
// dst may be src (in place). grid (⌈PP·NP/4/256⌉, batch·H, nruns).
template <typename T, bool REV>
__global__ void __launch_bounds__(256) ssd_run_pass_kernel(Dev d, const void* seeds, const void* src, void* dst) {
  constexpr int R = kQ / Traits<T>::Q;  // chunks per run
  const int bh = blockIdx.y, run = blockIdx.z, nruns = gridDim.z;
  const int64_t per = int64_t(d.PP) * d.NP;
  const int64_t e = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (e >= per) return;
  const int run_PP = (d.P + kT - 1) / kT * kT;
  float4 hv = load4(static_cast<const T*>(seeds) + (int64_t(bh) * nruns + run) * run_PP * d.NP + e);
  const int c_begin = run * R, count = min(R, d.nc - c_begin);
  const T* s_base = static_cast<const T*>(src) + int64_t(bh) * d.nc * per + e;
  T* d_base = static_cast<T*>(dst) + int64_t(bh) * d.nc * per + e;
  for (int i = 0; i < count; ++i) {
    const int c = c_begin + (REV ? count - 1 - i : i);
    const float4 s = load4(s_base + c * per);  // before the store: dst may be src
    store4(d_base + c * per, hv);
    const float a = d.dec[int64_t(bh) * d.nc + c];
    hv = make_float4(a * hv.x + s.x, a * hv.y + s.y, a * hv.z + s.z, a * hv.w + s.w);
  }
}

namespace {
template <typename T, bool REV, int QC>
void launch_local(const Dev& d, void* dst, float* dec_out, cudaStream_t stream) {
  const StateTileLayout sl(d.NP, sizeof(T), REV);
  auto kernel = ssd_fc_state_kernel<T, REV, QC>;
  set_smem(kernel, sl.bytes, "ssdChunkScan: shared memory");
  kernel<<<dim3(d.H * ((d.PP + kT - 1) / kT), d.nc, d.batch), kThreads, sl.bytes, stream>>>(d, dst, dec_out);
  check_launch(REV ? "ssdChunkScanBackward chunk state gradients" : "ssdChunkScan chunk states");
}

template <typename T, bool REV>
void launch_states(const Dev& d, cudaStream_t stream, StageTimer& timer) {
  launch_local<T, REV, kQ>(d, d.St, d.dec, stream);
  timer.mark(REV ? "chunk dL/dstate" : "chunk states");
  const int64_t per4 = int64_t(d.PP) * d.NP / 4;
  ssd_fc_pass_kernel<T, REV><<<dim3(unsigned((per4 + 255) / 256), d.batch * d.H), 256, 0, stream>>>(d);
  check_launch(REV ? "ssdChunkScanBackward state passing" : "ssdChunkScan state passing");
  timer.mark(REV ? "reverse state passing" : "state passing");
}
}  // namespace

template <typename T>
void launch_backward_states(const Dev& d, cudaStream_t stream, StageTimer& timer) {
  constexpr int Q = Traits<T>::Q;
  Dev r = chunked_view(d);  // runs of kChunkedQ tokens: states from h0 / dfinal, finalStates off
  r.final_states = nullptr;
  const int nruns = r.nc;
  const dim3 pass_grid(unsigned((int64_t(d.PP) * d.NP / 4 + 255) / 256), d.batch * d.H, nruns);
  // states entering every chunk: run seeds, chunk-local states (in S1's space), then S0
  launch_states<T, false>(r, stream, timer);
  launch_local<T, false, Q>(d, d.S1, d.dec, stream);
  ssd_run_pass_kernel<T, false><<<pass_grid, 256, 0, stream>>>(d, r.St, d.S1, d.S0);
  check_launch("ssdChunkScanBackward states of every chunk");
  timer.mark("states of every chunk");
  // dL/dstate at every chunk's end (and dInitialStates): run seeds, chunk-local parts, S1 in place
  launch_states<T, true>(r, stream, timer);
  launch_local<T, true, Q>(d, d.S1, d.dec, stream);
  ssd_run_pass_kernel<T, true><<<pass_grid, 256, 0, stream>>>(d, r.St, d.S1, d.S1);
  check_launch("ssdChunkScanBackward dL/dstate of every chunk");
  timer.mark("dL/dstate of every chunk");
}

template void launch_backward_states<__half>(const Dev&, cudaStream_t, StageTimer&);
template void launch_backward_states<__nv_bfloat16>(const Dev&, cudaStream_t, StageTimer&);

}  // namespace ss::cuda::ssd
