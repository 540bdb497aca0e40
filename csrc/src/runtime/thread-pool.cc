#include "runtime/thread-pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PAKD_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define PAKD_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define PAKD_CPU_RELAX() std::this_thread::yield()
#endif

namespace pakd::runtime {

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_tasks(Job& job) {
  for (std::size_t t = job.next.fetch_add(1); t < job.count; t = job.next.fetch_add(1)) {
    (*job.fn)(t);
    job.done.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  for (;;) {
    // Spin for the next job (batch-1 inference runs many small parallel
    // ops back to back, each shorter than a futex wake-up: a sleeping
    // worker would arrive after the caller had done all the tasks itself),
    // then sleep. 2^18 pauses are a few milliseconds.
    for (int spin = 0; spin < (1 << 18) && generation_.load(std::memory_order_acquire) == seen; ++spin) {
      PAKD_CPU_RELAX();
    }
    Job* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (stop_) return;
      job = job_;
      if (job != nullptr) job->users.fetch_add(1);
    }
    if (job != nullptr) {
      run_tasks(*job);
      job->users.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

void ThreadPool::parallel_for(std::size_t count, const std::function<void(std::size_t)>& fn) {
  if (count == 0) return;
  if (workers_.empty() || count == 1) {
    for (std::size_t t = 0; t < count; ++t) fn(t);
    return;
  }
  Job job;
  job.fn = &fn;
  job.count = count;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &job;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_tasks(job);
  while (job.done.load(std::memory_order_acquire) < count) std::this_thread::yield();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;  // no worker can join from now on
  }
  while (job.users.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

}  // namespace pakd::runtime
