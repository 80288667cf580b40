// SSD backward, 16-bit inputs: the chunk states the chunk-gradient kernels read, for 64-token
// chunks (d.Q), in two launches:
//   1. ssd_bwd_local_kernel, one block per (chunk, head, 64-row headdim tile, batch): both
//      chunk-local products on tensor cores from one load of the chunk's scalars, x, dout, z, B, C —
//        forward  L_c = xᵀ·(e_out ∘ dt' ∘ B)   (the state the chunk adds, into S0's slot c)
//        reverse  R_c = dyᵀ·(e_in ∘ C)          (its dL/d(incoming state) part, into S1's slot c)
//      and the chunk's decay exp(cs_end) (0 when a sequence restarts inside it);
//   2. ssd_bwd_pass_kernel: S0_c = dec_{c−1}·S0_{c−1} + L_{c−1} from h0, and S1_{c−1} =
//      dec_c·S1_c + R_c from dFinalStates (its last value is dInitialStates), in place, four state
//      elements per thread, f32 sums; both directions in one launch.
// Chunk-parallel throughout: the only sequential part is a streaming pass over the chunks.
#include "cuda/check.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_launch.h"

namespace ss::cuda::ssd {

namespace {

constexpr int kQ = 64;  // tokens per chunk (Traits<T>::Q of the 16-bit types)
constexpr int kPT = 64;  // headdim rows per block

struct LocalLayout : ChunkScalars {
  int ldX, ldN;
  size_t sX, sDy, sZ, sB, sC, bytes;
  __host__ __device__ LocalLayout(int NP, int ts, bool z) {
    ldX = kPT + 8, ldN = NP + 8;
    size_t o = 0;
    auto place = [&](size_t n) { const size_t at = o; o = align128(o + n); return at; };
    sX = place(size_t(kQ) * ldX * ts);
    sDy = place(size_t(kQ) * ldX * ts);
    sZ = place(z ? size_t(kQ) * ldX * ts : 0);
    sB = place(size_t(kQ) * ldN * ts);
    sC = place(size_t(kQ) * ldN * ts);
    o = place_scalars(o, kQ);
    bytes = o;
  }
};

// out (PT rows of a (PP, NP) state, row stride NP) = Aᵀ·W over the chunk's 64 tokens, A stored
// [token][p] (ld ldx), W [token][n] (ld ldn). Warp w: rows 16·(w % 4), column half w / 4.
template <typename T>
__device__ void local_product(const T* A, int ldx, const T* W, int ldn, T* out, int rows, int NP) {
  using namespace mma;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int m0 = (warp % 4) * 16;
  if (m0 >= rows) return;
  uint32_t a[kQ / 16][4];
  const RC ra = a_addr_t(lane);
#pragma unroll
  for (int k = 0; k < kQ / 16; ++k) ldsm_x4_t(a[k], A + (k * 16 + ra.r) * ldx + m0 + ra.c);
  const int half = (NP / 16 + 1) / 2;  // 16-column groups of the first half
  const int g0 = (warp / 4) * half, g1 = warp / 4 ? NP / 16 : half;
  const RC rb = b_addr_kn(lane);
  const int gq = lane / 4, tq = lane % 4;
  for (int grp = g0; grp < g1; ++grp) {
    float acc[2][4] = {};
#pragma unroll
    for (int k = 0; k < kQ / 16; ++k) {
      uint32_t bb[4];
      ldsm_x4_t(bb, W + (k * 16 + rb.r) * ldn + grp * 16 + rb.c);
      const uint32_t b0[2] = {bb[0], bb[1]}, b1[2] = {bb[2], bb[3]};
      mma16816<T>(acc[0], a[k], b0);
      mma16816<T>(acc[1], a[k], b1);
    }
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int hi = 0; hi < 2; ++hi) {
        const int p = m0 + gq + hi * 8, n = grp * 16 + j * 8 + tq * 2;
        *reinterpret_cast<uint32_t*>(out + int64_t(p) * NP + n) = pack2<T>(acc[j][hi * 2], acc[j][hi * 2 + 1]);
      }
  }
}

}  // namespace

