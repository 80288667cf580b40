#include "cuda/cublas_loader.h"
#include <dlfcn.h>
#include <glob.h>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>
#include "cuda/check.cuh"
#include "cuda/cublaslt_gemm.h"

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
    lib.handle = dlopen_first(names, &lib.name, &tried);
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
  return "cublas (" + lib.name + "; decode batches: " + cublaslt_backend() + ")";
}

void* dlopen_first(const std::vector<std::string>& names, std::string* opened, std::string* tried) {
  for (const std::string& n : names) {
    if (void* h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      *opened = n;
      return h;
    }
    const char* e = dlerror();
    *tried += std::string(tried->empty() ? "" : "; ") + (e ? e : n.c_str());
  }
  return nullptr;
}

std::string cublas_library_name() {
  Library& lib = library();
  return lib.handle ? lib.name : std::string();
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
