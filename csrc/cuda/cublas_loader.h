// cuBLAS, loaded at run time (the build machine has no cuBLAS): dlopen of
// $STATESPACE_CUBLAS_PATH, libcublas.so.13, .so.12 or .so on the loader path, then the usual
// places off it (/usr/local/cuda*/lib64, pip's nvidia/cublas wheels); entry points by dlsym. The few
// prototypes and enum values used are declared here; they are the stable C ABI of cuBLAS.
// STATESPACE_CUBLAS=0 (read on every call) turns it off, so both GEMM paths can be tested.
#pragma once
#include <string>
#include <vector>
#include "ops/dense.h"

namespace ss::cuda {

// Runs out = x · weightᵀ on the stream with cublasGemmEx (f32 accumulation; exact f32 for
// f32 data, no TF32). Returns false, with the reason in *why, when cuBLAS can't be used
// (not found, turned off, sizes beyond its int range); the caller then runs its own kernel.
// The bias is not applied here.
bool cublas_gemm(const GemmParams& p, void* stream, int device, std::string* why);

// Whether cublas_gemm would run p (library found, not turned off, sizes and leading dimensions
// in cuBLAS's int range); otherwise the reason in *why.
bool cublas_usable(const GemmParams& p, std::string* why);

// "cublas (<library>; <cuBLASLt status>)" or "builtin (<why cuBLAS is not used>)".
std::string gemm_backend(int device);

// The path or name libcublas was loaded from ("" when it was not).
std::string cublas_library_name();

// dlopen of the first of `names` that loads (RTLD_NOW | RTLD_LOCAL); its name in *opened. On
// failure nullptr, with every loader error in *tried ("; "-separated). Shared by the cuBLAS and
// cuBLASLt loaders.
void* dlopen_first(const std::vector<std::string>& names, std::string* opened, std::string* tried);

}  // namespace ss::cuda
