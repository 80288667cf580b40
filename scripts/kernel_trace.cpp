// A kernel timeline of any CUDA program, for the GPU host (nsys is not installed there): a CUPTI
// injection library that records every kernel's GPU start and end, graph-replayed kernels
// included, and writes them as CSV when the process exits. Where ncu runs kernels one at a time,
// this shows a replayed decode step as it runs: the overlaps that programmatic launches and the
// side stream give, and the gaps between kernels. scripts/trace_step.js summarises the CSV.
//
// Build on the GPU host (the CUPTI headers ship with the CUDA toolkit there) and run a step:
//   H=/usr/local/cuda/targets/x86_64-linux
//   K=$(grep -oE '\} CUpti_ActivityKernel[0-9]+;' $H/include/cupti_activity.h | grep -oE '[0-9]+' | sort -n | tail -1)
//   g++ -O2 -shared -fPIC -std=c++17 -DKERNEL_RECORD=CUpti_ActivityKernel$K -I$H/include \
//       -o /tmp/libkernel_trace.so scripts/kernel_trace.cpp -L$H/lib -lcupti -Wl,-rpath,$H/lib
//   CUDA_INJECTION64_PATH=/tmp/libkernel_trace.so KERNEL_TRACE_OUT=k.csv \
//       node dist/bench/decode_timeline.js mamba2-2.7b 20
//   node scripts/trace_step.js k.csv
// Tracing adds ~2% to a b1 step (mamba2-2.7b on the H100: 2.381 against 2.325 ms a replay).
#include <cupti.h>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#ifndef KERNEL_RECORD
#error "define KERNEL_RECORD as the newest CUpti_ActivityKernelN of this toolkit's cupti_activity.h"
#endif

namespace {

struct Kernel {
  unsigned long long start, end;
  unsigned stream, grid, block;
  std::string name;
};
std::vector<Kernel> g_kernels;
std::mutex g_mu;

void CUPTIAPI buffer_requested(uint8_t** buf, size_t* size, size_t* max_records) {
  *size = size_t{8} << 20;
  *buf = static_cast<uint8_t*>(aligned_alloc(8, *size));
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buf, size_t, size_t valid) {
  std::lock_guard<std::mutex> lock(g_mu);
  CUpti_Activity* r = nullptr;
  while (cuptiActivityGetNextRecord(buf, valid, &r) == CUPTI_SUCCESS) {
    if (r->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
    const auto* k = reinterpret_cast<const KERNEL_RECORD*>(r);
    g_kernels.push_back({k->start, k->end, k->streamId, static_cast<unsigned>(k->gridX * k->gridY * k->gridZ),
                         static_cast<unsigned>(k->blockX * k->blockY * k->blockZ), k->name ? k->name : "?"});
  }
  free(buf);
}

void write_csv() {
  cuptiActivityFlushAll(1);
  const char* path = getenv("KERNEL_TRACE_OUT");
  FILE* f = fopen(path ? path : "kernel_trace.csv", "w");
  if (!f) return;
  std::lock_guard<std::mutex> lock(g_mu);
  fprintf(f, "start_ns,end_ns,stream,grid,block,name\n");
  for (const Kernel& k : g_kernels) fprintf(f, "%llu,%llu,%u,%u,%u,\"%s\"\n", k.start, k.end, k.stream, k.grid, k.block, k.name.c_str());
  fclose(f);
}

}  // namespace

// Called by the CUDA driver when it loads the library named by CUDA_INJECTION64_PATH.
extern "C" int InitializeInjection() {
  cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
  cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  atexit(write_csv);
  return 1;
}
