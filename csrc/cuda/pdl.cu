// Host side of cuda/pdl.cuh: whether programmatic launches are used.
#include "cuda/pdl.cuh"
#include <cstdlib>
#include <cstring>

namespace ss::cuda {
namespace {

constexpr int kMaxDevices = 64;

struct DeviceTraits {
  int major = -1;
};

const DeviceTraits& traits() {
  static thread_local DeviceTraits cache[kMaxDevices];
  int d = 0;
  cudaGetDevice(&d);
  static DeviceTraits none;
  if (d < 0 || d >= kMaxDevices) return none;
  DeviceTraits& t = cache[d];
  if (t.major < 0) {
    cudaDeviceGetAttribute(&t.major, cudaDevAttrComputeCapabilityMajor, d);
  }
  return t;
}

}  // namespace

bool pdl_enabled() {
  // Read on every launch (cheap) so that a benchmark can compare both settings in one process;
  // a captured graph keeps the setting it was captured with.
  const char* v = std::getenv("STATESPACE_PDL");
  if (v && std::strcmp(v, "0") == 0) return false;
  return traits().major >= 9;
}

}  // namespace ss::cuda
