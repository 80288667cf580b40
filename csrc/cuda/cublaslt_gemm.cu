#include "cuda/cublaslt_gemm.h"
#include <dlfcn.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>
#include "cuda/check.cuh"
#include "cuda/cublas_loader.h"
#include "cuda/runtime.h"

namespace ss::cuda {
namespace {

// From cublasLt.h / cublas_api.h / library_types.h (values and layouts are part of the ABI).
using Status = int;
using LtHandle = void*;
using LtDesc = void*;
using LtLayout = void*;
using LtPref = void*;
struct Algo {
  uint64_t data[8];
};
struct HeuristicResult {
  Algo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};
constexpr int kOpN = 0, kOpT = 1;
constexpr int kCompute32F = 68;  // CUBLAS_COMPUTE_32F: f32 accumulation, no TF32
constexpr int kR32F = 0, kR16F = 2, kR16BF = 14;
constexpr int kDescTransA = 3, kDescTransB = 4, kDescSmTarget = 15;  // cublasLtMatmulDescAttributes_t (int32_t)
constexpr int kPrefMaxWorkspace = 1;                             // uint64_t
constexpr int kPrefAlignA = 5, kPrefAlignB = 6, kPrefAlignC = 7, kPrefAlignD = 8;  // uint32_t, bytes

using CreateFn = Status (*)(LtHandle*);
using DescCreateFn = Status (*)(LtDesc*, int, int);
using DescSetFn = Status (*)(LtDesc, int, const void*, size_t);
using LayoutCreateFn = Status (*)(LtLayout*, int, uint64_t, uint64_t, int64_t);
using PrefCreateFn = Status (*)(LtPref*);
using PrefSetFn = Status (*)(LtPref, int, const void*, size_t);
using PrefDestroyFn = Status (*)(LtPref);
using HeuristicFn = Status (*)(LtHandle, LtDesc, LtLayout, LtLayout, LtLayout, LtLayout, LtPref, int, HeuristicResult*, int*);
using MatmulFn = Status (*)(LtHandle, LtDesc, const void*, const void*, LtLayout, const void*, LtLayout, const void*, const void*,
                            LtLayout, void*, LtLayout, const Algo*, void*, size_t, cudaStream_t);

// Split-K partial sums (f32, M x N per split) and stream-K fix-up live in the workspace: 32 MiB
// holds 12 f32 splits of the widest decode product (64 x 10576), and is what cuBLAS itself
// reserves on Hopper. One per device, allocated at first use and kept.
constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr int kCandidates = 24;  // heuristic results asked for
constexpr int kTimedRuns = 5;    // per candidate, each after an L2 flush

struct Library {
  void* handle = nullptr;
  std::string name, error;
  CreateFn create = nullptr;
  DescCreateFn desc_create = nullptr;
  DescSetFn desc_set = nullptr;
  LayoutCreateFn layout_create = nullptr;
  PrefCreateFn pref_create = nullptr;
  PrefSetFn pref_set = nullptr;
  PrefDestroyFn pref_destroy = nullptr;
  HeuristicFn heuristic = nullptr;
  MatmulFn matmul = nullptr;
};

template <typename F> bool bind(void* h, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(h, name));
  return fn != nullptr;
}

Library& library() {
  static Library lib;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> names;
    if (const char* env_path = std::getenv("STATESPACE_CUBLASLT_PATH"); env_path && *env_path) names.push_back(env_path);
    // The libcublas in use loads its own libcublasLt from its directory: the same file first.
    const std::string cublas = cublas_library_name();
    if (const size_t slash = cublas.rfind('/'); slash != std::string::npos) {
      const size_t so = cublas.find(".so", slash);
      if (so != std::string::npos) names.push_back(cublas.substr(0, so) + "Lt" + cublas.substr(so));
    }
    for (const char* n : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}) names.push_back(n);
    std::string tried;
    lib.handle = dlopen_first(names, &lib.name, &tried);
    if (!lib.handle) {
      lib.error = "libcublasLt not found (" + tried + ")";
      return;
    }
    void* h = lib.handle;
    const bool ok = bind(h, "cublasLtCreate", lib.create) && bind(h, "cublasLtMatmulDescCreate", lib.desc_create) &&
                    bind(h, "cublasLtMatmulDescSetAttribute", lib.desc_set) && bind(h, "cublasLtMatrixLayoutCreate", lib.layout_create) &&
                    bind(h, "cublasLtMatmulPreferenceCreate", lib.pref_create) &&
                    bind(h, "cublasLtMatmulPreferenceSetAttribute", lib.pref_set) &&
                    bind(h, "cublasLtMatmulPreferenceDestroy", lib.pref_destroy) &&
                    bind(h, "cublasLtMatmulAlgoGetHeuristic", lib.heuristic) && bind(h, "cublasLtMatmul", lib.matmul);
    if (!ok) lib.error = lib.name + " lacks a cublasLt entry point";
  });
  return lib;
}

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::string(v) == value;
}

// Largest power of two (<= 256) dividing the address: the alignment the algorithm may assume.
uint32_t alignment(const void* ptr) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(ptr);
  uint32_t al = 256;
  while (al > 1 && a % al) al /= 2;
  return al;
}

