#include "core/storage.h"
#include <cstdlib>
#include <cstring>
#include <string>

namespace ss {
namespace {

std::atomic<size_t> g_cpu_in_use{0};
std::atomic<bool> g_poison{std::getenv("STATESPACE_POISON") && std::string(std::getenv("STATESPACE_POISON")) == "1"};

// 64-byte aligned host memory so vector loads never straddle cache lines at a row start.
struct CpuAllocator : Allocator {
  void* allocate(Device, size_t bytes) override {
    size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n ? n : 64);
    if (!p) fail("ERR_OOM", ErrorKind::Range, "out of host memory allocating " + std::to_string(bytes) + " bytes");
    g_cpu_in_use += bytes;
    if (g_poison) std::memset(p, 0xff, bytes);
    return p;
  }
  void deallocate(Device, void* p, size_t bytes) override {
    std::free(p);
    g_cpu_in_use -= bytes;
  }
};

Allocator* g_allocators[2] = {new CpuAllocator(), nullptr};

}  // namespace

void register_allocator(DeviceKind kind, Allocator* a) { g_allocators[static_cast<int>(kind)] = a; }
Allocator* allocator_for(DeviceKind kind) { return g_allocators[static_cast<int>(kind)]; }
size_t cpu_bytes_in_use() { return g_cpu_in_use.load(); }
void set_poison(bool on) { g_poison = on; }
bool poison_enabled() { return g_poison; }

std::shared_ptr<Storage> Storage::create(Device d, size_t bytes) {
  Allocator* a = allocator_for(d.kind);
  if (!a) fail("ERR_DEVICE", ErrorKind::Type, "device " + d.str() + " is not available: statespace was built without CUDA");
  void* p = a->allocate(d, bytes);
  return std::shared_ptr<Storage>(new Storage(d, p, bytes));
}

Storage::~Storage() {
  if (ptr_) allocator_for(device_.kind)->deallocate(device_, ptr_, bytes_);
}

void Storage::set_error(std::shared_ptr<const Error> e) {
  std::lock_guard<std::mutex> lock(mu_);
  error_ = std::move(e);
}

std::shared_ptr<const Error> Storage::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device{DeviceKind::CPU, 0};
  if (s == "cuda") return Device{DeviceKind::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    int idx = 0;
    for (size_t i = 5; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') idx = -1;
      if (idx >= 0) idx = idx * 10 + (s[i] - '0');
      if (idx > 1024) idx = -1;
    }
    if (idx >= 0) return Device{DeviceKind::CUDA, idx};
  }
  fail("ERR_DEVICE", ErrorKind::Type, "device: expected 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
}

}  // namespace ss
