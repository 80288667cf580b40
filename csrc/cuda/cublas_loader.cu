#include "cuda/cublas_loader.h"
#include <dlfcn.h>
#include <glob.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>
#include "cuda/check.cuh"

namespace ss::cuda {
namespace {

// From cublas_api.h / library_types.h (values are part of the ABI).
using cublasHandle_t = void*;
using cublasStatus_t = int;
constexpr int kOpN = 0, kOpT = 1;
constexpr int kCompute32F = 68;     // CUBLAS_COMPUTE_32F: f32 accumulation, no TF32
constexpr int kGemmDefault = -1;    // CUBLAS_GEMM_DEFAULT
constexpr int kR32F = 0, kR16F = 2, kR16BF = 14;  // cudaDataType

using CreateFn = cublasStatus_t (*)(cublasHandle_t*);
using SetStreamFn = cublasStatus_t (*)(cublasHandle_t, cudaStream_t);
using GemmExFn = cublasStatus_t (*)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int,
                                    const void*, int, int, const void*, void*, int, int, int, int);

struct Library {
  void* handle = nullptr;
  std::string name, error;
  CreateFn create = nullptr;
  SetStreamFn set_stream = nullptr;
  GemmExFn gemm_ex = nullptr;
  std::unordered_map<int, cublasHandle_t> handles;  // per device
};

Library& library() {
  static Library lib;
  static std::once_flag once;
  std::call_once(once, [] {
    std::string tried;
    std::vector<std::string> names;
    if (const char* env_path = std::getenv("STATESPACE_CUBLAS_PATH"); env_path && *env_path) names.push_back(env_path);
    for (const char* n : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) names.push_back(n);
    // Not on the loader path but common: the toolkit's lib64 and the pip wheels PyTorch uses.
    for (const char* pattern : {"/usr/local/cuda/lib64/libcublas.so.1[23]", "/usr/local/cuda-1[23]*/lib64/libcublas.so.1[23]",
                                "/usr/local/lib/python3*/dist-packages/nvidia/cu*/lib/libcublas.so.1[23]",
                                "/usr/local/lib/python3*/dist-packages/nvidia/cublas/lib/libcublas.so.1[23]",
                                "/usr/lib/python3*/site-packages/nvidia/cublas/lib/libcublas.so.1[23]",
                                "/usr/local/lib/python3*/site-packages/nvidia/cublas/lib/libcublas.so.1[23]"}) {
      glob_t g{};
      if (glob(pattern, 0, nullptr, &g) == 0)
        for (size_t i = g.gl_pathc; i-- > 0;) names.push_back(g.gl_pathv[i]);  // newest version first
      globfree(&g);
    }
    for (const std::string& n : names) {
      lib.handle = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib.handle) {
        lib.name = n;
        break;
      }
      const char* e = dlerror();
      tried += std::string(tried.empty() ? "" : "; ") + (e ? e : n.c_str());
    }
    if (!lib.handle) {
      lib.error = "libcublas not found (" + tried + ")";
      return;
    }
    lib.create = reinterpret_cast<CreateFn>(dlsym(lib.handle, "cublasCreate_v2"));
    lib.set_stream = reinterpret_cast<SetStreamFn>(dlsym(lib.handle, "cublasSetStream_v2"));
    lib.gemm_ex = reinterpret_cast<GemmExFn>(dlsym(lib.handle, "cublasGemmEx"));
    if (!lib.create || !lib.set_stream || !lib.gemm_ex) lib.error = lib.name + " lacks cublasCreate_v2/cublasSetStream_v2/cublasGemmEx";
  });
  return lib;
}

