#include "core/error.h"

namespace ss {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

void fail(const char* code, ErrorKind kind, const std::string& message) { throw Error(code, kind, message); }

void fail_shape(const std::string& arg, const std::string& expected, const std::vector<int64_t>& got) {
  fail("ERR_SHAPE", ErrorKind::Range, arg + ": expected shape " + expected + ", got " + shape_str(got));
}

void fail_dtype(const std::string& arg, const std::string& expected, const char* got) {
  fail("ERR_DTYPE", ErrorKind::Type, arg + ": expected dtype " + expected + ", got " + got);
}

void fail_device(const std::string& arg, const std::string& expected, const std::string& got) {
  fail("ERR_DEVICE", ErrorKind::Type, arg + ": expected a tensor on " + expected + ", got one on " + got);
}

}  // namespace ss
