// A fixed pool of worker threads for data-parallel CPU kernels.
// parallel_for splits [0, n) into contiguous ranges of at least `grain` items; the calling
// thread works too. Calls from inside a parallel region run inline (no nested fan-out).
#pragma once
#include <cstdint>
#include <functional>

namespace ss {

int cpu_threads();  // STATESPACE_THREADS, else the hardware concurrency
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace ss
