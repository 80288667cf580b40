// CUDA selective scan backward. Nothing per step is stored by the forward: a forward pass writes
// the f32 state every `chunk` steps (checkpoints), then this kernel walks the chunks in reverse:
//   1. stage the chunk's inputs in shared memory;
//   2. from the checkpoint, recompute the states at every kSub-step boundary (shared memory);
//   3. per sub-chunk, in reverse: recompute its kSub states into registers, then run the
//      reverse recurrence g_{t-1} = a_t g_t (+ C_{t-1} dy_{t-1}) and form every gradient.
// Reductions are deterministic: per-row and per-block partials go to an f32 scratch buffer and
// small kernels sum them in a fixed order (no float atomics anywhere).
#include "cuda/check.cuh"
#include "cuda/runtime.h"
#include "cuda/selective_scan_common.cuh"

namespace ss {
namespace scan_cuda {
namespace {

template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
    scan_bwd_kernel(SelectiveScanParams p, Layout lo, Tiling tl, int chunk, ScratchLayout sl) {
  extern __shared__ __align__(16) float smem[];
  const int TP = chunk + 1;
  float* s_dt = smem;                  // delta'
  float* s_u = s_dt + lo.dims * TP;    // u, then du
  float* s_z = s_u + lo.dims * TP;     // z, then dz
  float* s_dy = s_z + lo.dims * TP;    // dy, then ddelta
  float* s_dsp = s_dy + lo.dims * TP;  // d delta' / d (delta + bias)
  float* s_B = s_dsp + lo.dims * TP;   // [chunk][npad]; every array from here is 16-byte aligned
  float* s_C = s_B + chunk * lo.npad;
  int* s_rst = reinterpret_cast<int*>(s_C + chunk * lo.npad);
  float* s_bnd = reinterpret_cast<float*>(s_rst + chunk);  // [chunk/kSub][K][kThreads]
  float* s_yraw = s_bnd + (chunk / kSub) * K * kThreads;   // [dims][kSub + 1]
  float* s_pB = s_yraw + lo.dims * (kSub + 1);             // [kSub][dims][npad]
  float* s_pC = s_pB + kSub * lo.dims * lo.npad;

  const BlockRows br = block_rows(lo, tl);
  const int tid = threadIdx.x, dl = tid / lo.G, lane = tid % lo.G;
  const bool active = dl < br.nd;
  const int64_t b = br.b, d = br.d0 + (active ? dl : 0), L = p.seqlen, N = p.dstate, row = b * p.dim + d;
  const bool b_ti = p.b_form == ScanBCForm::TimeInvariant, c_ti = p.c_form == ScanBCForm::TimeInvariant;
  const T* u = static_cast<const T*>(p.u);
  const T* delta = static_cast<const T*>(p.delta);
  const T* z = static_cast<const T*>(p.z);
  const T* dy = static_cast<const T*>(p.dy);
  const float* A = static_cast<const float*>(p.A);
  const float* bias = static_cast<const float*>(p.delta_bias);
  const T* Bg = b_ti ? nullptr : bc_group<T>(p.B, p.b_groups, p, b, br.d0);
  const T* Cg = c_ti ? nullptr : bc_group<T>(p.C, p.c_groups, p, b, br.d0);

  float A2[K], Bti[K], Cti[K], g[K], dA[K], dBti[K], dCti[K];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t n = lane * K + k;
    const bool ok = active && n < N;
    A2[k] = ok ? A[d * N + n] * kLog2e : 0.f;
    Bti[k] = ok && b_ti ? cuda::to_float(static_cast<const T*>(p.B)[d * N + n]) : 0.f;
    Cti[k] = ok && c_ti ? cuda::to_float(static_cast<const T*>(p.C)[d * N + n]) : 0.f;
    g[k] = ok && p.d_last_state ? static_cast<const float*>(p.d_last_state)[row * N + n] : 0.f;
    dA[k] = dBti[k] = dCti[k] = 0.f;
  }
  const float Dd = active && p.D ? static_cast<const float*>(p.D)[d] : 0.f;
  float dD = 0.f, dbias = 0.f;