// cuBLASLt with a measured algorithm choice, for the GEMMs of batched decode (8 < M <= 64,
// 16-bit; STATESPACE_CUBLASLT=1 while it is measured against cublasGemmEx's heuristic pick). The
// first call of a shape outside stream capture asks the heuristic for up to 8 algorithms (32 MB of
// workspace allowed), times each three times on a cold L2 (a 64 MB memset before each run) and
// keeps the fastest; a shape first met during capture, or one whose tuning failed, stays with
// cublasGemmEx. ABI: the entry points and enum values of cublasLt.h (stable since CUDA 11).
namespace lt {
using Handle = void*;
using Desc = void*;
using Layout = void*;
using Pref = void*;
struct Algo {
  uint64_t data[8];
};
struct HeuristicResult {
  Algo algo;
  size_t workspace;
  int state;
  float waves;
  int reserved[4];
};
constexpr int kDescTransA = 3, kDescTransB = 4, kPrefMaxWorkspace = 1;
constexpr size_t kWorkspace = size_t{32} << 20, kFlush = size_t{64} << 20;

struct Api {
  void* so = nullptr;
  int (*create)(Handle*) = nullptr;
  int (*desc_create)(Desc*, int, int) = nullptr;
  int (*desc_set)(Desc, int, const void*, size_t) = nullptr;
  int (*layout_create)(Layout*, int, uint64_t, uint64_t, int64_t) = nullptr;
  int (*pref_create)(Pref*) = nullptr;
  int (*pref_set)(Pref, int, const void*, size_t) = nullptr;
  int (*heuristic)(Handle, Desc, Layout, Layout, Layout, Layout, Pref, int, HeuristicResult*, int*) = nullptr;
  int (*matmul)(Handle, Desc, const void*, const void*, Layout, const void*, Layout, const void*, const void*, Layout, void*, Layout,
                const Algo*, void*, size_t, cudaStream_t) = nullptr;
  bool ok = false;
};

Api& api() {
  static Api a;
  static std::once_flag once;
  std::call_once(once, [] {
    for (const char* n : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"})
      if ((a.so = dlopen(n, RTLD_NOW | RTLD_LOCAL))) break;
    if (!a.so) return;
    auto sym = [&](auto& f, const char* name) { f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(dlsym(a.so, name)); return f != nullptr; };
    a.ok = sym(a.create, "cublasLtCreate") && sym(a.desc_create, "cublasLtMatmulDescCreate") && sym(a.desc_set, "cublasLtMatmulDescSetAttribute") &&
           sym(a.layout_create, "cublasLtMatrixLayoutCreate") && sym(a.pref_create, "cublasLtMatmulPreferenceCreate") &&
           sym(a.pref_set, "cublasLtMatmulPreferenceSetAttribute") && sym(a.heuristic, "cublasLtMatmulAlgoGetHeuristic") &&
           sym(a.matmul, "cublasLtMatmul");
  });
  return a;
}

struct Plan {
  bool ok = false;
  Desc desc = nullptr;
  Layout a = nullptr, b = nullptr, c = nullptr;
  Algo algo{};
  size_t workspace = 0;
};
struct DeviceState {
  Handle handle = nullptr;
  void* workspace = nullptr;
  void* flush = nullptr;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int, int>, Plan> plans;
};
std::mutex mu;
std::unordered_map<int, DeviceState> states;

bool wanted(const GemmParams& p) {
  const char* v = std::getenv("STATESPACE_CUBLASLT");
  return v && v[0] == '1' && p.M > kGemvMaxM && p.M <= 64 && (p.dtype == DType::BFloat16 || p.dtype == DType::Float16);
}

// Runs p through a tuned cuBLASLt plan; false (nothing launched) when there is none to run.
bool gemm(const GemmParams& p, cudaStream_t st, int device) {
  Api& A = api();
  if (!A.ok) return false;
  std::lock_guard<std::mutex> lock(mu);
  DeviceState& d = states[device];
  const int ldw = static_cast<int>(p.ldw ? p.ldw : p.K), ldx = static_cast<int>(p.ldx ? p.ldx : p.K);
  const auto key = std::make_tuple(p.M, p.N, p.K, static_cast<int64_t>(ldw), static_cast<int64_t>(ldx),
                                   (p.w_col_major ? 1 : 0) | (p.x_col_major ? 2 : 0), static_cast<int>(p.dtype));
  const float alpha = 1.f, beta = 0.f;
  auto it = d.plans.find(key);
  if (it == d.plans.end()) {
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(st, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone) return false;  // tuned outside capture only
    Plan& pl = d.plans[key];
    if (!d.handle && A.create(&d.handle) != 0) return false;
    if (!d.workspace && cudaMalloc(&d.workspace, kWorkspace) != cudaSuccess) return cudaGetLastError(), false;
    if (!d.flush && cudaMalloc(&d.flush, kFlush) != cudaSuccess) return cudaGetLastError(), false;
    const int type = p.dtype == DType::BFloat16 ? kR16BF : kR16F;
    const int ta = p.w_col_major ? kOpN : kOpT, tb = p.x_col_major ? kOpT : kOpN;
    // As cublas_gemm: column-major outᵀ (N, M) = op(W) · op(x).
    if (A.desc_create(&pl.desc, kCompute32F, kR32F) != 0 || A.desc_set(pl.desc, kDescTransA, &ta, sizeof ta) != 0 ||
        A.desc_set(pl.desc, kDescTransB, &tb, sizeof tb) != 0 ||
        A.layout_create(&pl.a, type, ta == kOpT ? p.K : p.N, ta == kOpT ? p.N : p.K, ldw) != 0 ||
        A.layout_create(&pl.b, type, tb == kOpN ? p.K : p.M, tb == kOpN ? p.M : p.K, ldx) != 0 ||
        A.layout_create(&pl.c, type, p.N, p.M, p.N) != 0)
      return false;
    Pref pref = nullptr;
    const uint64_t ws = kWorkspace;
    if (A.pref_create(&pref) != 0 || A.pref_set(pref, kPrefMaxWorkspace, &ws, sizeof ws) != 0) return false;
    HeuristicResult res[8];
    int n = 0;
    if (A.heuristic(d.handle, pl.desc, pl.a, pl.b, pl.c, pl.c, pref, 8, res, &n) != 0 || n <= 0) return false;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    float best = 1e30f;
    for (int i = 0; i < n; ++i) {
      if (res[i].state != 0 || res[i].workspace > kWorkspace) continue;
      float t = 1e30f;
      bool good = A.matmul(d.handle, pl.desc, &alpha, p.weight, pl.a, p.x, pl.b, &beta, p.out, pl.c, p.out, pl.c, &res[i].algo, d.workspace,
                           kWorkspace, st) == 0;
      for (int r = 0; r < 3 && good; ++r) {
        cudaMemsetAsync(d.flush, r, kFlush, st);
        cudaEventRecord(e0, st);
        good = A.matmul(d.handle, pl.desc, &alpha, p.weight, pl.a, p.x, pl.b, &beta, p.out, pl.c, p.out, pl.c, &res[i].algo, d.workspace,
                        kWorkspace, st) == 0;
        cudaEventRecord(e1, st);
        float ms = 0.f;
        if (good && cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess) t = std::min(t, ms);
      }
      if (good && t < best) {
        best = t;
        pl.algo = res[i].algo;
        pl.workspace = res[i].workspace;
        pl.ok = true;
      }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaGetLastError();
    it = d.plans.find(key);
  }
  const Plan& pl = it->second;
  if (!pl.ok) return false;
  return A.matmul(d.handle, pl.desc, &alpha, p.weight, pl.a, p.x, pl.b, &beta, p.out, pl.c, p.out, pl.c, &pl.algo, d.workspace, kWorkspace,
                  st) == 0;
}
}  // namespace lt

bool disabled() {
  const char* v = std::getenv("STATESPACE_CUBLAS");
  return v && std::string(v) == "0";
}

}  // namespace

std::string gemm_backend(int device) {
  (void)device;
  if (disabled()) return "builtin (STATESPACE_CUBLAS=0)";
  Library& lib = library();
  if (!lib.error.empty()) return "builtin (" + lib.error + ")";
  return "cublas (" + lib.name + ")";
}

bool cublas_usable(const GemmParams& p, std::string* why) {
  if (disabled()) {
    *why = "STATESPACE_CUBLAS=0";
    return false;
  }
  const int64_t lim = 0x7fffffff;
  if (p.M > lim || p.N > lim || p.K > lim || p.K == 0 || p.ldx > lim || p.ldw > lim) {
    *why = "sizes outside cuBLAS's int range or K = 0";
    return false;
  }
  Library& lib = library();
  if (!lib.error.empty()) {
    *why = lib.error;
    return false;
  }
  return true;
}

bool cublas_gemm(const GemmParams& p, void* stream, int device, std::string* why) {
  if (!cublas_usable(p, why)) return false;
  Library& lib = library();
  cublasHandle_t& h = lib.handles[device];
  if (!h && lib.create(&h) != 0) {
    h = nullptr;
    *why = "cublasCreate failed";
    return false;
  }
  if (lt::wanted(p) && lt::gemm(p, static_cast<cudaStream_t>(stream), device)) return true;
  if (lib.set_stream(h, static_cast<cudaStream_t>(stream)) != 0) fail("ERR_CUDA", ErrorKind::Plain, "linear: cublasSetStream failed");
  const int type = p.dtype == DType::BFloat16 ? kR16BF : p.dtype == DType::Float16 ? kR16F : kR32F;
  const float alpha = 1.f, beta = 0.f;
  // Row-major out (M, N) is column-major outᵀ (N, M) = W (N, K) · xᵀ. A row-major W (element
  // (n, k) at n·ld + k) read column-major is (K, N): transposed; a column-major W (a transposed
  // view) is (N, K) as it stands. A row-major x read column-major is xᵀ (K, M) as needed; a
  // column-major x is (M, K): transposed.
  const int ldw = static_cast<int>(p.ldw ? p.ldw : p.K), ldx = static_cast<int>(p.ldx ? p.ldx : p.K);
  cublasStatus_t s = lib.gemm_ex(h, p.w_col_major ? kOpN : kOpT, p.x_col_major ? kOpT : kOpN, static_cast<int>(p.N),
                                 static_cast<int>(p.M), static_cast<int>(p.K), &alpha, p.weight, type, ldw, p.x, type, ldx,
                                 &beta, p.out, type, static_cast<int>(p.N), kCompute32F, kGemmDefault);
  if (s != 0) fail("ERR_CUDA", ErrorKind::Plain, "linear: cublasGemmEx failed with status " + std::to_string(s));
  return true;
}

}  // namespace ss::cuda
