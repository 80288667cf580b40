// SSD backward, 16-bit inputs: the chunk states the chunk-gradient kernels read, for 64-token
// chunks (d.Q), in two launches:
//   1. ssd_bwd_scalars_kernel, one 64-thread block per (chunk, head, batch): the token weights of
//      the chunk products, w_fwd = e_out·dt' and w_rev = e_in, and the chunk's decay exp(cs_end)
//      (0 when a sequence restarts inside it), to global scratch;
//   2. ssd_bwd_state_seq_kernel, one block per (64-row headdim tile, head, batch, direction), walks
//      the chunks with the state in mma accumulators (f32, registers):
//        forward  S0_c = state entering chunk c;  H ← dec_c·H + xᵀ·diag(w_fwd)·B
//        reverse  S1_c = dL/dH at chunk c's end;  G ← dec_c·G + dyᵀ·diag(w_rev)·C  (from
//                 dFinalStates, visiting the chunks backwards; the last G is dInitialStates)
//      Each chunk's tiles are copied by cp.async while the previous chunk is multiplied, so a
//      step costs one barrier and one 64-token product; S0 / S1 are written once (16-bit), nothing
//      chunk-local goes through global memory.
#include "cuda/check.cuh"
#include "cuda/mma_tile.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_bwd_tiles.cuh"
#include "cuda/ssd_launch.h"