// grid (nc, H·⌈PP/64⌉, batch), 256 threads.
template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_bwd_local_kernel(Dev d) {
  extern __shared__ __align__(128) unsigned char smem[];
  const bool has_z = d.z != nullptr;
  const LocalLayout lay(d.NP, sizeof(T), has_z);
  const ScalarPtrs sc(smem, lay);
  T* sX = reinterpret_cast<T*>(smem + lay.sX);
  T* sDy = reinterpret_cast<T*>(smem + lay.sDy);
  T* sZ = reinterpret_cast<T*>(smem + lay.sZ);
  T* sB = reinterpret_cast<T*>(smem + lay.sB);
  T* sC = reinterpret_cast<T*>(smem + lay.sC);
  const int c = blockIdx.x, h = blockIdx.y % d.H, pt = blockIdx.y / d.H, b = blockIdx.z, g = h / d.hpg;
  const int p0 = pt * kPT, pw = min(kPT, d.P - p0);
  const int t0 = c * kQ, q = min(kQ, d.L - t0);
  const int NP = d.NP;

  const int64_t xo = ((int64_t(b) * d.L + t0) * d.H + h) * d.P + p0, xs = int64_t(d.H) * d.P;
  const int64_t bo = ((int64_t(b) * d.L + t0) * d.G + g) * d.N, bs = int64_t(d.G) * d.N;
  load_tile<false>(sX, lay.ldX, static_cast<const T*>(d.x) + xo, xs, q, kQ, pw, kPT);
  load_tile<false>(sDy, lay.ldX, static_cast<const T*>(d.dout) + xo, xs, q, kQ, pw, kPT);
  if (has_z) load_tile<false>(sZ, lay.ldX, static_cast<const T*>(d.z) + xo, xs, q, kQ, pw, kPT);
  load_tile<false>(sB, lay.ldN, static_cast<const T*>(d.B) + bo, bs, q, kQ, d.N, NP);
  load_tile<false>(sC, lay.ldN, static_cast<const T*>(d.C) + bo, bs, q, kQ, d.N, NP);
  chunk_scalars<kQ>(d, b, h, t0, q, sc.dtp, sc.der, sc.cs, sc.seg, sc.ein, sc.eout);  // copies in flight
  cp_async_wait();
  __syncthreads();
  for (int idx = threadIdx.x; idx < kQ * NP; idx += kThreads) {  // the token weights
    const int s = idx / NP, o = s * lay.ldN + idx % NP;
    sB[o] = from_float<T>(to_float(sB[o]) * sc.eout[s] * sc.dtp[s]);
    sC[o] = from_float<T>(to_float(sC[o]) * sc.ein[s]);
  }
  if (has_z)
    for (int idx = threadIdx.x; idx < kQ * kPT; idx += kThreads) {  // dy = dout·silu(z)
      const int o = (idx / kPT) * lay.ldX + idx % kPT;
      sDy[o] = from_float<T>(to_float(sDy[o]) * silu_f(to_float(sZ[o])));
    }
  __syncthreads();
  const int rows = min(kPT, d.PP - p0);  // PP is a multiple of 32 only
  const int64_t so = ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP + int64_t(p0) * NP;
  local_product(sX, lay.ldX, sB, lay.ldN, static_cast<T*>(d.S0) + so, rows, NP);
  local_product(sDy, lay.ldX, sC, lay.ldN, static_cast<T*>(d.S1) + so, rows, NP);
  if (pt == 0 && threadIdx.x == 0)
    d.dec[(int64_t(b) * d.H + h) * d.nc + c] = sc.seg[kQ - 1] == 0 ? __expf(sc.cs[kQ - 1]) : 0.f;
}

