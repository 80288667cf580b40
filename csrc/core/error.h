// Errors with stable codes. C++ throws ss::Error; the binding turns it into a JS
// TypeError / RangeError / Error carrying `code` (see csrc/binding/js_error.cc).
#pragma once
#include <stdexcept>
#include <string>
#include <vector>
#include <cstdint>

namespace ss {

enum class ErrorKind { Type, Range, Plain };

class Error : public std::runtime_error {
 public:
  Error(std::string code, ErrorKind kind, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)), kind_(kind) {}
  const std::string& code() const { return code_; }
  ErrorKind kind() const { return kind_; }

 private:
  std::string code_;
  ErrorKind kind_;
};

std::string shape_str(const std::vector<int64_t>& shape);

[[noreturn]] void fail(const char* code, ErrorKind kind, const std::string& message);
// "u: expected shape (2, 3, 4), got (2, 3)"
[[noreturn]] void fail_shape(const std::string& arg, const std::string& expected, const std::vector<int64_t>& got);
[[noreturn]] void fail_dtype(const std::string& arg, const std::string& expected, const char* got);
[[noreturn]] void fail_device(const std::string& arg, const std::string& expected, const std::string& got);

}  // namespace ss
