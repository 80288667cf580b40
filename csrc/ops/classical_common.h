// Argument checks shared by the classical toolkit's ops: every tensor of one call lives on the
// CPU and has one floating dtype (float32 or float64); shapes are checked with messages that
// say what each dimension means. Complex values are a trailing dimension of 2 (re, im).
#pragma once
#include <string>
#include <vector>
#include "core/tensor.h"

namespace ss::classical {

// Checks t is a CPU float32/float64 tensor; returns its dtype.
DType check_float_cpu(const char* name, const Tensor& t);
// Checks t is a CPU tensor of dtype d.
void check_like(const char* name, const Tensor& t, DType d);
// Fails with ERR_SHAPE unless t.shape == shape; `meaning` names the dimensions, e.g. "(n, m)".
void expect_shape(const char* name, const Tensor& t, const std::vector<int64_t>& shape, const std::string& meaning);
[[noreturn]] void fail_arg(const std::string& message);   // ERR_INVALID_ARG (TypeError)
[[noreturn]] void fail_range(const std::string& message); // ERR_SHAPE (RangeError)
// A contiguous version of t (t itself when already contiguous).
Tensor dense(const Tensor& t);

}  // namespace ss::classical