// Everything an algorithm's fitness depends on, and how it is chosen (timed or not).
using Key = std::tuple<int, int64_t, int64_t, int64_t, int, int, int, int64_t, int64_t, int64_t, uint32_t, uint32_t, uint32_t, int, bool>;

struct Plan {
  bool usable = false;  // false: cuBLASLt has no algorithm for it (cublasGemmEx runs it)
  LtDesc desc = nullptr;
  LtLayout a = nullptr, b = nullptr, d = nullptr;  // C = D (beta = 0)
  Algo algo{};
  size_t workspace = 0;
};

struct DeviceLt {
  LtHandle handle = nullptr;
  void* workspace[2] = {nullptr, nullptr};  // per LtOptions::slot
};

struct Cache {
  std::mutex mu;
  std::map<Key, Plan> plans;
  std::map<int, DeviceLt> devices;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: plans may be used until the process ends
  return *c;
}

// The workspace, allocated in relaxed capture mode (the first product may be inside a capture).
void* workspace_alloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = static_cast<cudaError_t>(malloc_relaxed(&p, bytes));
  if (e != cudaSuccess) throw_cuda(e, "linear: cuBLASLt workspace");
  return p;
}

struct Operands {
  const void *a, *b;
  void* d;
  void* workspace;  // kWorkspaceBytes
};

Status run(const Library& lib, const DeviceLt& dev, const Plan& plan, const Algo& algo, size_t ws, const Operands& o, cudaStream_t st) {
  const float alpha = 1.f, beta = 0.f;
  return lib.matmul(dev.handle, plan.desc, &alpha, o.a, plan.a, o.b, plan.b, &beta, o.d, plan.d, o.d, plan.d, &algo, o.workspace, ws, st);
}

// Times each candidate on the stream (the stream is not capturing) and returns the fastest's
// index, or -1 when every one was refused. Each timed run follows a write of twice the L2 size,
// so the weights come from DRAM as in a decode step. The products write the real output; the
// caller's run afterwards rewrites it.
int fastest(const Library& lib, const DeviceLt& dev, const Plan& plan, const std::vector<HeuristicResult>& cand,
            const Operands& o, cudaStream_t st, const GemmParams& p) {
  int l2 = 0, device = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device);
  const size_t flush_bytes = static_cast<size_t>(l2 > 0 ? l2 : 64 << 20) * 2;
  void* flush = nullptr;
  if (cudaMalloc(&flush, flush_bytes) != cudaSuccess) {  // short of memory: timed with a warm L2
    cudaGetLastError();
    flush = nullptr;
  }
  cudaEvent_t ev[2 * kTimedRuns];
  for (cudaEvent_t& e : ev) check(cudaEventCreate(&e), "linear: cuBLASLt tuning events");
  int best = -1;
  float best_us = 0.f;
  std::vector<float> us(cand.size(), -1.f);
  for (size_t i = 0; i < cand.size(); ++i) {
    const Algo& algo = cand[i].algo;
    if (run(lib, dev, plan, algo, cand[i].workspace_size, o, st) != 0) continue;  // warm-up; a refusal drops it
    for (int r = 0; r < kTimedRuns; ++r) {
      if (flush) cudaMemsetAsync(flush, r, flush_bytes, st);
      cudaEventRecord(ev[2 * r], st);
      run(lib, dev, plan, algo, cand[i].workspace_size, o, st);
      cudaEventRecord(ev[2 * r + 1], st);
    }
    check(cudaEventSynchronize(ev[2 * kTimedRuns - 1]), "linear: cuBLASLt tuning");
    float total = 0.f;
    for (int r = 0; r < kTimedRuns; ++r) {
      float ms = 0.f;
      cudaEventElapsedTime(&ms, ev[2 * r], ev[2 * r + 1]);
      total += ms;
    }
    us[i] = total * 1e3f / kTimedRuns;
    if (best < 0 || us[i] < best_us) {
      best = static_cast<int>(i);
      best_us = us[i];
    }
  }
  for (cudaEvent_t& e : ev) cudaEventDestroy(e);
  if (flush) cudaFree(flush);
  check(cudaGetLastError(), "linear: cuBLASLt tuning");
  if (env_is("STATESPACE_CUBLASLT_LOG", "1")) {  // the candidates' times in the heuristic's order, then the pick
    std::fprintf(stderr, "[statespace] cublasLt %lldx%lldx%lld dtype %d ld %lld/%lld, candidates (us):", static_cast<long long>(p.M),
                 static_cast<long long>(p.N), static_cast<long long>(p.K), static_cast<int>(p.dtype), static_cast<long long>(p.ldw),
                 static_cast<long long>(p.ldx));
    for (size_t i = 0; i < cand.size(); ++i) std::fprintf(stderr, " %.2f%s", us[i], cand[i].workspace_size ? "w" : "");
    std::fprintf(stderr, " -> #%d, %.2f us\n", best, best_us);
  }
  return best;
}

}  // namespace

