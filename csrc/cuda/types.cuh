// Storage types on the device and a dtype switch that lifts a runtime DType into a template
// parameter (as FlashAttention's BOOL_SWITCH does for flags).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "core/dtype.h"
#include "core/error.h"

namespace ss::cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(int v) { return static_cast<float>(v); }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ int from_float<int>(float v) { return static_cast<int>(v); }

}  // namespace ss::cuda

// Runs the body with `T` bound to the storage type of a floating dtype (f32/f16/bf16).
#define SS_FLOAT_SWITCH(DTYPE, T, ...)                                                          \
  [&] {                                                                                         \
    switch (DTYPE) {                                                                            \
      case ::ss::DType::Float32: { using T = float; return __VA_ARGS__(); }                     \
      case ::ss::DType::Float16: { using T = __half; return __VA_ARGS__(); }                    \
      case ::ss::DType::BFloat16: { using T = __nv_bfloat16; return __VA_ARGS__(); }            \
      default: ::ss::fail("ERR_DTYPE", ::ss::ErrorKind::Type, "unsupported dtype on CUDA");     \
    }                                                                                           \
  }()

// Same, also allowing int32.
#define SS_ANY_SWITCH(DTYPE, T, ...)                                                            \
  [&] {                                                                                         \
    switch (DTYPE) {                                                                            \
      case ::ss::DType::Float32: { using T = float; return __VA_ARGS__(); }                     \
      case ::ss::DType::Float16: { using T = __half; return __VA_ARGS__(); }                    \
      case ::ss::DType::BFloat16: { using T = __nv_bfloat16; return __VA_ARGS__(); }           \
      case ::ss::DType::Int32: { using T = int; return __VA_ARGS__(); }                         \
      default: ::ss::fail("ERR_DTYPE", ::ss::ErrorKind::Type, "unsupported dtype on CUDA");     \
    }                                                                                           \
  }()
