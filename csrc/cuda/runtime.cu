#include "cuda/runtime.h"
#include "cuda/side_stream.h"
#include "cuda/pinned_read.h"
#include <dlfcn.h>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include "core/storage.h"
#include "cuda/check.cuh"

namespace ss::cuda {

int malloc_relaxed(void** p, size_t bytes) {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&mode);
  const cudaError_t e = cudaMalloc(p, bytes);
  cudaThreadExchangeStreamCaptureMode(&mode);
  return e;
}

namespace {

// Device memory handed out while a stream capture is in progress: a bump arena of chunks that
// the captured graph owns (freed with it) instead of cudaMallocAsync. Captured stream-ordered
// allocations become memory-allocation nodes of the graph, and a node between two kernels turns
// their programmatic-dependent-launch edge (cuda/pdl.cuh) into a full serialisation: every op
// of a decode step allocates its output, so its kernels could never overlap. The tensors of a
// capture are all freed inside it (end_capture checks). A block freed during the capture is
// reused by a later allocation of it: the graph replays as one chain in stream order, and a
// kernel writes only after its programmatic wait, i.e. after every earlier kernel (the block's
// last readers among them) has finished. A side-stream branch (linear_conv_update's
// rest_on_side) reads only its caller's tensors and writes its output, all kept alive until the op
// that joins it back. STATESPACE_GRAPH_ARENA=0 turns the arena off.
struct CaptureArena {
  static constexpr size_t kChunk = size_t{16} << 20, kAlign = 256;
  std::vector<std::pair<char*, size_t>> chunks;
  char* cur = nullptr;
  size_t left = 0;
  std::unordered_map<void*, size_t> sizes;        // every block handed out, by its rounded size
  std::vector<std::pair<void*, size_t>> free_blocks;  // freed during the capture: reusable
};

struct DeviceState {
  cudaStream_t stream = nullptr;
  cudaMemPool_t pool = nullptr;
  std::atomic<size_t> in_use{0};
  // stream capture in progress: allocations made during it that are still alive
  std::atomic<bool> capturing{false};
  std::unordered_set<void*> captured_live;
  CaptureArena* arena = nullptr;  // during a capture, unless turned off
  std::mutex capture_mu;
  size_t total_memory = 0;  // of the card: larger requests fail without asking the driver
};

// Executable graphs and the arenas they own.
std::mutex g_arena_mu;
std::unordered_map<void*, CaptureArena*>& graph_arenas() {
  static auto* m = new std::unordered_map<void*, CaptureArena*>();
  return *m;
}

void free_arena(CaptureArena* a) {
  if (!a) return;
  for (auto& c : a->chunks) cudaFree(c.first);
  cudaGetLastError();
  delete a;
}

// Bytes from the capture's arena (a new chunk when the current one is short; malloc_relaxed).
void* arena_allocate(CaptureArena& a, size_t bytes, int device) {
  const size_t want = (bytes + CaptureArena::kAlign - 1) / CaptureArena::kAlign * CaptureArena::kAlign;
  size_t best = a.free_blocks.size();  // the smallest freed block that fits
  for (size_t i = 0; i < a.free_blocks.size(); ++i)
    if (a.free_blocks[i].second >= want && (best == a.free_blocks.size() || a.free_blocks[i].second < a.free_blocks[best].second)) best = i;
  if (best < a.free_blocks.size()) {
    void* p = a.free_blocks[best].first;
    a.free_blocks[best] = a.free_blocks.back();
    a.free_blocks.pop_back();
    return p;
  }
  if (want > a.left) {
    const size_t size = want > CaptureArena::kChunk ? want : CaptureArena::kChunk;
    void* p = nullptr;
    const cudaError_t e = static_cast<cudaError_t>(malloc_relaxed(&p, size));
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail("ERR_CUDA_OOM", ErrorKind::Range,
           "out of GPU memory on cuda:" + std::to_string(device) + " allocating " + std::to_string(size) + " bytes for a graph capture");
    }
    a.chunks.emplace_back(static_cast<char*>(p), size);
    a.cur = static_cast<char*>(p);
    a.left = size;
  }
  void* p = a.cur;
  a.cur += want;
  a.left -= want;
  a.sizes[p] = want;
  return p;
}

// Takes back a block of the arena (reusable by the rest of the capture); false if p is not one.
bool arena_free(CaptureArena* a, void* p) {
  if (!a) return false;
  auto it = a->sizes.find(p);
  if (it == a->sizes.end()) return false;
  a->free_blocks.emplace_back(p, it->second);
  return true;
}

