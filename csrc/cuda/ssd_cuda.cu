// Host side of the SSD CUDA backend: fills the kernels' parameters from SsdParams, lays out
// the backward scratch, and picks the storage-type instantiation.
#include "cuda/check.cuh"
#include "cuda/ssd_launch.h"
#include "ops/ssd.h"

namespace ss {
namespace {

using cuda::ssd::Dev;

int chunk_of(DType d) {
  return d == DType::Float32 ? cuda::ssd::Traits<float>::Q : cuda::ssd::Traits<__half>::Q;
}

size_t align256(size_t v) { return (v + 255) / 256 * 256; }

Dev make_dev(const SsdParams& p) {
  Dev d{};
  d.batch = int(p.batch), d.L = int(p.seqlen), d.H = int(p.heads), d.P = int(p.headdim), d.N = int(p.dstate);
  d.G = int(p.groups), d.hpg = int(p.heads / p.groups);
  d.Q = chunk_of(p.dtype);
  d.nc = int((p.seqlen + d.Q - 1) / d.Q);
  d.Lpad = d.nc * d.Q;
  d.NP = cuda::ssd::round16(d.N);
  d.PC = cuda::ssd::round16(d.P);
  // 32-wide headdim tiles: twice the blocks of 64 (C·Bᵀ is recomputed per tile) but a
  // shared-memory footprint (~110 KB at dstate 128) that lets two blocks share an SM.
  d.PT = std::min(32, d.PC);
  d.PP = (d.P + d.PT - 1) / d.PT * d.PT;
  d.HB = cuda::ssd::chunk_gradient_heads(d, p.dtype == DType::Float32);
  d.nhb = (d.hpg + d.HB - 1) / d.HB;
  d.nslots = d.G * d.nhb;
  d.x = p.x, d.z = p.z, d.B = p.B, d.C = p.C, d.dout = p.dout, d.dt = p.dt;
  d.x_str = p.x_str, d.z_str = p.z_str, d.B_str = p.B_str, d.C_str = p.C_str, d.dt_str = p.dt_str;
  d.dt_type = p.dt_dtype;
  d.A = static_cast<const float*>(p.A), d.D = static_cast<const float*>(p.D);
  d.dt_bias = static_cast<const float*>(p.dt_bias), d.h0 = static_cast<const float*>(p.initial_states);
  d.dfinal = static_cast<const float*>(p.dfinal_states);
  d.seq_idx = p.seq_idx;
  d.d_per_channel = p.d_per_channel, d.softplus = p.dt_softplus, d.clamp = p.clamp_dt;
  d.dt_min = float(p.dt_min), d.dt_max = float(p.dt_max);
  d.y = p.y, d.final_states = static_cast<float*>(p.final_states);
  d.dx = p.dx, d.dz = p.dz, d.ddt = static_cast<float*>(p.ddt);
  d.dB = static_cast<float*>(p.dB), d.dC = static_cast<float*>(p.dC), d.dA = static_cast<float*>(p.dA);
  d.dD = static_cast<float*>(p.dD), d.ddt_bias = static_cast<float*>(p.ddt_bias);
  d.dh0 = static_cast<float*>(p.dinitial_states);
  return d;
}

size_t cb_bytes(const Dev& d) { return align256(size_t(d.batch) * d.nc * d.G * d.Q * d.Q * 4); }

// Backward scratch: C·Bᵀ, S0, S1 (chunk states, T), dB/dC partials per run of heads, per-chunk
// partials; 16-bit types also the chunks' decays (dec) and the state products' token weights.
struct BwdScratch {
  size_t cb, s0, s1, dBh, dCh, dA, dbias, dD, dec, wts, bytes;
  explicit BwdScratch(const Dev& d, size_t ts) {
    const size_t states = size_t(d.batch) * d.H * d.nc * d.PP * d.NP * ts;
    const size_t partial = size_t(d.batch) * d.Lpad * d.nslots * d.NP * 4;
    const size_t per_chunk = size_t(d.batch) * d.H * d.nc * 4;
    size_t o = 0;
    cb = o, o += cb_bytes(d);
    s0 = o, o = align256(o + states);
    s1 = o, o = align256(o + states);
    dBh = o, o = align256(o + partial);
    dCh = o, o = align256(o + partial);
    dA = o, o = align256(o + per_chunk);
    dbias = o, o = align256(o + per_chunk);
    dD = o, o = align256(o + per_chunk * d.P);
    dec = wts = o;
    if (ts != 4) {
      dec = o, o += align256(size_t(d.batch) * d.H * d.nc * 4);
      wts = o, o += align256(2 * size_t(d.batch) * d.H * d.Lpad * 4);
    }
    bytes = o;
  }
};

template <typename F> void with_type(DType t, F&& f) {
  switch (t) {
    case DType::Float32: f(static_cast<float*>(nullptr)); break;
    case DType::Float16: f(static_cast<__half*>(nullptr)); break;
    case DType::BFloat16: f(static_cast<__nv_bfloat16*>(nullptr)); break;
    default: fail("ERR_DTYPE", ErrorKind::Type, "ssdChunkScan: x must be float32, float16 or bfloat16 on CUDA");
  }
}

// The 16-bit forward runs chunk-parallel on kChunkedQ-token chunks.
Dev make_chunked_dev(const SsdParams& p) { return cuda::ssd::chunked_view(make_dev(p)); }

// Its scratch: C·Bᵀ per chunk and group (T, fragment order), the state entering every chunk
// (T), per-token (cumsum, dt') and, with seqIdx, per-token segment numbers, per-chunk readiness
// counters (batch, H, nc).
struct ChunkedScratch {
  size_t cb, st, scal, segs, ready, bytes;
  ChunkedScratch(const Dev& c, bool seq_idx) {
    const size_t tokens = size_t(c.batch) * c.H * c.Lpad;
    size_t o = 0;
    cb = o, o += align256(size_t(cuda::ssd::forward_mma_cb_bytes(c)));
    st = o, o += align256(size_t(c.batch) * c.H * c.nc * c.PP * c.NP * 2);
    scal = o, o += align256(tokens * 8);
    segs = o, o += seq_idx ? align256(tokens * 4) : 0;
    ready = o, o += align256(size_t(c.batch) * c.H * c.nc * 4);
    bytes = o;
  }
};

}  // namespace

size_t ssd_forward_cuda_scratch(const SsdParams& p) {
  if (p.dtype == DType::Float32) return cb_bytes(make_dev(p));  // C·Bᵀ per chunk and group
  return ChunkedScratch(make_chunked_dev(p), p.seq_idx != nullptr).bytes;
}

size_t ssd_backward_cuda_scratch(const SsdParams& p) {
  return BwdScratch(make_dev(p), dtype_size(p.dtype)).bytes;
}

void ssd_forward_cuda(const SsdParams& p, void* scratch, void* stream) {
  const bool f32 = p.dtype == DType::Float32;
  Dev d = f32 ? make_dev(p) : make_chunked_dev(p);
  char* base = static_cast<char*>(scratch);
  void* cb = nullptr;
  float2* scal = nullptr;
  int* segs = nullptr;
  unsigned* ready = nullptr;
  if (f32) {
    d.CB = static_cast<float*>(scratch);
  } else {
    const ChunkedScratch s(d, p.seq_idx != nullptr);
    cb = base + s.cb;
    d.St = base + s.st;
    scal = reinterpret_cast<float2*>(base + s.scal);
    if (p.seq_idx) segs = reinterpret_cast<int*>(base + s.segs);
    ready = reinterpret_cast<unsigned*>(base + s.ready);
  }
  with_type(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (std::is_same_v<T, float>)
      cuda::ssd::launch_forward<T>(d, static_cast<cudaStream_t>(stream));
    else
      cuda::ssd::launch_forward_mma<T>(d, cb, scal, segs, ready, static_cast<cudaStream_t>(stream));
  });
}

void ssd_backward_cuda(const SsdParams& p, void* scratch, void* stream) {
  Dev d = make_dev(p);
  const BwdScratch s(d, dtype_size(p.dtype));
  char* base = static_cast<char*>(scratch);
  d.CB = reinterpret_cast<float*>(base + s.cb);
  d.S0 = base + s.s0, d.S1 = base + s.s1;
  d.dBh = reinterpret_cast<float*>(base + s.dBh), d.dCh = reinterpret_cast<float*>(base + s.dCh);
  d.dA_part = reinterpret_cast<float*>(base + s.dA), d.dbias_part = reinterpret_cast<float*>(base + s.dbias);
  d.dD_part = reinterpret_cast<float*>(base + s.dD);
  float* weights = nullptr;
  if (p.dtype != DType::Float32)
    d.dec = reinterpret_cast<float*>(base + s.dec), weights = reinterpret_cast<float*>(base + s.wts);
  with_type(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    cuda::ssd::launch_backward<T>(d, weights, static_cast<cudaStream_t>(stream));
  });
}

}  // namespace ss
