// A fixed pool of worker threads for one session: parallel_for splits a
// range of tasks between the calling thread and the workers and returns when
// all are done. Workers spin briefly before sleeping, so back-to-back small
// ops (batch-1 inference) do not pay a wake-up each.
#ifndef PAKD_SRC_RUNTIME_THREAD_POOL_H_
#define PAKD_SRC_RUNTIME_THREAD_POOL_H_

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

}  // namespace pakd::runtime

#endif  // PAKD_SRC_RUNTIME_THREAD_POOL_H_
