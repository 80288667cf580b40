#include "ops/classical_common.h"
#include "core/error.h"
#include "ops/tensor_ops.h"

namespace ss::classical {

DType check_float_cpu(const char* name, const Tensor& t) {
  if (!t.device().is_cpu())
    fail_device(name, "cpu (the classical toolkit runs on the CPU)", t.device().str());
  if (t.dtype != DType::Float32 && t.dtype != DType::Float64) fail_dtype(name, "float32 or float64", dtype_name(t.dtype));
  return t.dtype;
}

void check_like(const char* name, const Tensor& t, DType d) {
  if (!t.device().is_cpu())
    fail_device(name, "cpu (the classical toolkit runs on the CPU)", t.device().str());
  if (t.dtype != d) fail_dtype(name, std::string(dtype_name(d)) + " (like the other inputs)", dtype_name(t.dtype));
}

void expect_shape(const char* name, const Tensor& t, const std::vector<int64_t>& shape, const std::string& meaning) {
  if (t.shape != shape) fail_shape(name, meaning + " = " + shape_str(shape), t.shape);
}

void fail_arg(const std::string& message) { fail("ERR_INVALID_ARG", ErrorKind::Type, message); }
void fail_range(const std::string& message) { fail("ERR_SHAPE", ErrorKind::Range, message); }

Tensor dense(const Tensor& t) { return contiguous(t); }

}  // namespace ss::classical