namespace ss::cuda::ssd {

namespace {

constexpr int kQ = 64;   // tokens per chunk (Traits<T>::Q of the 16-bit types)
constexpr int kPT = 64;  // headdim rows per block

// Per buffer: the chunk's X (x, or dout), Z (z, reverse with z only), W (B or C), weights.
struct SeqLayout {
  int ldX, ldN;
  size_t oX, oZ, oW, oWt, buf_bytes, bytes;
  __host__ __device__ SeqLayout(int NP, int ts, bool z) {
    ldX = kPT + 8, ldN = NP + 8;
    size_t o = 0;
    auto place = [&](size_t n) { const size_t at = o; o = align128(o + n); return at; };
    oX = place(size_t(kQ) * ldX * ts);
    oZ = place(z ? size_t(kQ) * ldX * ts : 0);
    oW = place(size_t(kQ) * ldN * ts);
    oWt = place(size_t(kQ) * 4);
    buf_bytes = o;
    bytes = 2 * o;
  }
};

}  // namespace

// grid (nc, H, batch), 64 threads. Scratch rows (batch, H, Lpad) for the weights, (batch, H, nc)
// for the decays.
__global__ void __launch_bounds__(kQ) ssd_bwd_scalars_kernel(Dev d, float* w_fwd, float* w_rev) {
  __shared__ float dtp[kQ], der[kQ], cs[kQ], ein[kQ], eout[kQ];
  __shared__ int seg[kQ];
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int t0 = c * kQ, q = min(kQ, d.L - t0);
  chunk_scalars<kQ>(d, b, h, t0, q, dtp, der, cs, seg, ein, eout);
  const int i = threadIdx.x;
  const int64_t row = (int64_t(b) * d.H + h) * d.Lpad + t0 + i;
  w_fwd[row] = eout[i] * dtp[i];  // dt' is 0 past the end
  w_rev[row] = ein[i];            // dy is 0 past the end
  if (i == 0) d.dec[(int64_t(b) * d.H + h) * d.nc + c] = seg[kQ - 1] == 0 ? __expf(cs[kQ - 1]) : 0.f;
}

// grid (⌈PP/64⌉, H, 2·batch): blockIdx.z = 2·b + direction (1: reverse). 128·CS threads: warp w
// owns state rows 16·(w % 4) of the tile and the w / 4-th of CS column parts, up to 8 16-column
// groups (CS = 1: dstate ≤ 128, each token-weighted A fragment formed once; CS = 2: dstate ≤ 256).
// NB: blocks per state tile along dstate (2: each block NP / 2 columns, NP a multiple of 32 —
// half the accumulators (127 registers: 4 blocks per SM) and twice the blocks, for small grids,
// at the price of reading the x / dout / z tiles twice; grid.x = ⌈PP/64⌉·NB).
template <typename T, int CS, int NB>
__global__ void __launch_bounds__(128 * CS, NB == 2 ? 4 : 1)
    ssd_bwd_state_seq_kernel(Dev d, const float* w_fwd, const float* w_rev) {
  using namespace mma;
  constexpr int NT = 128 * CS, kMaxGroups = 8 / NB;
  extern __shared__ __align__(128) unsigned char smem[];
  const bool rev = blockIdx.z % 2 == 1;
  const int b = blockIdx.z / 2, h = blockIdx.y, pt = blockIdx.x / NB, g = h / d.hpg;
  const int NP = d.NP, P = d.P, nc = d.nc;
  const int nwb = NP / NB, nb0 = int(blockIdx.x % NB) * nwb;  // this block's dstate columns
  const bool gate = rev && d.z != nullptr;
  const SeqLayout lay(nwb, sizeof(T), gate);
  const int p0 = pt * kPT, pw = min(kPT, P - p0);
  const int rows = min(kPT, d.PP - p0);  // state rows of this tile (PP is a multiple of 32 only)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, tq = lane % 4;
  const int m0 = (warp % 4) * 16;
  const int ng = nwb / 16, per = (ng + CS - 1) / CS;
  const int g0 = (warp / 4) * per, g_count = max(0, min(per, ng - g0));  // this warp's column groups
  const bool active = m0 < rows;

  const T* Xg = static_cast<const T*>(rev ? d.dout : d.x);
  const T* Zg = static_cast<const T*>(d.z);
  const T* Wg = static_cast<const T*>(rev ? d.C : d.B);
  const float* wt = (rev ? w_rev : w_fwd) + (int64_t(b) * d.H + h) * d.Lpad;
  const float* dec = d.dec + (int64_t(b) * d.H + h) * nc;
  T* out = static_cast<T*>(rev ? d.S1 : d.S0) + (int64_t(b) * d.H + h) * nc * d.PP * NP + int64_t(p0) * NP;
  const int64_t xs = int64_t(d.H) * P, bs = int64_t(d.G) * d.N;
  auto chunk_of = [&](int i) { return rev ? nc - 1 - i : i; };  // i-th chunk visited
  const TileWalk<NT, T> walk_n(nwb);  // the B / C tiles' copy walk, made once
  auto load_chunk = [&](int i) {
    const int c = chunk_of(i), t0 = c * kQ, q = min(kQ, d.L - t0);
    unsigned char* base = smem + (i & 1) * lay.buf_bytes;
    const int64_t xo = ((int64_t(b) * d.L + t0) * d.H + h) * P + p0;
    tile_copy<NT>(reinterpret_cast<T*>(base + lay.oX), lay.ldX, Xg + xo, xs, q, kQ, pw, kPT);
    if (gate) tile_copy<NT>(reinterpret_cast<T*>(base + lay.oZ), lay.ldX, Zg + xo, xs, q, kQ, pw, kPT);
    tile_copy<NT>(reinterpret_cast<T*>(base + lay.oW), lay.ldN, Wg + ((int64_t(b) * d.L + t0) * d.G + g) * d.N + nb0, bs,
                  q, kQ, min(nwb, d.N - nb0), nwb, walk_n);
    tile_copy<NT>(reinterpret_cast<float*>(base + lay.oWt), kQ, wt + t0, kQ, 1, 1, kQ, kQ);
    __pipeline_commit();
  };

  // the state at this warp's fragments, from h0 / dFinalStates; each_state(f) calls f(element,
  // p, n) on the elements of this warp's column groups with their headdim and dstate indices
  float acc[kMaxGroups][2][4] = {};
  auto each_state = [&](auto&& f) {
#pragma unroll
    for (int gi = 0; gi < kMaxGroups; ++gi) {
      if (gi >= g_count) break;
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i)
          f(acc[gi][j][i], p0 + m0 + gq + (i >> 1) * 8, nb0 + (g0 + gi) * 16 + j * 8 + tq * 2 + (i & 1));
    }
  };
  const int64_t state0 = (int64_t(b) * d.H + h) * P;  // row of (b, h, p = 0) in h0 / dFinalStates / dh0
  const float* seed = rev ? d.dfinal : d.h0;
  if (seed)
    each_state([&](float& a, int p, int n) {
      if (p < P && n < d.N) a = seed[(state0 + p) * d.N + n];
    });