std::mutex g_mu;
std::vector<void (*)()>& preloads() {
  static auto* v = new std::vector<void (*)()>();  // filled by static initializers
  return *v;
}
std::vector<DeviceState*>& states() {
  static auto* v = new std::vector<DeviceState*>();  // leaked: used by worker threads at exit
  return *v;
}

int probe(std::string* reason) {
  static int count = -1;
  static std::string why;
  static std::once_flag once;
  std::call_once(once, [] {
    // The runtime is linked statically and finds the driver (libcuda) at run time; say so
    // plainly when it is missing rather than "driver version is insufficient".
    if (void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL)) {
      dlclose(h);
    } else {
      count = 0;
      why = "no NVIDIA driver found (libcuda.so.1 could not be loaded)";
      return;
    }
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      cudaGetLastError();
      count = 0;
      why = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    } else {
      count = n;
      if (n == 0) why = "no CUDA device found";
    }
    states().resize(count, nullptr);
  });
  if (reason) *reason = why;
  return count;
}

DeviceState& state(int device) {
  int n = probe(nullptr);
  if (device < 0 || device >= n) {
    std::string why;
    probe(&why);
    fail("ERR_DEVICE", ErrorKind::Type,
         "device cuda:" + std::to_string(device) + " is not available (" +
             (n == 0 ? "CUDA unavailable: " + why : std::to_string(n) + " CUDA device(s) present") + ")");
  }
  std::lock_guard<std::mutex> lock(g_mu);
  DeviceState*& s = states()[device];
  if (!s) {
    check(cudaSetDevice(device), "cudaSetDevice");
    auto* ns = new DeviceState();
    check(cudaStreamCreateWithFlags(&ns->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cudaDeviceGetDefaultMemPool(&ns->pool, device), "cudaDeviceGetDefaultMemPool");
    uint64_t keep = ~0ull;  // keep freed blocks cached in the pool (reported by memory())
    check(cudaMemPoolSetAttribute(ns->pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
    // Pre-grow the pool once (1/16 of the device memory, at most 4 GiB, at most half of what is
    // free): growing it maps fresh pages on the host, which would otherwise land on the first call
    // of an op that needs large outputs or scratch (measured: f32 selective scan's first call
    // 0.2 ms over its median without this, 0.03 with it). Kept cached like any freed block;
    // emptyCache() gives it back. STATESPACE_CUDA_PREGROW_MB overrides the size (0: none), for
    // processes that share a card (a parallel test run starts one per test file).
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
      ns->total_memory = total_b;
      size_t want = total_b / 16;
      if (want > (size_t{4} << 30)) want = size_t{4} << 30;
      if (const char* mb = std::getenv("STATESPACE_CUDA_PREGROW_MB")) want = size_t(std::strtoull(mb, nullptr, 10)) << 20;
      if (want > free_b / 2) want = free_b / 2;
      void* p = nullptr;
      if (want > 0 && cudaMallocAsync(&p, want, ns->stream) == cudaSuccess) cudaFreeAsync(p, ns->stream);
    }
    cudaGetLastError();  // the reservation is an optimisation only: never leave its error behind
    for (auto fn : preloads()) fn();  // load the registered kernels now (the device is current)
    cudaGetLastError();
    s = ns;
  }
  return *s;
}

struct CudaAllocator : Allocator {
  void* allocate(Device d, size_t bytes) override {
    DeviceState& s = state(d.index);
    cudaSetDevice(d.index);
    void* p = nullptr;
    if (s.capturing) {
      std::lock_guard<std::mutex> lock(s.capture_mu);
      if (s.arena) {
        p = arena_allocate(*s.arena, bytes ? bytes : 1, d.index);
        s.in_use += bytes;
        s.captured_live.insert(p);
      }
    }
    if (p) {
      if (poison_enabled()) cudaMemsetAsync(p, 0xff, bytes, s.stream);
      return p;
    }
    // A request larger than the card can never succeed; the driver would still grow the pool
    // towards it first, briefly taking the card's free memory from other processes.
    const bool never_fits = s.total_memory && bytes > s.total_memory;
    cudaError_t e = never_fits ? cudaErrorMemoryAllocation : cudaMallocAsync(&p, bytes ? bytes : 1, s.stream);
    if (e == cudaErrorMemoryAllocation && !never_fits) {
      // Give cached blocks back and try once more before reporting out-of-memory.
      cudaGetLastError();
      cudaStreamSynchronize(s.stream);
      cudaMemPoolTrimTo(s.pool, 0);
      e = cudaMallocAsync(&p, bytes ? bytes : 1, s.stream);
    }
    if (e != cudaSuccess) {
      if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        fail("ERR_CUDA_OOM", ErrorKind::Range,
             "out of GPU memory on cuda:" + std::to_string(d.index) + " allocating " + std::to_string(bytes) + " bytes");
      }
      throw_cuda(e, "cudaMallocAsync");
    }
    s.in_use += bytes;
    if (s.capturing) {
      std::lock_guard<std::mutex> lock(s.capture_mu);
      s.captured_live.insert(p);
    }
    if (poison_enabled()) cudaMemsetAsync(p, 0xff, bytes, s.stream);
    return p;
  }
  void deallocate(Device d, void* p, size_t bytes) override {
    DeviceState& s = state(d.index);
    cudaSetDevice(d.index);
    if (s.capturing) {
      std::lock_guard<std::mutex> lock(s.capture_mu);
      if (arena_free(s.arena, p)) {  // the graph keeps it
        s.in_use -= bytes;
        s.captured_live.erase(p);
        return;
      }
    }
    if (cudaFreeAsync(p, s.stream) != cudaSuccess) cudaGetLastError();  // never leave an error for the next launch check
    s.in_use -= bytes;
    if (s.capturing) {
      std::lock_guard<std::mutex> lock(s.capture_mu);
      s.captured_live.erase(p);
    }
  }
};

const bool g_registered = [] {
  register_allocator(DeviceKind::CUDA, new CudaAllocator());
  return true;
}();

}  // namespace

