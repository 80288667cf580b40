// Shared pieces of the SSD CUDA kernels: device parameters, kernel traits, shared-memory
// layouts, a block-wide matrix product over on-chip tiles, and the per-chunk scalars
// (dt', cumulative sums of dt'·A, sequence segments).
//
// Matrix products: bf16/f16 operands on tensor cores (wmma 16×16×16, f32 accumulation);
// f32 operands on plain FMA (exact f32, no tf32). Both take the same arguments, so every kernel
// is written once over the storage type T.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#include <cuda_pipeline.h>
#include <cstdint>
#include <type_traits>
#include "cuda/types.cuh"
#include "ops/ssd.h"

namespace ss::cuda::ssd {

constexpr int kThreads = 256;  // 8 warps per block
constexpr int kWarps = kThreads / 32;

// Tokens per chunk of the backward (and of the float32 forward): 64 for 16-bit inputs
// (tensor-core tiles), 32 for f32 (its operands take twice the shared memory). Results do not
// depend on it beyond rounding.
template <typename T> struct Traits { static constexpr int Q = 64; };
template <> struct Traits<float> { static constexpr int Q = 32; };
// Tokens per chunk of the 16-bit forward (ssd_fwd_mma.cu).
constexpr int kChunkedQ = 256;

__host__ __device__ constexpr int round16(int v) { return (v + 15) / 16 * 16; }
__host__ __device__ constexpr size_t align128(size_t v) { return (v + 127) / 128 * 128; }

struct Dev {
  int batch, L, H, P, N, G, hpg, nc, Q;
  int NP;      // dstate padded to 16
  int PT;      // headdim tile of the forward / state kernels (multiple of 16)
  int PP;      // headdim padded to whole tiles (rows of the chunk-state scratch)
  int PC;      // headdim padded to 16 (the chunk-gradient kernel takes all of it)
  int Lpad;    // nc·Q (rows of the dB/dC partials)
  int HB, nhb, nslots;  // heads per backward block, runs per group, partial slots (G·nhb)
  // x, z (rows of H·P), B, C (rows of G·N), dt (rows of H): the forward reads them strided (views
  // of wider buffers, in place); the backward's are contiguous (their strides say so too; its own
  // kernels, ssd_bwd*.cu, assume it for x, z, B, C). dt in dt_type (float32, float16, bfloat16),
  // read through dt_at. dout, y and the gradients are contiguous.
  const void *x, *z, *B, *C, *dout, *dt;
  SsdTokenStrides x_str, z_str, B_str, C_str, dt_str;
  DType dt_type;
  const float *A, *D, *dt_bias, *h0, *dfinal;
  const int* seq_idx;
  bool d_per_channel, softplus, clamp;
  float dt_min, dt_max;
  void* y;
  float* final_states;
  float* CB;  // (batch, nc, G, Q, Q): C·Bᵀ of every chunk, lower-triangular tiles (shared by a group's heads)
  void* S0;  // (batch, H, nc, PP, NP) T: state entering each chunk
  void* S1;  // (batch, H, nc, PP, NP) T: dL/d(state) at each chunk's end
  void* St;    // 16-bit forward: (batch, H, nc, PP, NP) T: the state entering each kChunkedQ-token chunk
  float* dec;  // 16-bit backward: (batch, H, nc) decay across each chunk
  bool stage_states;  // chunk-gradient kernel: S0/S1 tiles copied to shared memory (when they fit)
  void *dx, *dz;
  float *ddt, *dBh, *dCh, *dA_part, *dbias_part, *dD_part, *dh0;
  float *dB, *dC, *dA, *dD, *ddt_bias;
};

// ---------------------------------------------------------------------------------------------
// Shared-memory layouts (byte offsets), computed the same way on the host and the device.

struct CbLayout {  // C·Bᵀ per (batch, chunk, group)
  int ldN;
  size_t sB, sC, bytes;
  __host__ __device__ CbLayout(int Q, int NP, int ts) {
    ldN = NP + 8;
    size_t o = 0;
    sB = o, o = align128(o + size_t(Q) * ldN * ts);
    sC = o, o = align128(o + size_t(Q) * ldN * ts);
    bytes = o;
  }
};

// The per-step chunk scalars the forward, state and gradient kernels all stage (Q floats each):
// dt', its softplus derivative, the cumulative sum of dt'·A, the segment index and the decays
// into and out of the chunk.
struct ChunkScalars {
  size_t sDtp, sDer, sCs, sSeg, sEin, sEout;
  __host__ __device__ size_t place_scalars(size_t o, int Q) {
    size_t* fields[6] = {&sDtp, &sDer, &sCs, &sSeg, &sEin, &sEout};
    for (size_t* f : fields) *f = o, o = align128(o + size_t(Q) * 4);
    return o;
  }
};

// Pointers to those scalars in a kernel's shared memory.
struct ScalarPtrs {
  float *dtp, *der, *cs;
  int* seg;
  float *ein, *eout;
  __device__ ScalarPtrs(unsigned char* smem, const ChunkScalars& l)
      : dtp(reinterpret_cast<float*>(smem + l.sDtp)),
        der(reinterpret_cast<float*>(smem + l.sDer)),
        cs(reinterpret_cast<float*>(smem + l.sCs)),
        seg(reinterpret_cast<int*>(smem + l.sSeg)),
        ein(reinterpret_cast<float*>(smem + l.sEin)),
        eout(reinterpret_cast<float*>(smem + l.sEout)) {}
};

struct FwdLayout : ChunkScalars {  // the float32 forward
  int ldN, ldX, ldMT, ldH, ldY;
  size_t sB, sC, sX, sMT, sH, sY, sY2, bytes;
  __host__ __device__ FwdLayout(int Q, int NP, int PT, int ts) {
    ldN = NP + 8, ldX = PT + 8, ldMT = Q + 8, ldH = NP + 4, ldY = PT + 4;
    size_t o = 0;
    sB = o, o = align128(o + size_t(Q) * ldN * ts);
    sC = o, o = align128(o + size_t(Q) * ldN * ts);
    sX = o, o = align128(o + size_t(Q) * ldX * ts);
    sMT = o, o = align128(o + size_t(Q) * ldMT * ts);
    sH = o, o = align128(o + size_t(PT) * ldH * 4);
    sY = o, o = align128(o + size_t(Q) * ldY * 4);
    sY2 = o, o = align128(o + size_t(Q) * ldY * 4);
    o = place_scalars(o, Q);
    bytes = o;
  }
};

struct StateLayout : ChunkScalars {  // reverse state pass of the float32 backward
  int ldN, ldX, ldG;
  size_t sC, sDy, sG, bytes;
  __host__ __device__ StateLayout(int Q, int NP, int PT, int ts) {
    ldN = NP + 8, ldX = PT + 8, ldG = NP + 4;
    size_t o = 0;
    sC = o, o = align128(o + size_t(Q) * ldN * ts);
    sDy = o, o = align128(o + size_t(Q) * ldX * ts);
    sG = o, o = align128(o + size_t(PT) * ldG * 4);
    o = place_scalars(o, Q);
    bytes = o;
  }
};

struct GradLayout : ChunkScalars {  // chunk gradients; bytes_staged: with the chunk's S0/S1 tiles staged (sH0, sG)
  int ldN, ldP, ldM, ldMT, ldF, ldS;
  size_t sB, sC, sDtx, sDy, sM, sN2, r7, sDYX, sF2, sDtxE, sDyE, sF1, sRow, sCol, sV, sU, sDdtp, sRed, bytes, sH0, sG,
      bytes_staged;
  __host__ __device__ GradLayout(int Q, int NP, int PC, int ts) {
    ldN = NP + 8, ldP = PC + 8, ldM = Q + 4, ldMT = Q + 8, ldF = PC + 4;
    size_t o = 0;
    sB = o, o = align128(o + size_t(Q) * ldN * ts);
    sC = o, o = align128(o + size_t(Q) * ldN * ts);
    sDtx = o, o = align128(o + size_t(Q) * ldP * ts);
    sDy = o, o = align128(o + size_t(Q) * ldP * ts);
    sM = o, o = align128(o + size_t(Q) * ldMT * ts);
    sN2 = o, o = align128(o + size_t(Q) * ldMT * ts);
    // r7: dYX (then W, f32), later y_intra (f32), later {dtx·e2, dy·e1} (T)
    r7 = o;
    const size_t tBytes = align128(size_t(Q) * ldP * ts);
    sDYX = r7;
    sF2 = r7;
    sDtxE = r7, sDyE = r7 + tBytes;
    size_t r7size = align128(size_t(Q) * ldM * 4);
    if (align128(size_t(Q) * ldF * 4) > r7size) r7size = align128(size_t(Q) * ldF * 4);
    if (2 * tBytes > r7size) r7size = 2 * tBytes;
    o = r7 + r7size;
    sF1 = o, o = align128(o + size_t(Q) * ldF * 4);
    o = place_scalars(o, Q);
    sRow = o, o = align128(o + size_t(Q) * 4);
    sCol = o, o = align128(o + size_t(Q) * 4);
    sV = o, o = align128(o + size_t(Q) * 4);
    sU = o, o = align128(o + size_t(Q) * 4);
    sDdtp = o, o = align128(o + size_t(Q) * 4);
    sRed = o, o = align128(o + size_t(kThreads) * 4);
    bytes = o;
    ldS = NP + 8;
    sH0 = o, o = align128(o + size_t(PC) * ldS * ts);
    sG = o, o = align128(o + size_t(PC) * ldS * ts);
    bytes_staged = o;
  }
};

// ---------------------------------------------------------------------------------------------
// Block-wide product C = beta·C + A·B over tiles (shared or global memory).
// A is M×K (A_ROW: A[m·lda + k], else A[k·lda + m]); B is K×N (B_ROW: B[k·ldb + n], else B[n·ldb + k]).
// M, N, K multiples of 16. beta == 0 overwrites C. Tri says which parts are structurally zero:

enum class Tri {
  Full,       // everything
  SkipUpper,  // output tiles above the diagonal are not needed (left unwritten)
  LowerA,     // A is lower triangular: K runs up to the end of the row tile
  UpperA,     // A is upper triangular: K starts at the row tile
};

__device__ __forceinline__ void k_range(Tri tri, int mt, int K, int& k0, int& k1) {
  k0 = tri == Tri::UpperA ? mt * 16 : 0;
  k1 = tri == Tri::LowerA ? min(K, (mt + 1) * 16) : K;
}

template <typename T, bool A_ROW, bool B_ROW, Tri TRI>
__device__ void block_gemm(int M, int N, int K, const T* A, int lda, const T* B, int ldb, float* C, int ldc, float beta) {
  const int tiles_m = M / 16, tiles_n = N / 16;
  if constexpr (std::is_same_v<T, float>) {
    // Exact f32: each thread owns a 16-column strip of one row... of a 16×16 tile, 1 element per pass.
    for (int idx = threadIdx.x; idx < M * N; idx += kThreads) {
      const int m = idx / N, n = idx % N;
      const int mt = m / 16;
      if (TRI == Tri::SkipUpper && n / 16 > mt) continue;
      int k0, k1;
      k_range(TRI, mt, K, k0, k1);
      float acc = beta != 0.f ? beta * C[size_t(m) * ldc + n] : 0.f;
      for (int k = k0; k < k1; ++k) {
        const float a = A_ROW ? A[size_t(m) * lda + k] : A[size_t(k) * lda + m];
        const float b = B_ROW ? B[size_t(k) * ldb + n] : B[size_t(n) * ldb + k];
        acc = fmaf(a, b, acc);
      }
      C[size_t(m) * ldc + n] = acc;
    }
  } else {
    using namespace nvcuda;
    using ALay = std::conditional_t<A_ROW, wmma::row_major, wmma::col_major>;
    using BLay = std::conditional_t<B_ROW, wmma::row_major, wmma::col_major>;
    const int warp = threadIdx.x / 32;
    for (int tile = warp; tile < tiles_m * tiles_n; tile += kWarps) {
      const int mt = tile / tiles_n, nt = tile % tiles_n;
      if (TRI == Tri::SkipUpper && nt > mt) continue;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      float* cp = C + size_t(mt) * 16 * ldc + nt * 16;
      if (beta != 0.f) {
        wmma::load_matrix_sync(acc, cp, ldc, wmma::mem_row_major);
        for (int i = 0; i < acc.num_elements; ++i) acc.x[i] *= beta;
      } else {
        wmma::fill_fragment(acc, 0.f);
      }
      int k0, k1;
      k_range(TRI, mt, K, k0, k1);
      for (int k = k0; k < k1; k += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, ALay> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, BLay> b;
        wmma::load_matrix_sync(a, A_ROW ? A + size_t(mt) * 16 * lda + k : A + size_t(k) * lda + mt * 16, lda);
        wmma::load_matrix_sync(b, B_ROW ? B + size_t(k) * ldb + nt * 16 : B + size_t(nt) * 16 * ldb + k, ldb);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(cp, acc, ldc, wmma::mem_row_major);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Per-chunk scalars for (b, h): dt' (0 past the end), d dt'/d dt, inclusive cumsum of dt'·A and
// the segment (restarts counted from the chunk's start). Rows past the end repeat the last
// row's cumsum and segment, so they add nothing. Deterministic (fixed-order warp scan).

__device__ __forceinline__ float dt_forward(const Dev& d, float raw, float* deriv) {
  float v = raw, g = 1.f;
  if (d.softplus) {
    g = 1.f / (1.f + __expf(-v));
    v = v <= 20.f ? log1pf(__expf(v)) : v;
  }
  if (d.clamp) {
    if (v < d.dt_min) v = d.dt_min, g = 0.f;
    else if (v > d.dt_max) v = d.dt_max, g = 0.f;
  }
  *deriv = g;
  return v;
}

// Raw dt of (batch b, token t, head h), in float32.
__device__ __forceinline__ float dt_at(const Dev& d, int b, int64_t t, int h) {
  const int64_t i = d.dt_str.at(b, t) + h;
  switch (d.dt_type) {
    case DType::Float16: return __half2float(__ldg(static_cast<const __half*>(d.dt) + i));
    case DType::BFloat16: return __bfloat162float(__ldg(static_cast<const __nv_bfloat16*>(d.dt) + i));
    default: return __ldg(static_cast<const float*>(d.dt) + i);
  }
}

// Also the decay factors every kernel needs per row: e_in[t] = exp(cs_t) while t is on the
// incoming sequence (else 0), e_out[s] = exp(cs_end − cs_s) for s on the outgoing one (else 0).
// Heads h_begin .. h_begin + h_count − 1 at once (head i's scalars at i·Q of every array): thread
// i·Q + t computes token t of head i, warp i scans head i; the block needs h_count·Q threads
// and h_count warps at least. ONE (h_count == 1) folds the head indices to constants: without
// it the single-head kernels compile to different register allocations (ssd_fwd_kernel<float>
// 64 → 94 registers).
template <int Q, bool ONE = false>
__device__ void chunk_scalars_heads(const Dev& d, int b, int h_begin, int h_count, int t0, int q, float* sDtp,
                                    float* sDer, float* sCs, int* sSeg, float* sEin, float* sEout) {
  const int tid = threadIdx.x;
  const bool mine = tid < h_count * Q;
  const int hh = ONE ? 0 : tid / Q, i = ONE ? tid : tid % Q;
  if (mine) {
    const int h = h_begin + hh;
    float dtp = 0.f, der = 0.f;
    int flag = 0;
    if (i < q) {
      const int64_t t = t0 + i;
      dtp = dt_forward(d, dt_at(d, b, t, h) + (d.dt_bias ? d.dt_bias[h] : 0.f), &der);
      if (d.seq_idx && t > 0) flag = d.seq_idx[int64_t(b) * d.L + t] != d.seq_idx[int64_t(b) * d.L + t - 1];
    }
    sDtp[tid] = dtp;
    sDer[tid] = der;
    sCs[tid] = dtp * d.A[h];
    sSeg[tid] = flag;
  }
  __syncthreads();
  const int warp = ONE ? 0 : tid / 32, lane = ONE ? tid : tid % 32;
  if (tid < 32 * h_count) {
    constexpr int E = Q / 32;  // elements per lane, contiguous
    float* cs = sCs + warp * Q;
    int* seg = sSeg + warp * Q;
    float a[E];
    int s[E];
    float fa = 0.f;
    int fs = 0;
    for (int e = 0; e < E; ++e) {
      fa += cs[lane * E + e], fs += seg[lane * E + e];
      a[e] = fa, s[e] = fs;
    }
    float xa = fa;
    int xs = fs;
    for (int off = 1; off < 32; off *= 2) {
      const float ya = __shfl_up_sync(0xffffffffu, xa, off);
      const int ys = __shfl_up_sync(0xffffffffu, xs, off);
      if (lane >= off) xa += ya, xs += ys;
    }
    const float pa = xa - fa;  // exclusive prefix of this lane
    const int ps = xs - fs;
    for (int e = 0; e < E; ++e) cs[lane * E + e] = pa + a[e], seg[lane * E + e] = ps + s[e];
  }
  __syncthreads();
  if (mine) {
    const int last = hh * Q + Q - 1;
    sEin[tid] = sSeg[tid] == 0 ? __expf(sCs[tid]) : 0.f;
    sEout[tid] = sSeg[tid] == sSeg[last] ? __expf(sCs[last] - sCs[tid]) : 0.f;
  }
  __syncthreads();
}

// One head's chunk scalars (the first Q threads and the first warp do the work).
template <int Q>
__device__ __forceinline__ void chunk_scalars(const Dev& d, int b, int h, int t0, int q, float* sDtp, float* sDer,
                                              float* sCs, int* sSeg, float* sEin, float* sEout) {
  chunk_scalars_heads<Q, true>(d, b, h, 1, t0, q, sDtp, sDer, sCs, sSeg, sEin, sEout);
}

// Tile loads with conversion-free copies and zero padding: dst[r][c] = src[r·stride + c].
// 16-byte asynchronous copies (cp.async: every copy of the tile in flight at once, none waiting
// on a shared-memory store) when every row is whole and aligned (the common case: dstate and
// headdim multiples of 8), else element by element. WAIT: the calling thread's copies are
// complete on return (a barrier publishes them); else they may still be in flight until the
// thread calls cp_async_wait() (before that barrier): other work overlaps them.
__device__ __forceinline__ void cp_async_wait() { __pipeline_wait_prior(0); }

template <bool WAIT = true, typename T>
__device__ void load_tile(T* dst, int ldd, const T* src, int64_t stride, int rows_valid, int rows, int cols_valid, int cols) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = cols_valid == cols && cols % V == 0 && ldd % V == 0 && stride % V == 0 &&
                   (reinterpret_cast<uintptr_t>(src) % 16) == 0;
  if (vec) {
    const int vcols = cols / V;
    for (int idx = threadIdx.x; idx < rows * vcols; idx += kThreads) {
      const int r = idx / vcols, c = (idx % vcols) * V;
      T* to = dst + r * ldd + c;
      if (r < rows_valid)
        __pipeline_memcpy_async(to, src + int64_t(r) * stride + c, 16);
      else
        *reinterpret_cast<uint4*>(to) = make_uint4(0u, 0u, 0u, 0u);  // all-zero bits: +0 in every float type
    }
    __pipeline_commit();
    if (WAIT) cp_async_wait();
    return;
  }
  for (int idx = threadIdx.x; idx < rows * cols; idx += kThreads) {
    const int r = idx / cols, c = idx % cols;
    dst[r * ldd + c] = (r < rows_valid && c < cols_valid) ? __ldg(src + int64_t(r) * stride + c) : from_float<T>(0.f);
  }
}

__device__ __forceinline__ float silu_f(float z) { return z / (1.f + __expf(-z)); }

// dL/dy from dL/d(out) (out = y·silu(z) when z is given); *zval gets z.
// Read-only loads (__ldg) throughout: plain loads from generic pointers may not be moved past
// shared-memory stores, which serialises load → store loops on the global latency.
template <typename T>
__device__ __forceinline__ float grad_out(const Dev& d, int64_t off, float* zval) {
  const float go = to_float(__ldg(static_cast<const T*>(d.dout) + off));
  if (!d.z) return go;
  const float zv = to_float(__ldg(static_cast<const T*>(d.z) + off));
  *zval = zv;
  return go * silu_f(zv);
}

}  // namespace ss::cuda::ssd
