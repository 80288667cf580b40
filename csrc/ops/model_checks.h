// Argument checks shared by the model op families (conv1d, dense, state update): each names the
// argument, the expected and the actual value, with the codes of core/error.h.
#pragma once
#include <string>
#include <vector>
#include "core/error.h"
#include "core/tensor.h"
#include "ops/dispatch.h"

namespace ss::checks {

inline std::string dims_str(const std::vector<int64_t>& s) { return shape_str(s); }

// t has exactly `shape`; `desc` names the dimensions, e.g. "(batch, dim, seqlen)".
inline void shape(const char* name, const Tensor& t, const std::vector<int64_t>& expect, const std::string& desc) {
  if (t.shape != expect) fail_shape(name, desc + " = " + shape_str(expect), t.shape);
}

inline void rank(const char* name, const Tensor& t, int r, const std::string& desc) {
  if (t.ndim() != r) fail_shape(name, desc, t.shape);
}

// f32/f16/bf16 (and f64 when `f64_ok`, i.e. on the CPU).
inline void floating(const char* name, const Tensor& t, bool f64_ok) {
  DType d = t.dtype;
  bool ok = d == DType::Float32 || d == DType::Float16 || d == DType::BFloat16 || (f64_ok && d == DType::Float64);
  if (!ok) fail_dtype(name, f64_ok ? "float32, float16, bfloat16 or float64" : "float32, float16 or bfloat16", dtype_name(d));
}

inline void dtype(const char* name, const Tensor& t, DType expect) {
  if (t.dtype != expect) fail_dtype(name, dtype_name(expect), dtype_name(t.dtype));
}

inline void same_dtype(const char* name, const Tensor& t, const char* other, DType expect) {
  if (t.dtype != expect)
    fail_dtype(name, std::string(dtype_name(expect)) + " (the dtype of " + other + ")", dtype_name(t.dtype));
}

inline void contiguous(const char* name, const Tensor& t) {
  if (!t.is_contiguous())
    fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": must be contiguous (it is updated in place)");
}

// A caller's tensor that an op writes a result into (e.g. a slot of a decode state cache, so that
// no copy follows the op): same device, `expect` shape, `dt`, contiguous. Returns whether the
// kernels may write it directly: not when it shares memory with one of `ins` (the initial state in
// the same cache slot, which a kernel may still read after another block wrote the result); the op
// then writes a temporary and copies it into `out` after.
inline bool direct_out(const char* name, const Tensor& out, Device dev, DType dt, const std::vector<int64_t>& expect, const std::string& desc,
                       const std::vector<Tensor>& ins) {
  check_same_device(dev, {{name, &out}});
  shape(name, out, expect, desc);
  dtype(name, out, dt);
  if (!out.is_contiguous()) fail("ERR_INVALID_ARG", ErrorKind::Type, std::string(name) + ": must be contiguous (it is written in place)");
  for (const Tensor& t : ins)
    if (t.defined() && t.storage == out.storage) return false;
  return true;
}

}  // namespace ss::checks
