#include "core/work_queue.h"
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace ss {

class WorkQueue {
 public:
  WorkQueue() { std::thread([this] { loop(); }).detach(); }

  void push(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
    ++pending_;
    cv_.notify_one();
  }

  void wait_idle() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait(lock, [&] { return pending_ == 0; });
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      try {
        task();  // tasks report their own errors; this only keeps the thread alive
      } catch (...) {
      }
      task = nullptr;  // release captured storage before counting the task done
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) idle_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::function<void()>> tasks_;
  int64_t pending_ = 0;
};

namespace {
std::mutex g_mu;
std::map<std::pair<int, int>, WorkQueue*>& queues() {
  static auto* m = new std::map<std::pair<int, int>, WorkQueue*>();  // leaked: threads outlive statics
  return *m;
}
}  // namespace

WorkQueue& queue_for(Device d) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto key = std::make_pair(static_cast<int>(d.kind), d.index);
  auto& q = queues()[key];
  if (!q) q = new WorkQueue();
  return *q;
}

void enqueue(Device d, std::function<void()> task) { queue_for(d).push(std::move(task)); }
void wait_idle(Device d) { queue_for(d).wait_idle(); }

void wait_all_idle() {
  std::vector<WorkQueue*> all;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (auto& kv : queues()) all.push_back(kv.second);
  }
  for (auto* q : all) q->wait_idle();
}

}  // namespace ss
