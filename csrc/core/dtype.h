// Element types and their sizes/names. float64 exists on the CPU only (references).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace ss {

enum class DType : int { Float32 = 0, Float16 = 1, BFloat16 = 2, Int32 = 3, Float64 = 4 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float16:
    case DType::BFloat16: return 2;
    case DType::Float64: return 8;
    default: return 4;
  }
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int32: return "int32";
    case DType::Float64: return "float64";
  }
  return "?";
}

inline bool parse_dtype(const std::string& s, DType* out) {
  for (int i = 0; i <= 4; ++i) {
    if (s == dtype_name(static_cast<DType>(i))) {
      *out = static_cast<DType>(i);
      return true;
    }
  }
  return false;
}

inline bool is_floating(DType t) { return t != DType::Int32; }

}  // namespace ss