  // B_t / C_t values of this lane (time-invariant ones from registers).
  auto load_bc = [&](float (&bv)[K], float (&cv)[K], int t) {
    if (b_ti) {
#pragma unroll
      for (int k = 0; k < K; ++k) bv[k] = Bti[k];
    } else {
      load_k<K>(bv, s_B + t * lo.npad + lane * K);
    }
    if (c_ti) {
#pragma unroll
      for (int k = 0; k < K; ++k) cv[k] = Cti[k];
    } else {
      load_k<K>(cv, s_C + t * lo.npad + lane * K);
    }
  };

  for (int64_t c = p.n_chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * chunk;
    const int len = static_cast<int>(L - t0 < chunk ? L - t0 : chunk);
    // 1. stage the chunk (zeros past seqlen and past the block's rows)
    for (int i = tid; i < lo.dims * chunk; i += kThreads) {
      const int r = i / chunk, t = i % chunk;
      float dtv = 0.f, uv = 0.f, zv = 0.f, dyv = 0.f, dsp = 0.f;
      if (r < br.nd && t < len) {
        const int64_t gi = (b * p.dim + br.d0 + r) * L + t0 + t;
        const float pre = cuda::to_float(delta[gi]) + (bias ? bias[br.d0 + r] : 0.f);
        dtv = p.delta_softplus ? softplus(pre) : pre;
        dsp = p.delta_softplus ? sigmoid(pre) : 1.f;
        uv = cuda::to_float(u[gi]);
        dyv = cuda::to_float(dy[gi]);
        if (z) zv = cuda::to_float(z[gi]);
      }
      s_dt[r * TP + t] = dtv;
      s_u[r * TP + t] = uv;
      s_z[r * TP + t] = zv;
      s_dy[r * TP + t] = dyv;
      s_dsp[r * TP + t] = dsp;
    }
    if (!b_ti) load_bc_tile(s_B, Bg, p, lo, chunk, t0, len);
    if (!c_ti) load_bc_tile(s_C, Cg, p, lo, chunk, t0, len);
    load_restarts(s_rst, p, b, chunk, t0, len);
    __syncthreads();

    // 2. states at the sub-chunk boundaries, from the checkpoint before this chunk
    float x[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t n = lane * K + k;
      const bool ok = active && n < N;
      if (c > 0)
        x[k] = ok ? p.checkpoints[(row * p.n_chunks + c - 1) * N + n] : 0.f;
      else
        x[k] = ok && p.initial_state ? static_cast<const float*>(p.initial_state)[row * N + n] : 0.f;
    }
    const int nsub = (len + kSub - 1) / kSub;
    for (int s = 0; s < nsub; ++s) {
#pragma unroll
      for (int k = 0; k < K; ++k) s_bnd[(s * K + k) * kThreads + tid] = x[k];
      const int tend = min(len, (s + 1) * kSub);
      for (int t = s * kSub; t < tend; ++t) {
        const float dt = s_dt[dl * TP + t], du = dt * s_u[dl * TP + t];
        const bool rs = s_rst[t];
        float bv[K];
        if (b_ti) {
#pragma unroll
          for (int k = 0; k < K; ++k) bv[k] = Bti[k];
        } else {
          load_k<K>(bv, s_B + t * lo.npad + lane * K);
        }
#pragma unroll
        for (int k = 0; k < K; ++k) x[k] = fmaf(rs ? 0.f : exp2f(dt * A2[k]), x[k], du * bv[k]);
      }
    }

    // 3. sub-chunks in reverse
    for (int s = nsub - 1; s >= 0; --s) {
      float h[kSub + 1][K];  // h[j] = state before step s*kSub + j
      // exp(delta' A) of the sub-chunk, kept for the reverse sweep when registers allow (K = 4)
      constexpr bool kKeepA = K == 4;
      float aa[kKeepA ? kSub : 1][K];
#pragma unroll
      for (int k = 0; k < K; ++k) h[0][k] = s_bnd[(s * K + k) * kThreads + tid];
#pragma unroll
      for (int j = 0; j < kSub; ++j) {
        const int t = s * kSub + j;
        const bool valid = t < len;  // block-uniform
        float acc = 0.f;
#pragma unroll
        for (int k = 0; k < K; ++k) h[j + 1][k] = h[j][k];
        if (valid) {
          const float dt = s_dt[dl * TP + t], ut = s_u[dl * TP + t], du = dt * ut;
          const bool rs = s_rst[t];
          float bv[K], cv[K];
          load_bc(bv, cv, t);
#pragma unroll
          for (int k = 0; k < K; ++k) {
            const float a = rs ? 0.f : exp2f(dt * A2[k]);
            if (kKeepA) aa[kKeepA ? j : 0][k] = a;
            h[j + 1][k] = fmaf(a, h[j][k], du * bv[k]);
            acc = fmaf(cv[k], h[j + 1][k], acc);
          }
          acc = row_sum(acc, lo.G);
          if (lane == 0) s_yraw[dl * (kSub + 1) + j] = fmaf(Dd, ut, acc);
        }
      }
      __syncwarp();
#pragma unroll
      for (int j = kSub - 1; j >= 0; --j) {
        const int t = s * kSub + j;
        if (t >= len) continue;  // block-uniform
        const float dt = s_dt[dl * TP + t], ut = s_u[dl * TP + t];
        float dyv = s_dy[dl * TP + t], dzv = 0.f;
        if (z) {
          const float zv = s_z[dl * TP + t], sg = sigmoid(zv);
          dzv = dyv * s_yraw[dl * (kSub + 1) + j] * sg * (1.f + zv * (1.f - sg));
          dyv *= zv * sg;
        }
        dD = fmaf(dyv, ut, dD);
        const bool rs = s_rst[t];
        const float dtu = dt * ut;
        float bv[K], cv[K], db[K], dc[K];
        load_bc(bv, cv, t);
        float ddt = 0.f, gB = 0.f;
#pragma unroll
        for (int k = 0; k < K; ++k) {
          const float gk = fmaf(cv[k], dyv, g[k]);  // dL/dx_t
          dc[k] = dyv * h[j + 1][k];
          db[k] = gk * dtu;
          const float a = kKeepA ? aa[kKeepA ? j : 0][k] : rs ? 0.f : exp2f(dt * A2[k]);
          const float ga = gk * h[j][k] * a;
          ddt = fmaf(ga, A2[k], ddt);
          dA[k] = fmaf(ga, dt, dA[k]);
          gB = fmaf(gk, bv[k], gB);
          g[k] = gk * a;  // dL/dx_{t-1} before the C_{t-1} dy_{t-1} term
        }
        if (c_ti) {
#pragma unroll
          for (int k = 0; k < K; ++k) dCti[k] += dc[k];
        } else {
          store_k<K>(s_pC + (j * lo.dims + dl) * lo.npad + lane * K, dc);
        }
        if (b_ti) {
#pragma unroll
          for (int k = 0; k < K; ++k) dBti[k] += db[k];
        } else {
          store_k<K>(s_pB + (j * lo.dims + dl) * lo.npad + lane * K, db);
        }
        ddt = row_sum(ddt, lo.G);
        gB = row_sum(gB, lo.G);
        const float dpre = fmaf(ddt, kLn2, gB * ut) * s_dsp[dl * TP + t];
        dbias += dpre;
        __syncwarp();  // every lane has read row t before lane 0 overwrites it
        if (lane == 0) {
          s_u[dl * TP + t] = fmaf(dyv, Dd, gB * dt);
          s_dy[dl * TP + t] = dpre;
          s_z[dl * TP + t] = dzv;
        }
      }
      __syncthreads();
      // per-step dB/dC of this sub-chunk: sum over the block's rows in order
      if (!b_ti || !c_ti) {
        for (int i = tid; i < kSub * lo.npad; i += kThreads) {
          const int j = i / lo.npad, n = i % lo.npad, t = s * kSub + j;
          if (t >= len || n >= N) continue;
          const int64_t o = ((static_cast<int64_t>(blockIdx.x) * p.batch + b) * L + t0 + t) * N + n;
          if (!b_ti) {
            float acc = 0.f;
            for (int r = 0; r < lo.dims; ++r) acc += s_pB[(j * lo.dims + r) * lo.npad + n];
            p.scratch[sl.dB_step + o] = acc;
          }
          if (!c_ti) {
            float acc = 0.f;
            for (int r = 0; r < lo.dims; ++r) acc += s_pC[(j * lo.dims + r) * lo.npad + n];
            p.scratch[sl.dC_step + o] = acc;
          }
        }
        __syncthreads();
      }
    }

    // the chunk's du, ddelta, dz
    T* du = static_cast<T*>(p.du);
    T* ddelta = static_cast<T*>(p.ddelta);
    T* dz = static_cast<T*>(p.dz);
    for (int i = tid; i < lo.dims * chunk; i += kThreads) {
      const int r = i / chunk, t = i % chunk;
      if (r >= br.nd || t >= len) continue;
      const int64_t gi = (b * p.dim + br.d0 + r) * L + t0 + t;
      du[gi] = cuda::from_float<T>(s_u[r * TP + t]);
      ddelta[gi] = cuda::from_float<T>(s_dy[r * TP + t]);
      if (dz) dz[gi] = cuda::from_float<T>(s_z[r * TP + t]);
    }
    __syncthreads();
  }