  load_chunk(0);
  float a_next = __ldg(dec + chunk_of(0));
  for (int i = 0; i < nc; ++i) {
    const int c = chunk_of(i);
    const float a = a_next;
    cp_async_wait();
    __syncthreads();  // chunk i's tiles are visible; buffer (i + 1) % 2 is free (read in step i − 1)
    if (i + 1 < nc) load_chunk(i + 1), a_next = __ldg(dec + chunk_of(i + 1));
    unsigned char* base = smem + (i & 1) * lay.buf_bytes;
    const T* sX = reinterpret_cast<const T*>(base + lay.oX);
    const T* sZ = reinterpret_cast<const T*>(base + lay.oZ);
    const T* sW = reinterpret_cast<const T*>(base + lay.oW);
    const float* sWt = reinterpret_cast<const float*>(base + lay.oWt);
    if (!active) continue;
    // the state at this chunk's boundary, then H ← a·H + (this chunk's product)
    T* o = out + int64_t(c) * d.PP * NP;
#pragma unroll
    for (int gi = 0; gi < kMaxGroups; ++gi) {
      if (gi >= g_count) break;
      {  // 16 bytes per lane (whole 32-byte sectors; 4-byte stores were 0.25 ms slower here)
        uint32_t v[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) v[k] = pack2<T>(acc[gi][k & 1][(k >> 1) * 2], acc[gi][k & 1][(k >> 1) * 2 + 1]);
        quad_transpose(v, tq);
        const int p = m0 + gq + (tq >> 1) * 8, n = nb0 + (g0 + gi) * 16 + (tq & 1) * 8;
        *reinterpret_cast<uint4*>(o + int64_t(p) * NP + n) = make_uint4(v[0], v[1], v[2], v[3]);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[gi][j][e] *= a;
    }
    const RC ra = a_addr_t(lane);
    const RC rb = b_addr_kn(lane);
    // this lane's 32-bit shared addresses at k = 0, stepped by constants (formed inside the loop,
    // the layout offsets were recomputed, 64-bit, for every 16 tokens)
    const uint32_t xa = smem_addr(sX + ra.r * lay.ldX + m0 + ra.c), za = smem_addr(sZ + ra.r * lay.ldX + m0 + ra.c);
    const uint32_t wa = smem_addr(sW + rb.r * lay.ldN + g0 * 16 + rb.c);
    const uint32_t xstep = 16 * lay.ldX * sizeof(T), wstep = 16 * lay.ldN * sizeof(T);
#pragma unroll
    for (int kk = 0; kk < kQ / 16; ++kk) {
      // A = Xᵀ (rows p, k = tokens) with the token weights (and dy = dout·silu(z)) applied
      uint32_t af[4];
      ldsm_x4_t(af, xa + kk * xstep);
      uint32_t zf[4];
      if (gate) ldsm_x4_t(zf, za + kk * xstep);
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int k = kk * 16 + tq * 2 + (r >> 1) * 8;  // a[0], a[1]: k = 2t, 2t+1; a[2], a[3]: + 8
        const float2 w = *reinterpret_cast<const float2*>(sWt + k);
        float w0 = w.x, w1 = w.y;
        if (gate) {
          const float2 zv = unpack2<T>(zf[r]);
          w0 *= silu_f(zv.x), w1 *= silu_f(zv.y);
        }
        af[r] = mul2<T>(af[r], pack2<T>(w0, w1));  // the weights rounded to T, one packed multiply
      }
#pragma unroll
      for (int gi = 0; gi < kMaxGroups; ++gi) {
        if (gi >= g_count) break;
        uint32_t bb[4];
        ldsm_x4_t(bb, wa + kk * wstep + gi * 16 * uint32_t(sizeof(T)));
        const uint32_t b0[2] = {bb[0], bb[1]}, b1[2] = {bb[2], bb[3]};
        mma16816<T>(acc[gi][0], af, b0);
        mma16816<T>(acc[gi][1], af, b1);
      }
    }
  }
  if (rev && d.dh0 && active)
    each_state([&](float& a, int p, int n) {
      if (p < P && n < d.N) d.dh0[(state0 + p) * d.N + n] = a;
    });
}

