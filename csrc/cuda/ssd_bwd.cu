// SSD backward on CUDA, all deterministic (no float atomics; every sum has a fixed order):
//  1. the state entering each chunk (S0): float32, the forward kernel in state-only mode;
//  2. G = dL/dH at each chunk's end (S1) and dInitialStates, G ← decay·G + dyᵀ·(e_in ∘ C) in
//     reverse: float32, ssd_bwd_state_kernel walks the chunks;
//     16-bit, 1. and 2. in one kernel (ssd_bwd_states.cu: the state in mma accumulators, one
//     64-token product per chunk step, both directions at once);
//  3. 16-bit with headdim ≤ 64 and dstate ≤ 128: ssd_bwd_chunk_mma_kernel (ssd_bwd_chunk.cu; a
//     whole group per block on large grids, dB / dC then written directly);
//     otherwise C·Bᵀ per chunk and group (as in the forward), then ssd_bwd_chunk_kernel, one
//     block per (chunk, run of ≤ 8 heads of a group, batch), needs only S0/S1 of its chunk:
//     dx, ddt, dz directly; dB/dC summed over the run's heads in order, per-chunk dA/dD/ddtBias
//     partials;
//  4. ssd_bwd_reduce_kernel sums the partials over runs of a group / chunks, in order.
// With s ≤ t, Lexp[t,s] = exp(cs_t − cs_s) on one sequence, dYX = dy·(dt'x)ᵀ, CB = C·Bᵀ:
//   d(dt'x) = (CB∘Lexp)ᵀ·dy + diag(e_out)·B·Gᵀ       dB = (Lexp∘dYX)ᵀ·C + diag(e_out)·(dt'x)·G
//   dC = (Lexp∘dYX)·B + diag(e_in)·dy·H0             dcs from CB∘Lexp∘dYX, e_in, e_out and decay
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/ssd_common.cuh"
#include "cuda/ssd_launch.h"