  if (!active) return;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t n = lane * K + k;
    if (n >= N) continue;
    if (p.d_initial_state) static_cast<float*>(p.d_initial_state)[row * N + n] = g[k];
    p.scratch[sl.dA + row * N + n] = dA[k];
    if (b_ti) p.scratch[sl.dB_ti + row * N + n] = dBti[k];
    if (c_ti) p.scratch[sl.dC_ti + row * N + n] = dCti[k];
  }
  if (lane == 0) {
    p.scratch[sl.dD + row] = dD;
    p.scratch[sl.dbias + row] = dbias;
  }
}

// dA, dD, dDeltaBias and time-invariant dB/dC: sums of the per-row partials over batch.
template <typename T>
__global__ void reduce_rows_kernel(SelectiveScanParams p, ScratchLayout sl) {
  const int64_t DN = p.dim * p.dstate;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < DN; i += gridDim.x * static_cast<int64_t>(blockDim.x)) {
    float a = 0.f, bb = 0.f, cc = 0.f;
    for (int64_t b = 0; b < p.batch; ++b) {
      a += p.scratch[sl.dA + b * DN + i];
      if (p.b_form == ScanBCForm::TimeInvariant) bb += p.scratch[sl.dB_ti + b * DN + i];
      if (p.c_form == ScanBCForm::TimeInvariant) cc += p.scratch[sl.dC_ti + b * DN + i];
    }
    static_cast<float*>(p.dA)[i] = a;
    if (p.b_form == ScanBCForm::TimeInvariant) static_cast<T*>(p.dB)[i] = cuda::from_float<T>(bb);
    if (p.c_form == ScanBCForm::TimeInvariant) static_cast<T*>(p.dC)[i] = cuda::from_float<T>(cc);
    if (i < p.dim) {
      float dD = 0.f, db = 0.f;
      for (int64_t b = 0; b < p.batch; ++b) dD += p.scratch[sl.dD + b * p.dim + i], db += p.scratch[sl.dbias + b * p.dim + i];
      if (p.dD) static_cast<float*>(p.dD)[i] = dD;
      if (p.d_delta_bias) static_cast<float*>(p.d_delta_bias)[i] = db;
    }
  }
}

