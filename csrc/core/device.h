// Device identity: the CPU or CUDA device N.
#pragma once
#include <string>

namespace ss {

enum class DeviceKind { CPU = 0, CUDA = 1 };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;
  bool is_cpu() const { return kind == DeviceKind::CPU; }
  bool is_cuda() const { return kind == DeviceKind::CUDA; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

// Accepts "cpu", "cuda", "cuda:N"; throws ERR_DEVICE otherwise (does not check N exists).
Device parse_device(const std::string& s);

}  // namespace ss