int device_count() { return probe(nullptr); }

std::string unavailable_reason() {
  std::string why;
  probe(&why);
  return why;
}

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) cudaGetLastError();
  return v;
}

DeviceInfo device_info(int device) {
  state(device);
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  DeviceInfo info;
  info.name = p.name;
  info.major = p.major;
  info.minor = p.minor;
  info.total_memory = p.totalGlobalMem;
  info.multiprocessors = p.multiProcessorCount;
  info.l2_bytes = p.l2CacheSize;
  info.shared_per_block_optin = p.sharedMemPerBlockOptin;
  int clock = 0, bus = 0;
  cudaDeviceGetAttribute(&clock, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, device);
  info.memory_clock_khz = clock;
  info.memory_bus_bits = bus;
  size_t free_b = 0, total_b = 0;
  cudaSetDevice(device);
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) info.free_memory = free_b;
  return info;
}

void set_device(int device) {
  state(device);
  check(cudaSetDevice(device), "cudaSetDevice");
}

void* stream(int device) {
  DeviceState& s = state(device);
  check(cudaSetDevice(device), "cudaSetDevice");
  return s.stream;
}

static void refuse_while_capturing(int device, const char* what) {
  if (state(device).capturing)
    fail("ERR_INVALID_ARG", ErrorKind::Plain,
         std::string(what) + " waits for the GPU from the host, which is not allowed while capturing a CUDA graph");
}

void copy_h2d(void* dst, const void* src, size_t bytes, int device) {
  refuse_while_capturing(device, "copying host data to the GPU");
  cudaStream_t st = static_cast<cudaStream_t>(stream(device));
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st), "copy to GPU");
  // Pageable sources are staged before cudaMemcpyAsync returns, so src may be reused now.
}

void* record_event(int device) {
  refuse_while_capturing(device, "reading a tensor or synchronising");
  cudaStream_t st = static_cast<cudaStream_t>(stream(device));
  join_side_if_forked(st, device);  // synchronize sees what an op left on the side stream
  cudaEvent_t ev;
  check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(ev, st), "cudaEventRecord");
  return ev;
}

void wait_event(void* event, int device) {
  cudaSetDevice(device);
  cudaEvent_t ev = static_cast<cudaEvent_t>(event);
  cudaError_t e = cudaEventSynchronize(ev);
  cudaEventDestroy(ev);
  check(e, "waiting for the GPU");
}

void wait_event_and_copy_d2h(void* dst, const void* src, size_t bytes, void* event, int device) {
  wait_event(event, device);
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copy from GPU");
}