// Per-step dB (or dC) (batch, groups, dstate, seqlen): sum of the block partials of every
// tile of every fine group inside the group, in order. Threads run along dstate (coalesced reads).
template <typename T>
__global__ void reduce_steps_kernel(SelectiveScanParams p, Tiling tl, const float* part, int64_t groups, T* out) {
  const int64_t N = p.dstate, L = p.seqlen, total = p.batch * groups * L * N;
  const int64_t per = tl.fine / groups * tl.tiles_per_fine;  // blocks per group
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += gridDim.x * static_cast<int64_t>(blockDim.x)) {
    const int64_t n = i % N, t = (i / N) % L, g = (i / (N * L)) % groups, b = i / (N * L * groups);
    float acc = 0.f;
    for (int64_t blk = g * per; blk < (g + 1) * per; ++blk) acc += part[((blk * p.batch + b) * L + t) * N + n];
    out[((b * groups + g) * N + n) * L + t] = cuda::from_float<T>(acc);
  }
}

int grid_for(int64_t n) {
  const int64_t blocks = (n + 255) / 256;
  return static_cast<int>(blocks < 8192 ? (blocks > 0 ? blocks : 1) : 8192);
}

template <typename T, int K>
void launch_bwd(const SelectiveScanParams& p, const Layout& lo, const Tiling& tl, const ScratchLayout& sl,
                cudaStream_t stream) {
  const int chunk = bwd_chunk(lo);
  const size_t smem = bwd_smem_bytes(lo, chunk);
  auto kernel = scan_bwd_kernel<T, K>;
  if (smem > 48 * 1024)
    cuda::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
                "selectiveScanBackward: shared memory");
  const dim3 grid(static_cast<unsigned>(tl.blocks()), static_cast<unsigned>(p.batch));
  kernel<<<grid, kThreads, smem, stream>>>(p, lo, tl, chunk, sl);
  cuda::check_launch("selectiveScanBackward");
}

}  // namespace
}  // namespace scan_cuda