namespace {
template <typename T>
__device__ __forceinline__ float4 ld4(const T* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const float2 lo = mma::unpack2<T>(u.x), hi = mma::unpack2<T>(u.y);
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}
template <typename T>
__device__ __forceinline__ void st4(T* p, float4 v) {
  *reinterpret_cast<uint2*>(p) = make_uint2(mma::pack2<T>(v.x, v.y), mma::pack2<T>(v.z, v.w));
}
}  // namespace

// grid (⌈PP·NP/4/256⌉, batch·H, 2): z = 0 the forward pass over S0, z = 1 the reverse pass over S1.
// The loads of the next kAhead chunks are in flight while a chunk is passed (they do not depend
// on the running state).
template <typename T>
__global__ void __launch_bounds__(256) ssd_bwd_pass_kernel(Dev d) {
  constexpr int kAhead = 4;
  const bool rev = blockIdx.z == 1;
  const int bh = blockIdx.y, b = bh / d.H, h = bh % d.H;
  const int64_t per = int64_t(d.PP) * d.NP;
  const int64_t e = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (e >= per) return;
  const int p = int(e / d.NP), n = int(e % d.NP);
  const float* seed = rev ? d.dfinal : d.h0;
  const int64_t state_off = ((int64_t(b) * d.H + h) * d.P + p) * d.N + n;
  float4 hv;
  float* hp = &hv.x;
  for (int k = 0; k < 4; ++k) hp[k] = (seed && p < d.P && n + k < d.N) ? seed[state_off + k] : 0.f;
  T* st = static_cast<T*>(rev ? d.S1 : d.S0) + int64_t(bh) * d.nc * per + e;
  const float* dec = d.dec + int64_t(bh) * d.nc;
  const int nc = d.nc;
  auto chunk = [&](int i) { return rev ? nc - 1 - i : i; };  // i-th chunk visited
  float4 next[kAhead];
#pragma unroll
  for (int k = 0; k < kAhead; ++k)
    if (k < nc) next[k] = ld4(st + chunk(k) * per);
  for (int i0 = 0; i0 < nc; i0 += kAhead) {
#pragma unroll
    for (int k = 0; k < kAhead; ++k) {
      const int i = i0 + k;
      if (i >= nc) break;
      const int cc = chunk(i);
      const float4 s = next[k];
      if (i + kAhead < nc) next[k] = ld4(st + chunk(i + kAhead) * per);  // before the store: same slot never
      st4(st + cc * per, hv);
      const float a = dec[cc];
      hv = make_float4(a * hv.x + s.x, a * hv.y + s.y, a * hv.z + s.z, a * hv.w + s.w);
    }
  }
  if (rev && d.dh0)
    for (int k = 0; k < 4; ++k)
      if (p < d.P && n + k < d.N) d.dh0[state_off + k] = hp[k];
}

template <typename T>
void launch_backward_states_local(const Dev& d, cudaStream_t stream, StageTimer& timer) {
  const LocalLayout lay(d.NP, sizeof(T), d.z != nullptr);
  set_smem(ssd_bwd_local_kernel<T>, lay.bytes, "ssdChunkScanBackward: shared memory");
  const int ptiles = (d.PP + kPT - 1) / kPT;
  ssd_bwd_local_kernel<T><<<dim3(d.nc, d.H * ptiles, d.batch), kThreads, lay.bytes, stream>>>(d);
  check_launch("ssdChunkScanBackward chunk-local states");
  timer.mark("chunk-local states and dL/dstate");
  const int64_t per4 = int64_t(d.PP) * d.NP / 4;
  ssd_bwd_pass_kernel<T><<<dim3(unsigned((per4 + 255) / 256), d.batch * d.H, 2), 256, 0, stream>>>(d);
  check_launch("ssdChunkScanBackward state passing");
  timer.mark("state passing, both ways");
}

template void launch_backward_states_local<__half>(const Dev&, cudaStream_t, StageTimer&);
template void launch_backward_states_local<__nv_bfloat16>(const Dev&, cudaStream_t, StageTimer&);

}  // namespace ss::cuda::ssd
