// Owned memory on one device. Freed when the last reference goes: JS handles, queued CPU
// tasks and pending reads all hold a StoragePtr, so dispose() from JS never frees memory
// that queued work still uses. A failed asynchronous op records its error on its outputs,
// and reading them reports it.
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include "core/device.h"
#include "core/error.h"

namespace ss {

// Per-device-kind allocator; the CUDA backend registers one when compiled in.
struct Allocator {
  virtual ~Allocator() = default;
  virtual void* allocate(Device d, size_t bytes) = 0;  // throws ss::Error (ERR_CUDA_OOM, ...)
  virtual void deallocate(Device d, void* p, size_t bytes) = 0;
};
void register_allocator(DeviceKind kind, Allocator* a);
Allocator* allocator_for(DeviceKind kind);  // null when that kind is not compiled in

class Storage {
 public:
  static std::shared_ptr<Storage> create(Device d, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  void set_error(std::shared_ptr<const Error> e);
  std::shared_ptr<const Error> error() const;

 private:
  Storage(Device d, void* p, size_t bytes) : device_(d), ptr_(p), bytes_(bytes) {}
  Device device_;
  void* ptr_;
  size_t bytes_;
  mutable std::mutex mu_;
  std::shared_ptr<const Error> error_;
};
using StoragePtr = std::shared_ptr<Storage>;

// Bytes currently allocated on the CPU by statespace.
size_t cpu_bytes_in_use();

// Testing aid: when on, new allocations are filled with 0xFF bytes (NaN in every float dtype),
// so a test can prove a kernel wrote every element of its output. Also STATESPACE_POISON=1.
void set_poison(bool on);
bool poison_enabled();

}  // namespace ss
