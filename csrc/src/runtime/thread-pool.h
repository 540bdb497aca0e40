// A fixed pool of worker threads for one session: parallel_for splits a
// range of tasks between the calling thread and the workers and returns when
// all are done. Workers spin briefly before sleeping, so back-to-back small
// ops (batch-1 inference) do not pay a wake-up each.
#ifndef PAKD_SRC_RUNTIME_THREAD_POOL_H_
#define PAKD_SRC_RUNTIME_THREAD_POOL_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pakd::runtime {

class ThreadPool {
 public:
  // num_threads counts the caller: 1 means no worker thread.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(task) for every task in [0, count), spread over the threads.
  // fn must not throw.
  void parallel_for(std::size_t count, const std::function<void(std::size_t)>& fn);

 private:
  struct Job {
    const std::function<void(std::size_t)>* fn;
    std::size_t count;
    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> done{0};
    std::atomic<int> users{0};  // workers currently inside this job
  };
  void worker_loop();
  static void run_tasks(Job& job);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  Job* job_ = nullptr;  // the job workers may join (guarded by mutex_)
  std::atomic<std::uint64_t> generation_{0};
  bool stop_ = false;
};

// Below this many multiply-adds an op runs on one thread.
constexpr std::size_t kMinParallelMacs = 1 << 18;

// Splits [0, total) into at most pool.num_threads() chunks whose sizes are
// multiples of `align` (except the last) and calls fn(begin, end) for each on
// the pool; one call on this thread when the op is small (macs below
// kMinParallelMacs).
template <typename Fn>
void parallel_ranges(ThreadPool& pool, std::size_t total, std::size_t align, std::size_t macs, Fn&& fn) {
  std::size_t parts = static_cast<std::size_t>(pool.num_threads());
  if (macs < kMinParallelMacs || total <= align) parts = 1;
  std::size_t chunk = (total + parts - 1) / parts;
  chunk = (chunk + align - 1) / align * align;
  const std::size_t tasks = (total + chunk - 1) / chunk;
  if (tasks <= 1) {
    fn(std::size_t{0}, total);
    return;
  }
  pool.parallel_for(tasks, [&](std::size_t t) {
    const std::size_t b = t * chunk;
    fn(b, std::min(total, b + chunk));
  });
}

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_THREAD_POOL_H_