namespace {

// Pinned staging blocks of kPinnedReadBytes, kept for the process (a read in flight holds one;
// a few exist at most).
std::mutex pinned_mutex;
std::vector<void*> pinned_free;

void* take_pinned() {
  {
    std::lock_guard<std::mutex> lock(pinned_mutex);
    if (!pinned_free.empty()) {
      void* p = pinned_free.back();
      pinned_free.pop_back();
      return p;
    }
  }
  void* p = nullptr;
  check(cudaMallocHost(&p, kPinnedReadBytes), "cudaMallocHost (staging for reads)");
  return p;
}

void give_pinned(void* p) {
  std::lock_guard<std::mutex> lock(pinned_mutex);
  pinned_free.push_back(p);
}

class PinnedRead final : public PendingRead {
 public:
  PinnedRead(size_t bytes, int device) : bytes_(bytes), device_(device), staging_(take_pinned()) {}
  ~PinnedRead() override {
    if (ev_) {
      cudaSetDevice(device_);
      cudaEventSynchronize(ev_);  // the copy into the block must be over before it is reused
      cudaEventDestroy(ev_);
    }
    give_pinned(staging_);
  }
  void start(const void* src) {
    cudaStream_t st = static_cast<cudaStream_t>(stream(device_));
    check(cudaMemcpyAsync(staging_, src, bytes_, cudaMemcpyDeviceToHost, st), "copy from GPU");
    check(cudaEventCreateWithFlags(&ev_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventRecord(ev_, st), "cudaEventRecord");
  }
  void finish(void* dst) override {
    cudaSetDevice(device_);
    check(cudaEventSynchronize(ev_), "waiting for the GPU");
    std::memcpy(dst, staging_, bytes_);
  }

 private:
  size_t bytes_;
  int device_;
  void* staging_;
  cudaEvent_t ev_ = nullptr;
};

}  // namespace

std::shared_ptr<PendingRead> start_read_d2h(const void* src, size_t bytes, int device) {
  refuse_while_capturing(device, "reading a tensor or synchronising");
  auto r = std::make_shared<PinnedRead>(bytes, device);
  r->start(src);
  return r;
}

MemoryStats memory_stats(int device) {
  DeviceState& s = state(device);
  MemoryStats m;
  m.in_use = s.in_use.load();
  uint64_t reserved = 0;
  if (cudaMemPoolGetAttribute(s.pool, cudaMemPoolAttrReservedMemCurrent, &reserved) == cudaSuccess)
    m.reserved = reserved;
  return m;
}

void empty_cache(int device) {
  DeviceState& s = state(device);
  check(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize");
  check(cudaMemPoolTrimTo(s.pool, 0), "cudaMemPoolTrimTo");
}

void register_kernel_preload(void (*fn)()) { preloads().push_back(fn); }

namespace {
// A property of the current device, read once per device and thread by `query` (0 when unknown:
// a caller that sizes grids or picks kernels then takes the general path).
template <typename Query> int cached_per_device(int (&cache)[64], Query query) {
  int d = 0;
  if (cudaGetDevice(&d) != cudaSuccess || d < 0 || d >= 64) {
    cudaGetLastError();  // leave no error for the next launch check
    return 0;
  }
  if (cache[d] == 0) {
    cache[d] = query(d);
    cudaGetLastError();
  }
  return cache[d];
}
}  // namespace

int sm_count() {
  static thread_local int cache[64] = {};
  const int n = cached_per_device(cache, [](int d) {
    int v = 0;
    cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, d);
    return v;
  });
  return n > 0 ? n : 1;
}

int compute_capability() {
  static thread_local int cache[64] = {};
  return cached_per_device(cache, [](int d) {
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d) != cudaSuccess)
      return 0;
    return major * 10 + minor;
  });
}

void check_launch(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_cuda(e, what);
}

double time_copy(int device, size_t bytes, int iters) {
  cudaStream_t st = static_cast<cudaStream_t>(stream(device));
  void *a = nullptr, *b = nullptr;
  check(cudaMallocAsync(&a, bytes, st), "cudaMallocAsync");
  cudaError_t e = cudaMallocAsync(&b, bytes, st);
  if (e != cudaSuccess) {
    cudaFreeAsync(a, st);
    throw_cuda(e, "cudaMallocAsync");
  }
  cudaMemsetAsync(a, 1, bytes, st);
  for (int i = 0; i < 3; ++i) cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st);
  cudaEvent_t t0, t1;
  cudaEventCreate(&t0);
  cudaEventCreate(&t1);
  cudaEventRecord(t0, st);
  for (int i = 0; i < iters; ++i) cudaMemcpyAsync(i & 1 ? a : b, i & 1 ? b : a, bytes, cudaMemcpyDeviceToDevice, st);
  cudaEventRecord(t1, st);
  e = cudaEventSynchronize(t1);
  float ms = 0;
  cudaEventElapsedTime(&ms, t0, t1);
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  cudaFreeAsync(a, st);
  cudaFreeAsync(b, st);
  check(e, "copy benchmark");
  return ms / iters;
}

}  // namespace ss::cuda

