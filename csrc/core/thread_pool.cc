#include "core/thread_pool.h"
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ss {
namespace {

thread_local bool t_in_parallel = false;

// One parallel region: its own counters, so a worker that wakes late can never take
// chunks of a later region.
struct Job {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n, chunks;
  std::atomic<int64_t> next{0};
  int64_t done = 0;
  std::exception_ptr error;
  std::mutex mu;
  std::condition_variable done_cv;

  void work() {
    t_in_parallel = true;
    for (;;) {
      int64_t c = next.fetch_add(1);
      if (c >= chunks) break;
      try {
        (*fn)(n * c / chunks, n * (c + 1) / chunks);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu);
      if (++done == chunks) done_cv.notify_all();
    }
    t_in_parallel = false;
  }
};

class Pool {
 public:
  explicit Pool(int n) : size_(n) {
    for (int i = 0; i < n - 1; ++i) std::thread([this] { loop(); }).detach();  // live as long as the process
  }
  int size() const { return size_; }

  void run(int64_t n, int64_t chunks, const std::function<void(int64_t, int64_t)>& fn) {
    std::lock_guard<std::mutex> serial(run_mu_);  // one parallel region at a time
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n = n;
    job->chunks = chunks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = job;
      ++generation_;
    }
    cv_.notify_all();
    job->work();
    std::unique_lock<std::mutex> lock(job->mu);
    job->done_cv.wait(lock, [&] { return job->done == job->chunks; });
    if (job->error) std::rethrow_exception(job->error);
  }

 private:
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = job_;
      }
      job->work();
    }
  }

  int size_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool(cpu_threads());  // leaked on purpose: no teardown races at exit
  return *p;
}

}  // namespace

int cpu_threads() {
  static int n = [] {
    const char* env = std::getenv("STATESPACE_THREADS");
    int v = env ? std::atoi(env) : 0;
    if (v <= 0) v = static_cast<int>(std::thread::hardware_concurrency());
    return std::max(1, std::min(v, 256));
  }();
  return n;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, pool().size() * 4);
  if (chunks <= 1 || t_in_parallel || pool().size() == 1) {
    fn(0, n);
    return;
  }
  pool().run(n, chunks, fn);
}

}  // namespace ss