int64_t selective_scan_cuda_bwd_scratch_floats(const SelectiveScanParams& p) {
  using namespace scan_cuda;
  const Layout lo = layout_for(p.dstate);
  return scratch_layout(p, tiling_for(p, lo)).total;
}

void selective_scan_bwd_cuda(const SelectiveScanParams& p, void* stream) {
  using namespace scan_cuda;
  const Layout lo = layout_for(p.dstate);
  const Tiling tl = tiling_for(p, lo);
  check_grid(p, tl);
  const ScratchLayout sl = scratch_layout(p, tl);
  if (p.scratch_floats < sl.total || p.n_chunks != (p.seqlen + bwd_chunk(lo) - 1) / bwd_chunk(lo))
    fail("ERR_INTERNAL", ErrorKind::Plain, "selectiveScanBackward: scratch or checkpoints sized wrongly");
  auto st = static_cast<cudaStream_t>(stream);
  SS_FLOAT_SWITCH(p.dtype, T, [&] {
    if (lo.K == 4)
      launch_bwd<T, 4>(p, lo, tl, sl, st);
    else
      launch_bwd<T, 8>(p, lo, tl, sl, st);
    reduce_rows_kernel<T><<<grid_for(p.dim * p.dstate), 256, 0, st>>>(p, sl);
    cuda::check_launch("selectiveScanBackward reduce");
    if (p.b_form == ScanBCForm::PerStep)
      reduce_steps_kernel<T><<<grid_for(p.batch * p.b_groups * p.seqlen * p.dstate), 256, 0, st>>>(
          p, tl, p.scratch + sl.dB_step, p.b_groups, static_cast<T*>(p.dB));
    if (p.c_form == ScanBCForm::PerStep)
      reduce_steps_kernel<T><<<grid_for(p.batch * p.c_groups * p.seqlen * p.dstate), 256, 0, st>>>(
          p, tl, p.scratch + sl.dC_step, p.c_groups, static_cast<T*>(p.dC));
    cuda::check_launch("selectiveScanBackward reduce");
  });
}

}  // namespace ss