namespace ss::cuda {

void* timing_event_record(int device) {
  cudaStream_t st = static_cast<cudaStream_t>(stream(device));
  cudaEvent_t ev;
  check(cudaEventCreate(&ev), "cudaEventCreate");
  check(cudaEventRecord(ev, st), "cudaEventRecord");
  return ev;
}

double timing_event_elapsed_ms(void* start, void* end) {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(end)), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)), "cudaEventElapsedTime");
  return ms;
}

void timing_event_destroy(void* ev) { cudaEventDestroy(static_cast<cudaEvent_t>(ev)); }

}  // namespace ss::cuda

namespace ss::cuda {

void begin_capture(int device) {
  DeviceState& s = state(device);
  if (s.capturing) fail("ERR_INVALID_ARG", ErrorKind::Plain, "captureGraph: cuda:" + std::to_string(device) + " is already capturing");
  check(cudaSetDevice(device), "cudaSetDevice");
  {
    std::lock_guard<std::mutex> lock(s.capture_mu);
    s.captured_live.clear();
    const char* v = std::getenv("STATESPACE_GRAPH_ARENA");
    s.arena = v && std::strcmp(v, "0") == 0 ? nullptr : new CaptureArena();
  }
  join_side_if_forked(s.stream, device);  // eager work left on the side stream stays outside the capture
  check(cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  s.capturing = true;
}

void* end_capture(int device, bool discard) {
  DeviceState& s = state(device);
  cudaGraph_t graph = nullptr;
  // Work an op left on the side stream (linear_conv_update's rest_on_side) joins the capture back
  // (an error here surfaces as the capture's).
  cudaError_t e = cudaSuccess;
  try {
    join_side_if_forked(s.stream, device);
  } catch (const std::exception&) {
    e = cudaErrorStreamCaptureUnjoined;
  }
  const cudaError_t ended = cudaStreamEndCapture(s.stream, &graph);
  if (e == cudaSuccess) e = ended;
  s.capturing = false;
  size_t leaked;
  CaptureArena* arena;
  {
    std::lock_guard<std::mutex> lock(s.capture_mu);
    leaked = s.captured_live.size();
    s.captured_live.clear();
    arena = s.arena;
    s.arena = nullptr;
  }
  // Without a graph the arena goes too, unless tensors still point into it (then it is left
  // allocated: they are a misuse reported below, and must not see their memory freed).
  auto drop_arena = [&] {
    if (!leaked) free_arena(arena);
  };
  if (e != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    drop_arena();
    if (discard) return nullptr;
    throw_cuda(e, "captureGraph");
  }
  if (discard || leaked) {
    cudaGraphDestroy(graph);
    drop_arena();
    if (discard) return nullptr;
    fail("ERR_INVALID_ARG", ErrorKind::Plain,
         "captureGraph: " + std::to_string(leaked) +
             " tensor(s) allocated during the capture are still alive; write graph outputs into tensors "
             "allocated before the capture (copyInto) and dispose everything else inside it (tidy)");
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) drop_arena();
  check(e, "cudaGraphInstantiate");
  if (arena) {
    std::lock_guard<std::mutex> lock(g_arena_mu);
    graph_arenas()[exec] = arena;
  }
  return exec;
}

void replay_graph(void* exec, int device) {
  cudaStream_t st = static_cast<cudaStream_t>(stream(device));
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), st), "cudaGraphLaunch");
}

void destroy_graph(void* exec) {
  cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
  CaptureArena* a = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_arena_mu);
    auto it = graph_arenas().find(exec);
    if (it != graph_arenas().end()) {
      a = it->second;
      graph_arenas().erase(it);
    }
  }
  free_arena(a);  // cudaFree waits for the graph's last replay
}

bool capturing(int device) { return state(device).capturing; }

}  // namespace ss::cuda
