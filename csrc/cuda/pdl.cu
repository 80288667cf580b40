// Host side of cuda/pdl.cuh: whether programmatic launches are used.
#include "cuda/pdl.cuh"
#include "cuda/runtime.h"
#include <cstdlib>
#include <cstring>

namespace ss::cuda {
bool pdl_enabled() {
  // Read on every launch (cheap) so that a benchmark can compare both settings in one process;
  // a captured graph keeps the setting it was captured with.
  const char* v = std::getenv("STATESPACE_PDL");
  if (v && std::strcmp(v, "0") == 0) return false;
  return compute_capability() >= 90;
}
}  // namespace ss::cuda