namespace ss::cuda::ssd {

// ---------------------------------------------------------------------------------------------
template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_bwd_state_kernel(Dev d) {
  constexpr int Q = Traits<T>::Q;
  extern __shared__ __align__(128) unsigned char smem[];
  const StateLayout lay(Q, d.NP, d.PT, sizeof(T));
  T* sC = reinterpret_cast<T*>(smem + lay.sC);
  T* sDy = reinterpret_cast<T*>(smem + lay.sDy);
  float* sG = reinterpret_cast<float*>(smem + lay.sG);
  const ScalarPtrs sc(smem, lay);
  const int pt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / d.hpg;
  const int p0 = pt * d.PT, pw = min(d.PT, d.P - p0);
  const int NP = d.NP, PT = d.PT;
  const T* Cm = static_cast<const T*>(d.C);

  for (int i = threadIdx.x; i < PT * NP; i += kThreads) {
    const int p = i / NP, n = i % NP;
    sG[p * lay.ldG + n] =
        (d.dfinal && p < pw && n < d.N) ? d.dfinal[((int64_t(b) * d.H + h) * d.P + p0 + p) * d.N + n] : 0.f;
  }
  for (int c = d.nc - 1; c >= 0; --c) {
    const int t0 = c * Q, q = min(Q, d.L - t0);
    __syncthreads();
    T* s1 = static_cast<T*>(d.S1) + ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP + int64_t(p0) * NP;
    for (int i = threadIdx.x; i < PT * NP; i += kThreads) s1[i] = from_float<T>(sG[(i / NP) * lay.ldG + i % NP]);
    chunk_scalars<Q>(d, b, h, t0, q, sc.dtp, sc.der, sc.cs, sc.seg, sc.ein, sc.eout);
    const int64_t brow = (int64_t(b) * d.L + t0) * d.G + g;
    for (int idx = threadIdx.x; idx < Q * NP; idx += kThreads) {
      const int t = idx / NP, n = idx % NP;
      float v = 0.f;
      if (t < q && n < d.N) v = to_float(Cm[(brow + int64_t(t) * d.G) * d.N + n]) * sc.ein[t];
      sC[t * lay.ldN + n] = from_float<T>(v);
    }
    for (int idx = threadIdx.x; idx < Q * PT; idx += kThreads) {
      const int t = idx / PT, pp = idx % PT;
      float v = 0.f, zv;
      if (t < q && pp < pw) v = grad_out<T>(d, ((int64_t(b) * d.L + t0 + t) * d.H + h) * d.P + p0 + pp, &zv);
      sDy[t * lay.ldX + pp] = from_float<T>(v);
    }
    __syncthreads();
    const float decay = sc.seg[Q - 1] == 0 ? __expf(sc.cs[Q - 1]) : 0.f;
    block_gemm<T, false, true, Tri::Full>(PT, NP, Q, sDy, lay.ldX, sC, lay.ldN, sG, lay.ldG, decay);
  }
  __syncthreads();
  if (d.dh0)
    for (int i = threadIdx.x; i < pw * d.N; i += kThreads) {
      const int p = i / d.N, n = i % d.N;
      d.dh0[((int64_t(b) * d.H + h) * d.P + p0 + p) * d.N + n] = sG[p * lay.ldG + n];
    }
}

// ---------------------------------------------------------------------------------------------
template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_bwd_chunk_kernel(Dev d) {
  constexpr int Q = Traits<T>::Q;
  extern __shared__ __align__(128) unsigned char smem[];
  const GradLayout lay(Q, d.NP, d.PC, sizeof(T));
  T* sB = reinterpret_cast<T*>(smem + lay.sB);
  T* sC = reinterpret_cast<T*>(smem + lay.sC);
  T* sDtx = reinterpret_cast<T*>(smem + lay.sDtx);
  T* sDy = reinterpret_cast<T*>(smem + lay.sDy);
  T* sM = reinterpret_cast<T*>(smem + lay.sM);
  T* sN2 = reinterpret_cast<T*>(smem + lay.sN2);
  float* sDYX = reinterpret_cast<float*>(smem + lay.sDYX);
  float* sF2 = reinterpret_cast<float*>(smem + lay.sF2);
  T* sDtxE = reinterpret_cast<T*>(smem + lay.sDtxE);
  T* sDyE = reinterpret_cast<T*>(smem + lay.sDyE);
  float* sF1 = reinterpret_cast<float*>(smem + lay.sF1);
  const ScalarPtrs sc(smem, lay);
  float* sRow = reinterpret_cast<float*>(smem + lay.sRow);
  float* sCol = reinterpret_cast<float*>(smem + lay.sCol);
  float* sV = reinterpret_cast<float*>(smem + lay.sV);
  float* sU = reinterpret_cast<float*>(smem + lay.sU);
  float* sDdtp = reinterpret_cast<float*>(smem + lay.sDdtp);
  float* sRed = reinterpret_cast<float*>(smem + lay.sRed);
  T* sH0 = reinterpret_cast<T*>(smem + lay.sH0);  // used only when d.stage_states
  T* sG = reinterpret_cast<T*>(smem + lay.sG);

  // A block owns one chunk and a run of heads of one group: B and C are loaded once, and the
  // heads' dB/dC contributions accumulate (in order) into the run's own partial rows.
  const int c = blockIdx.x, b = blockIdx.z, g = blockIdx.y / d.nhb, hb = blockIdx.y % d.nhb;
  const int h_begin = g * d.hpg + hb * d.HB, h_count = min(d.HB, d.hpg - hb * d.HB);
  const int t0 = c * Q, q = min(Q, d.L - t0);
  const int NP = d.NP, PC = d.PC, P = d.P;
  const T* x = static_cast<const T*>(d.x);
  const T* Bm = static_cast<const T*>(d.B);
  const T* Cm = static_cast<const T*>(d.C);
  const int64_t brow = (int64_t(b) * d.L + t0) * d.G + g;
  load_tile(sB, lay.ldN, Bm + brow * d.N, int64_t(d.G) * d.N, q, Q, d.N, NP);
  load_tile(sC, lay.ldN, Cm + brow * d.N, int64_t(d.G) * d.N, q, Q, d.N, NP);
  float* dBh = d.dBh + ((int64_t(b) * d.Lpad + t0) * d.nslots + g * d.nhb + hb) * NP;
  float* dCh = d.dCh + ((int64_t(b) * d.Lpad + t0) * d.nslots + g * d.nhb + hb) * NP;
  const int ldo = d.nslots * NP;

  for (int hh = 0; hh < h_count; ++hh) {
    const int h = h_begin + hh;
    const T* H0 = static_cast<const T*>(d.S0) + ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP;  // (p, n), ld NP
    const T* Gm = static_cast<const T*>(d.S1) + ((int64_t(b) * d.H + h) * d.nc + c) * d.PP * NP;
    const int64_t xrow0 = (int64_t(b) * d.L + t0) * d.H + h;  // row of (b, t0, h) in units of P
    auto xoff = [&](int t, int p) { return (xrow0 + int64_t(t) * d.H) * P + p; };

    __syncthreads();  // the previous head is done with shared memory
    // This chunk's S0 (H0) and S1 (G) tiles: staged in shared memory when they fit (every product
    // below then reads them there, not through a global load per k step), in flight meanwhile.
    if (d.stage_states) {
      load_tile<false>(sH0, lay.ldS, H0, NP, PC, PC, NP, NP);
      load_tile<false>(sG, lay.ldS, Gm, NP, PC, PC, NP, NP);
    }
    const T* H0o = d.stage_states ? sH0 : H0;
    const T* Go = d.stage_states ? sG : Gm;
    const int ldh = d.stage_states ? lay.ldS : NP;
    chunk_scalars<Q>(d, b, h, t0, q, sc.dtp, sc.der, sc.cs, sc.seg, sc.ein, sc.eout);
    for (int idx = threadIdx.x; idx < Q * PC; idx += kThreads) {
      const int t = idx / PC, p = idx % PC;
      float dtx = 0.f, dy = 0.f, zv;
      if (t < q && p < P) {
        dtx = sc.dtp[t] * to_float(__ldg(x + xoff(t, p)));
        dy = grad_out<T>(d, xoff(t, p), &zv);
      }
      sDtx[t * lay.ldP + p] = from_float<T>(dtx);
      sDy[t * lay.ldP + p] = from_float<T>(dy);
    }
    cp_async_wait();  // the staged S0/S1 tiles
    __syncthreads();
    const float cs_end = sc.cs[Q - 1];
    const int seg_end = sc.seg[Q - 1];
    auto e_in = [&](int t) { return sc.ein[t]; };
    auto e_out = [&](int s) { return sc.eout[s]; };

    // 1. dYX = dy·dtxᵀ, y_inter = C·H0ᵀ (C·Bᵀ comes from its own pass, read from global)
    block_gemm<T, true, false, Tri::SkipUpper>(Q, Q, PC, sDy, lay.ldP, sDtx, lay.ldP, sDYX, lay.ldM, 0.f);
    block_gemm<T, true, false, Tri::Full>(Q, PC, NP, sC, lay.ldN, H0o, ldh, sF1, lay.ldF, 0.f);
    __syncthreads();
    // 2. decay-masked matrices; W = CB∘Lexp∘dYX replaces dYX for the row/column sums
    const float* cbg = d.CB + ((int64_t(b) * d.nc + c) * d.G + g) * Q * Q;
    for (int idx = threadIdx.x; idx < Q * Q; idx += kThreads) {
      const int t = idx / Q, s = idx % Q;
      float lexp = 0.f, cb = 0.f, dyx = 0.f;
      if (s <= t && sc.seg[s] == sc.seg[t]) {
        lexp = __expf(sc.cs[t] - sc.cs[s]);
        cb = __ldg(cbg + idx);
        dyx = sDYX[t * lay.ldM + s];
      }
      sM[t * lay.ldMT + s] = from_float<T>(cb * lexp);
      sN2[t * lay.ldMT + s] = from_float<T>(lexp * dyx);
      sDYX[t * lay.ldM + s] = cb * lexp * dyx;
    }
    __syncthreads();
    if (threadIdx.x < Q) {
      const int t = threadIdx.x;
      float r = 0.f, v = 0.f;
      for (int s = 0; s <= t; ++s) r += sDYX[t * lay.ldM + s];
      const float e = e_in(t);
      for (int p = 0; p < PC; ++p) v += to_float(sDy[t * lay.ldP + p]) * sF1[t * lay.ldF + p];
      sRow[t] = r;
      sV[t] = v * e;
    } else if (threadIdx.x < 2 * Q) {
      const int s = threadIdx.x - Q;
      float col = 0.f;
      for (int t = s; t < Q; ++t) col += sDYX[t * lay.ldM + s];
      sCol[s] = col;
    }
    __syncthreads();
    // 3. dz needs the pre-gate output: y_intra = (CB∘Lexp)·dtx (into r7: W is summed)
    if (d.z) {
      block_gemm<T, true, true, Tri::LowerA>(Q, PC, Q, sM, lay.ldMT, sDtx, lay.ldP, sF2, lay.ldF, 0.f);
      __syncthreads();
      const T* z = static_cast<const T*>(d.z);
      const T* dout = static_cast<const T*>(d.dout);
      for (int idx = threadIdx.x; idx < q * P; idx += kThreads) {
        const int t = idx / P, p = idx % P;
        const int64_t off = xoff(t, p);
        const float xv = to_float(__ldg(x + off));
        float yv = sF2[t * lay.ldF + p] + e_in(t) * sF1[t * lay.ldF + p];
        if (d.D) yv += (d.d_per_channel ? d.D[h * P + p] : d.D[h]) * xv;
        const float zv = to_float(__ldg(z + off));
        const float sg = 1.f / (1.f + __expf(-zv));
        static_cast<T*>(d.dz)[off] = from_float<T>(to_float(__ldg(dout + off)) * yv * sg * (1.f + zv * (1.f - sg)));
      }
      __syncthreads();
    }
    // 4. term2 = diag(e_out)·B·Gᵀ, U_s = Σ_p dtx·term2, then d(dtx) = term2 + (CB∘Lexp)ᵀ·dy
    block_gemm<T, true, false, Tri::Full>(Q, PC, NP, sB, lay.ldN, Go, ldh, sF1, lay.ldF, 0.f);
    __syncthreads();
    if (threadIdx.x < Q) {
      const int s = threadIdx.x;
      const float e = e_out(s);
      float u = 0.f;
      for (int p = 0; p < PC; ++p) {
        const float v = sF1[s * lay.ldF + p] * e;
        sF1[s * lay.ldF + p] = v;
        u += to_float(sDtx[s * lay.ldP + p]) * v;
      }
      sU[s] = u;
    }
    __syncthreads();
    block_gemm<T, false, true, Tri::UpperA>(Q, PC, Q, sM, lay.ldMT, sDy, lay.ldP, sF1, lay.ldF, 1.f);
    // operands of dB/dC's second terms (r7 is free again)
    for (int idx = threadIdx.x; idx < Q * PC; idx += kThreads) {
      const int t = idx / PC, p = idx % PC;
      sDtxE[t * lay.ldP + p] = from_float<T>(to_float(sDtx[t * lay.ldP + p]) * e_out(t));
      sDyE[t * lay.ldP + p] = from_float<T>(to_float(sDy[t * lay.ldP + p]) * e_in(t));
    }
    __syncthreads();
    // 5. dx and dt' (row sums in a fixed order), D partials per column
    for (int idx = threadIdx.x; idx < q * P; idx += kThreads) {
      const int s = idx / P, p = idx % P;
      float v = sc.dtp[s] * sF1[s * lay.ldF + p];
      if (d.D) v += (d.d_per_channel ? d.D[h * P + p] : d.D[h]) * to_float(sDy[s * lay.ldP + p]);
      static_cast<T*>(d.dx)[xoff(s, p)] = from_float<T>(v);
    }
    if (threadIdx.x < Q) {
      const int s = threadIdx.x;
      float acc = 0.f;
      if (s < q)
        for (int p = 0; p < P; ++p) acc += to_float(__ldg(x + xoff(s, p))) * sF1[s * lay.ldF + p];
      sDdtp[s] = acc;
    }
    if (d.D)
      for (int p = threadIdx.x; p < P; p += kThreads) {
        float acc = 0.f;
        for (int s = 0; s < q; ++s) acc += to_float(sDy[s * lay.ldP + p]) * to_float(__ldg(x + xoff(s, p)));
        d.dD_part[((int64_t(b) * d.H + h) * d.nc + c) * P + p] = acc;
      }
    // 6. dB, dC of this head added to the run's partial rows in global memory (rows past the
    //    end land in padding)
    const float acc = hh == 0 ? 0.f : 1.f;
    block_gemm<T, false, true, Tri::UpperA>(Q, NP, Q, sN2, lay.ldMT, sC, lay.ldN, dBh, ldo, acc);
    block_gemm<T, true, true, Tri::LowerA>(Q, NP, Q, sN2, lay.ldMT, sB, lay.ldN, dCh, ldo, acc);
    __syncthreads();
    block_gemm<T, true, true, Tri::Full>(Q, NP, PC, sDtxE, lay.ldP, Go, ldh, dBh, ldo, 1.f);
    block_gemm<T, true, true, Tri::Full>(Q, NP, PC, sDyE, lay.ldP, H0o, ldh, dCh, ldo, 1.f);
    // 7. Σ G∘H0 (the decay term), fixed-order block reduction
    float part = 0.f;
    for (int i = threadIdx.x; i < PC * NP; i += kThreads) {
      const int o = (i / NP) * ldh + i % NP;
      part += to_float(Go[o]) * to_float(H0o[o]);
    }
    sRed[threadIdx.x] = part;
    __syncthreads();
    for (int w = kThreads / 2; w > 0; w /= 2) {
      if (threadIdx.x < w) sRed[threadIdx.x] += sRed[threadIdx.x + w];
      __syncthreads();
    }
    // 8. dcs → reverse cumsum → ddt, dA and ddtBias partials (one thread, fixed order)
    if (threadIdx.x == 0) {
      float usum = 0.f;
      for (int s = 0; s < Q; ++s) usum += sU[s];
      const float decay = seg_end == 0 ? __expf(cs_end) : 0.f;
      const float a = d.A[h];
      float da = 0.f, dA_acc = 0.f, dbias_acc = 0.f;
      for (int s = Q - 1; s >= 0; --s) {
        float dcs = sRow[s] - sCol[s] + sV[s] - sU[s];
        if (s == q - 1) dcs += usum + decay * sRed[0];
        da += dcs;
        if (s >= q) continue;
        dA_acc += sc.dtp[s] * da;
        const float graw = (sDdtp[s] + a * da) * sc.der[s];
        d.ddt[(int64_t(b) * d.L + t0 + s) * d.H + h] = graw;
        dbias_acc += graw;
      }
      const int64_t k = (int64_t(b) * d.H + h) * d.nc + c;
      d.dA_part[k] = dA_acc;
      d.dbias_part[k] = dbias_acc;
    }
  }  // heads
}

// ---------------------------------------------------------------------------------------------
// Sums over the runs of heads of a group (dB, dC), in order. One block per token (b·L + t),
// four dstate entries per thread when dstate is a multiple of 4.
__global__ void __launch_bounds__(128) ssd_bwd_reduce_kernel(Dev d) {
  const int64_t bt = blockIdx.x;
  const int64_t prow = ((bt / d.L) * d.Lpad + bt % d.L) * d.nslots;  // partial row of slot 0
  const int GN = d.G * d.N;
  float* dB = d.dB + bt * GN;
  float* dC = d.dC + bt * GN;
  if (d.N % 4 == 0) {
    for (int e = threadIdx.x * 4; e < GN; e += blockDim.x * 4) {
      const int64_t base = (prow + int64_t(e / d.N) * d.nhb) * d.NP + e % d.N;
      float4 sb = make_float4(0.f, 0.f, 0.f, 0.f), sc = sb;
      for (int j = 0; j < d.nhb; ++j) {
        const float4 vb = *reinterpret_cast<const float4*>(d.dBh + base + int64_t(j) * d.NP);
        const float4 vc = *reinterpret_cast<const float4*>(d.dCh + base + int64_t(j) * d.NP);
        sb.x += vb.x, sb.y += vb.y, sb.z += vb.z, sb.w += vb.w;
        sc.x += vc.x, sc.y += vc.y, sc.z += vc.z, sc.w += vc.w;
      }
      *reinterpret_cast<float4*>(dB + e) = sb;
      *reinterpret_cast<float4*>(dC + e) = sc;
    }
    return;
  }
  for (int e = threadIdx.x; e < GN; e += blockDim.x) {
    const int64_t base = (prow + int64_t(e / d.N) * d.nhb) * d.NP + e % d.N;
    float sb = 0.f, sc = 0.f;
    for (int j = 0; j < d.nhb; ++j) sb += d.dBh[base + int64_t(j) * d.NP], sc += d.dCh[base + int64_t(j) * d.NP];
    dB[e] = sb;
    dC[e] = sc;
  }
}

// One block per (head, what): dA, ddtBias, dD (per head, or one block per channel) summed over
// batches × chunks (× channels) — each thread a fixed strided share, then a fixed tree: the
// same order every run.
__global__ void __launch_bounds__(256) ssd_bwd_head_reduce_kernel(Dev d) {
  __shared__ float red[256];  // blockDim.x == 256
  const int h = blockIdx.x % d.H, what = blockIdx.x / d.H;
  const bool all_p = what >= 2 && !d.d_per_channel;  // dD of a head: every channel too
  const int per_k = all_p ? d.P : 1, nc = d.nc;
  const int64_t items = int64_t(d.batch) * nc * per_k;
  // Item i = (b·nc + c)·per_k + p, this thread's i stepped by 256 without divisions (a 64-bit
  // division per item made this loop the slow part of the reductions).
  constexpr int kStep = 256;
  int p = int(threadIdx.x) % per_k, c = int(threadIdx.x) / per_k, b = c / nc;
  c %= nc;
  const int dp = kStep % per_k, dbc = kStep / per_k, db = dbc / nc, dc = dbc % nc;
  float acc = 0.f;
#pragma unroll 8  // eight loads in flight (one at a time, the loop waited on each load's latency)
  for (int64_t i = threadIdx.x; i < items; i += kStep) {
    const int64_t k = (int64_t(b) * d.H + h) * nc + c;
    if (what == 0) acc += __ldg(d.dA_part + k);
    else if (what == 1) acc += __ldg(d.dbias_part + k);
    else acc += __ldg(d.dD_part + k * d.P + (all_p ? p : what - 2));
    p += dp;
    c += dc;
    if (p >= per_k) p -= per_k, ++c;
    b += db;
    if (c >= nc) c -= nc, ++b;
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x != 0) return;
  acc = red[0];
  if (what == 0) d.dA[h] = acc;
  else if (what == 1) { if (d.ddt_bias) d.ddt_bias[h] = acc; }
  else if (d.d_per_channel) d.dD[h * d.P + (what - 2)] = acc;
  else d.dD[h] = acc;
}

template <typename T> void launch_chunk_gradients(const Dev& d0, cudaStream_t stream);

template <typename T>
void launch_backward(const Dev& d0, float* weights, cudaStream_t stream) {
  constexpr bool kF32 = std::is_same_v<T, float>;
  // 1. the incoming state of every chunk
  StageTimer timer("backward", stream);
  if constexpr (!kF32) {
    launch_backward_states_seq<T>(d0, weights, stream, timer);  // 16-bit
  } else {
    Dev fwd = d0;
    fwd.y = nullptr, fwd.final_states = nullptr;
    launch_forward<T>(fwd, stream);
    timer.mark("states of every chunk");
    // 2. reverse state pass
    const StateLayout sl(d0.Q, d0.NP, d0.PT, sizeof(T));
    set_smem(ssd_bwd_state_kernel<T>, sl.bytes, "ssdChunkScanBackward: shared memory");
    ssd_bwd_state_kernel<T><<<dim3(d0.PP / d0.PT, d0.H, d0.batch), kThreads, sl.bytes, stream>>>(d0);
    check_launch("ssdChunkScanBackward state pass");
    timer.mark("reverse state pass");
  }
  // 3. chunk gradients: tensor-core kernel (16-bit, headdim ≤ 64, dstate ≤ 128), else the
  //    general one, which reads C·Bᵀ of every chunk from its own pass
  bool done = false;
  if constexpr (!kF32) done = launch_chunk_gradients_mma<T>(d0, stream);
  if (!done) {
    launch_cb<T>(d0, stream);
    launch_chunk_gradients<T>(d0, stream);
  }
  timer.mark("chunk gradients");
  // 4. reductions (dB / dC: none when the tensor-core kernel took whole groups and wrote them)
  if (!(done && chunk_gradients_direct(d0))) {
    ssd_bwd_reduce_kernel<<<unsigned(int64_t(d0.batch) * d0.L), 128, 0, stream>>>(d0);
    check_launch("ssdChunkScanBackward reductions");
  }
  const int per_head = d0.D ? (d0.d_per_channel ? d0.P : 1) : 0;
  ssd_bwd_head_reduce_kernel<<<d0.H * (2 + per_head), 256, 0, stream>>>(d0);
  check_launch("ssdChunkScanBackward per-head reductions");
  timer.mark("reductions");
}

namespace {
const bool g_preload = (cuda::register_kernel_preload(preload_kernels<ssd_bwd_reduce_kernel, ssd_bwd_head_reduce_kernel>), true);
}  // namespace

template <typename T>
void launch_chunk_gradients(const Dev& d0, cudaStream_t stream) {
  const GradLayout gl(d0.Q, d0.NP, d0.PC, sizeof(T));
  int device = 0, smem_max = 0;
  check(cudaGetDevice(&device), "ssdChunkScanBackward: device");
  check(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "ssdChunkScanBackward: device");
  Dev dg = d0;
  dg.stage_states = gl.bytes_staged <= size_t(smem_max);
  const size_t grad_smem = dg.stage_states ? gl.bytes_staged : gl.bytes;
  set_smem(ssd_bwd_chunk_kernel<T>, grad_smem, "ssdChunkScanBackward: shared memory");
  ssd_bwd_chunk_kernel<T><<<dim3(d0.nc, d0.nslots, d0.batch), kThreads, grad_smem, stream>>>(dg);
  check_launch("ssdChunkScanBackward chunk gradients");
}

template void launch_backward<float>(const Dev&, float*, cudaStream_t);
template void launch_backward<__half>(const Dev&, float*, cudaStream_t);
template void launch_backward<__nv_bfloat16>(const Dev&, float*, cudaStream_t);

}  // namespace ss::cuda::ssd