std::string cublaslt_backend() {
  if (env_is("STATESPACE_CUBLASLT", "0")) return "off (STATESPACE_CUBLASLT=0)";
  Library& lib = library();
  return lib.error.empty() ? "cublasLt (" + lib.name + ")" : lib.error;
}

bool cublaslt_gemm(const GemmParams& p, void* stream, int device, const LtOptions& opt) {
  if (p.M <= kGemvMaxM || p.M > kLtMaxM || env_is("STATESPACE_CUBLASLT", "0")) return false;
  std::string why;
  if (!cublas_usable(p, &why)) return false;  // also turned off by STATESPACE_CUBLAS=0
  Library& lib = library();
  if (!lib.error.empty()) return false;
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int type = p.dtype == DType::BFloat16 ? kR16BF : p.dtype == DType::Float16 ? kR16F : kR32F;
  // As cublas_gemm: row-major out (M, N) is column-major outᵀ (N, M) = op(W) · op(x), W stored
  // (K, N) column-major when row-major (transposed) or (N, K) for a transposed view; x stored
  // (K, M) column-major when row-major, (M, K) for a transposed view.
  const int op_a = p.w_col_major ? kOpN : kOpT, op_b = p.x_col_major ? kOpT : kOpN;
  const int64_t ldw = p.ldw ? p.ldw : p.K, ldx = p.ldx ? p.ldx : p.K, ldo = opt.ldo ? opt.ldo : p.N;
  const int slot = opt.slot ? 1 : 0;
  const uint32_t al_a = alignment(p.weight), al_b = alignment(p.x), al_d = alignment(p.out);
  const Key key{device, p.M, p.N, p.K, type, op_a, op_b, ldw, ldx, ldo, al_a, al_b, al_d, opt.sm_target, opt.untimed};

  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  DeviceLt& dev = c.devices[device];
  if (!dev.handle) {
    if (lib.create(&dev.handle) != 0) {
      dev.handle = nullptr;
      return false;
    }
  }
  if (!dev.workspace[slot]) dev.workspace[slot] = workspace_alloc(kWorkspaceBytes);
  const Operands o{p.weight, p.x, p.out, dev.workspace[slot]};
  auto it = c.plans.find(key);
  if (it == c.plans.end()) {
    Plan plan;
    const bool made = lib.desc_create(&plan.desc, kCompute32F, kR32F) == 0 &&
                      lib.desc_set(plan.desc, kDescTransA, &op_a, sizeof(op_a)) == 0 &&
                      lib.desc_set(plan.desc, kDescTransB, &op_b, sizeof(op_b)) == 0 &&
                      (opt.sm_target <= 0 || lib.desc_set(plan.desc, kDescSmTarget, &opt.sm_target, sizeof(opt.sm_target)) == 0) &&
                      lib.layout_create(&plan.a, type, op_a == kOpT ? p.K : p.N, op_a == kOpT ? p.N : p.K, ldw) == 0 &&
                      lib.layout_create(&plan.b, type, op_b == kOpN ? p.K : p.M, op_b == kOpN ? p.M : p.K, ldx) == 0 &&
                      lib.layout_create(&plan.d, type, p.N, p.M, ldo) == 0;
    std::vector<HeuristicResult> cand(kCandidates);
    int found = 0;
    if (made) {
      LtPref pref = nullptr;
      const uint64_t ws = kWorkspaceBytes;
      if (lib.pref_create(&pref) == 0) {
        lib.pref_set(pref, kPrefMaxWorkspace, &ws, sizeof(ws));
        lib.pref_set(pref, kPrefAlignA, &al_a, sizeof(al_a));
        lib.pref_set(pref, kPrefAlignB, &al_b, sizeof(al_b));
        lib.pref_set(pref, kPrefAlignC, &al_d, sizeof(al_d));
        lib.pref_set(pref, kPrefAlignD, &al_d, sizeof(al_d));
        if (lib.heuristic(dev.handle, plan.desc, plan.a, plan.b, plan.d, plan.d, pref, kCandidates, cand.data(), &found) != 0) found = 0;
        lib.pref_destroy(pref);
      }
    }
    cand.resize(found > 0 ? found : 0);
    for (size_t i = cand.size(); i-- > 0;)
      if (cand[i].state != 0) cand.erase(cand.begin() + static_cast<std::ptrdiff_t>(i));
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    check(cudaStreamIsCapturing(st, &capturing), "linear: cudaStreamIsCapturing");
    if (!cand.empty()) {
      const bool tune = capturing == cudaStreamCaptureStatusNone && cand.size() > 1 && !opt.untimed;
      const int pick = tune ? fastest(lib, dev, plan, cand, o, st, p) : 0;
      if (pick >= 0) {
        plan.usable = true;
        plan.algo = cand[pick].algo;
        plan.workspace = cand[pick].workspace_size;
      }
    }
    it = c.plans.emplace(key, plan).first;
  }
  const Plan& plan = it->second;
  if (!plan.usable) return false;
  const Status s = run(lib, dev, plan, plan.algo, plan.workspace, o, st);
  if (s != 0) fail("ERR_CUDA", ErrorKind::Plain, "linear: cublasLtMatmul failed with status " + std::to_string(s));
  return true;
}

}  // namespace ss::cuda
