// Host/device annotation for code shared by the C++ and CUDA backends (no CUDA headers here).
#pragma once
#if defined(__CUDACC__)
#define SS_HD __host__ __device__ __forceinline__
#else
#define SS_HD inline
#endif