namespace {
const bool g_preload = (cuda::register_kernel_preload(
                            preload_kernels<ssd_bwd_scalars_kernel, ssd_bwd_state_seq_kernel<__half, 1, 1>,
                                            ssd_bwd_state_seq_kernel<__half, 1, 2>, ssd_bwd_state_seq_kernel<__half, 2, 1>,
                                            ssd_bwd_state_seq_kernel<__nv_bfloat16, 1, 1>, ssd_bwd_state_seq_kernel<__nv_bfloat16, 1, 2>,
                                            ssd_bwd_state_seq_kernel<__nv_bfloat16, 2, 1>>),
                        true);
}  // namespace

template <typename T>
void launch_backward_states_seq(const Dev& d, float* weights, cudaStream_t stream, StageTimer& timer) {
  float* w_fwd = weights;
  float* w_rev = weights + size_t(d.batch) * d.H * d.Lpad;
  ssd_bwd_scalars_kernel<<<dim3(d.nc, d.H, d.batch), kQ, 0, stream>>>(d, w_fwd, w_rev);
  check_launch("ssdChunkScanBackward chunk scalars");
  const int cs = d.NP <= 128 ? 1 : 2;  // column parts per block
  const int ptiles = (d.PP + kPT - 1) / kPT;
  // Two blocks per state tile (dstate halves, whole 16-column groups) when the grid would give
  // fewer than two blocks per SM: measured on the H100, 1 × 2048 tokens × 80 heads 0.176 →
  // 0.138 ms; no gain at 4 × 4096 (0.752 / 0.748) and a loss at 16 × 512 (0.323 / 0.348).
  const bool small = int64_t(ptiles) * d.H * 2 * d.batch < 2 * int64_t(sm_count());
  const int nb = (cs == 1 && d.NP % 32 == 0 && d.NP >= 64 && small) ? 2 : 1;
  const SeqLayout lay(d.NP / nb, sizeof(T), d.z != nullptr);
  auto kernel = cs == 2 ? ssd_bwd_state_seq_kernel<T, 2, 1> : nb == 2 ? ssd_bwd_state_seq_kernel<T, 1, 2> : ssd_bwd_state_seq_kernel<T, 1, 1>;
  if (cs == 2)
    set_smem_once<ssd_bwd_state_seq_kernel<T, 2, 1>>(lay.bytes);
  else if (nb == 2)
    set_smem_once<ssd_bwd_state_seq_kernel<T, 1, 2>>(lay.bytes);
  else
    set_smem_once<ssd_bwd_state_seq_kernel<T, 1, 1>>(lay.bytes);
  kernel<<<dim3(ptiles * nb, d.H, 2 * d.batch), 128 * cs, lay.bytes, stream>>>(d, w_fwd, w_rev);
  check_launch("ssdChunkScanBackward chunk states");
  timer.mark("states and dL/dstate of every chunk");
}

template void launch_backward_states_seq<__half>(const Dev&, float*, cudaStream_t, StageTimer&);
template void launch_backward_states_seq<__nv_bfloat16>(const Dev&, float*, cudaStream_t, StageTimer&);

}  // namespace ss::cuda::ssd
