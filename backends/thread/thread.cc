// The thread backend: a persistent pool of std::threads shared by every call
// of the process, chunked dynamic scheduling off one atomic counter, and the
// calling thread takes part. Per task there is no allocation, lock or syscall:
// a worker claims a chunk with one fetch_add and runs it through one indirect
// call. Per call: one uncontended mutex, one atomic bump of the epoch and a
// futex wake only for workers that have gone to sleep (workers spin ~100 µs
// after a call before sleeping, so back-to-back calls cost no syscall).
//
// A task must not call exit(): while a call runs here an exit() ends the
// process with a line on stderr and a non-zero status (exit_hooks.h:
// InProcessCallScope) rather than silently losing the results. Out of
// threads, the call fails naming the thread, the count and the limit.
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/executor.h"
#include "core/internal/futex.h"
#include "core/internal/scheduler.h"
#include "core/internal/spin.h"
#include "core/internal/thread_start.h"

namespace fanout {
namespace {

// The pool's futexes are private: every waiter and waker is a thread of this
// process. Spinning is the kit's SpinUntil.
void FutexWait(std::atomic<std::uint32_t>* word, std::uint32_t expected) {
  internal::FutexWait(word, expected, internal::FutexScope::kPrivate);
}

void FutexWake(std::atomic<std::uint32_t>* word, int count) {
  internal::FutexWake(word, count, internal::FutexScope::kPrivate);
}

using internal::SpinUntil;

constexpr std::chrono::microseconds kSpin{100};
constexpr int kClosed = INT_MAX / 2;
// Helpers started between looks at the call's stop token.
constexpr int kStopCheckEvery = 16;

class Pool {
 public:
  RunReport Run(const Job& job, const RunOptions& options);
  // Runs work->run(work) on a helper, soon (a fanout::Pool's drainers);
  // with null, only makes sure `workers` helpers exist.
  void Post(internal::Work* work, int workers);

 private:
  // Starts helpers until there are `count`; false (and fewer) when `stop`
  // (if any) was raised meanwhile.
  bool EnsureHelpers(int count, const StopToken* stop = nullptr);
  void HelperLoop(std::uint32_t seen);
  void Work(int worker);
  internal::Work* PopPosted();

  std::mutex call_mu_;  // one call at a time on the pool
  std::mutex helpers_mu_;
  std::vector<std::thread> helpers_;

  // Posted work, taken by helpers between calls.
  std::mutex posted_mu_;
  internal::Work* posted_head_ = nullptr;
  internal::Work* posted_tail_ = nullptr;
  std::atomic<int> posted_{0};
  // Bumped for every call and every post: what sleeping helpers wait on.
  alignas(64) std::atomic<std::uint32_t> wake_{0};

  // The current call; written before epoch_ is bumped.
  const Job* job_ = nullptr;
  const RunOptions* options_ = nullptr;
  std::atomic<int> max_helpers_{0};  // read by helpers that lost the race

  internal::CallControl control_;  // the call's chunks and stop flag
  alignas(64) std::atomic<std::uint32_t> epoch_{0};
  std::atomic<int> sleepers_{0};
  alignas(64) std::atomic<int> joined_{kClosed};
  alignas(64) std::atomic<std::uint32_t> finished_{0};
  std::atomic<int> caller_sleeping_{0};
  internal::FailureList failures_;
};

// The pool of this process. A forked child gets a fresh one: the parent's
// threads do not exist there (the old object is leaked on purpose).
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_atfork_once;

Pool& GetPool() {
  Pool* pool = g_pool.load(std::memory_order_acquire);
  if (pool != nullptr) return *pool;
  std::call_once(g_atfork_once, [] {
    pthread_atfork(nullptr, nullptr,
                   [] { g_pool.store(nullptr, std::memory_order_relaxed); });
  });
  static std::mutex make_mu;
  std::lock_guard<std::mutex> lock(make_mu);
  pool = g_pool.load(std::memory_order_acquire);
  if (pool == nullptr) {
    pool = new Pool;
    g_pool.store(pool, std::memory_order_release);
  }
  return *pool;
}

bool Pool::EnsureHelpers(int count, const StopToken* stop) {
  std::lock_guard<std::mutex> lock(helpers_mu_);
  for (int started = 0; static_cast<int>(helpers_.size()) < count; ++started) {
    // Ctrl+C (or the deadline, a cancel) while many threads start: the call
    // ends now; the helpers made so far stay for later calls.
    if (stop != nullptr && started % kStopCheckEvery == 0 &&
        stop->stop_requested()) {
      return false;
    }
    // The epoch before this call's bump: a helper that starts late must
    // still see the call that made it.
    try {
      helpers_.emplace_back(
          [this, seen = epoch_.load(std::memory_order_relaxed)] {
            HelperLoop(seen);
          });
    } catch (const std::system_error& e) {
      // Out of threads (ulimit -u, threads-max, a cgroup's pids.max): the
      // call has not started; the helpers made so far stay for later calls.
      throw Error(internal::ThreadStartError(
          "thread backend", "worker thread",
          static_cast<int>(helpers_.size()) + 1, count, e.code().value()));
    }
    helpers_.back().detach();
  }
  return true;
}

void Pool::HelperLoop(std::uint32_t seen) {
  internal::InTaskScope
      in_task;  // a call from a task on this thread runs inline
  for (;;) {
    const auto have_work = [&] {
      return epoch_.load(std::memory_order_acquire) != seen ||
             posted_.load(std::memory_order_acquire) != 0;
    };
    if (!SpinUntil(have_work, kSpin)) {
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      for (;;) {
        const std::uint32_t w = wake_.load(std::memory_order_seq_cst);
        if (have_work()) break;
        FutexWait(&wake_, w);
      }
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    // A call first: its caller waits for the helpers that join it.
    const std::uint32_t epoch = epoch_.load(std::memory_order_acquire);
    if (epoch != seen) {
      seen = epoch;
      const int slot = joined_.fetch_add(1, std::memory_order_acq_rel);
      if (slot >= max_helpers_.load(std::memory_order_relaxed))
        continue;  // not needed, or the call is over
      Work(slot + 1);
      finished_.fetch_add(1, std::memory_order_seq_cst);
      if (caller_sleeping_.load(std::memory_order_seq_cst) != 0) {
        FutexWake(&finished_, 1);
      }
      continue;
    }
    if (internal::Work* work = PopPosted()) work->run(work);
  }
}

void Pool::Post(internal::Work* work, int workers) {
  EnsureHelpers(workers);
  if (work == nullptr) return;
  work->next = nullptr;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    if (posted_tail_ == nullptr) {
      posted_head_ = work;
    } else {
      posted_tail_->next = work;
    }
    posted_tail_ = work;
    posted_.fetch_add(1, std::memory_order_seq_cst);
  }
  wake_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWake(&wake_, 1);
}

internal::Work* Pool::PopPosted() {
  if (posted_.load(std::memory_order_acquire) == 0) return nullptr;
  std::lock_guard<std::mutex> lock(posted_mu_);
  internal::Work* work = posted_head_;
  if (work == nullptr) return nullptr;
  posted_head_ = work->next;
  if (posted_head_ == nullptr) posted_tail_ = nullptr;
  posted_.fetch_sub(1, std::memory_order_seq_cst);
  return work;
}

void Pool::Work(int worker) {
  const Job& job = *job_;
  const RunOptions& options = *options_;
  const auto name = [worker] { return "thread " + std::to_string(worker); };
  internal::InPlaceSink<decltype(name)> sink(failures_, "thread", name,
                                             options.watch, worker);
  internal::ChunkRunner<decltype(sink)> runner(
      job, control_, options, options.progress, options.stop, sink);
  runner.RunClaimed();
}

RunReport Pool::Run(const Job& job, const RunOptions& options) {
  std::lock_guard<std::mutex> call(call_mu_);
  const int helpers = static_cast<int>(
      std::min<std::size_t>(options.jobs - 1, job.n ? job.n - 1 : 0));
  if (!EnsureHelpers(helpers, options.stop)) {
    RunReport report;
    report.stopped = options.stop->reason();
    return report;
  }
  job_ = &job;
  options_ = &options;
  control_.Reset(job.n, options, options.total_workers);
  max_helpers_.store(helpers, std::memory_order_relaxed);
  finished_.store(0, std::memory_order_relaxed);
  joined_.store(0, std::memory_order_release);  // opens the call to helpers
  if (helpers > 0) {
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    wake_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      FutexWake(&wake_, helpers);
    }
  }

  {
    internal::InTaskScope in_task;
    Work(0);
  }

  // Close the call: helpers that joined before this are waited for; any
  // later one sees a slot past max_helpers_ and goes back to waiting.
  const int joined =
      std::min(joined_.exchange(kClosed, std::memory_order_acq_rel), helpers);
  const auto all_in = [&] {
    return finished_.load(std::memory_order_acquire) ==
           static_cast<std::uint32_t>(joined);
  };
  if (!SpinUntil(all_in, kSpin)) {
    caller_sleeping_.store(1, std::memory_order_seq_cst);
    for (std::uint32_t f; (f = finished_.load(std::memory_order_seq_cst)) !=
                          static_cast<std::uint32_t>(joined);) {
      FutexWait(&finished_, f);
    }
    caller_sleeping_.store(0, std::memory_order_relaxed);
  }

  RunReport report;
  report.failures = failures_.Take();
  report.stopped = control_.stopped();
  return report;
}

class ThreadExecutor final : public Executor {
 public:
  explicit ThreadExecutor(int jobs) : jobs_(jobs) {}
  std::string_view name() const override { return "thread"; }
  bool shares_memory() const override { return true; }
  int jobs() const override { return jobs_; }
  // Threads that wait (I/O, sleeps) are what this backend is for, so more
  // jobs than CPUs are common; but each is a thread the pool keeps until
  // the process ends (about 0.2 ms to start, a stack, a slot in the
  // kernel's thread limits).
  JobsLimit jobs_limit() const override {
    return {.per_cpu = 1024,
            .why =
                "each job is a thread the pool keeps until the process "
                "ends"};
  }

 protected:
  RunReport RunParallel(const Job& job, const RunOptions& options) override {
    // A task's exit() now would lose the call's results without a word.
    internal::InProcessCallScope exit_guard(
        "thread", job.indices_are_tasks && options.task_ids == nullptr);
    return GetPool().Run(job, options);
  }
  std::string inline_worker() const override { return "thread 0"; }

 public:
  bool Post(internal::Work* work, int workers) override {
    GetPool().Post(work, workers);
    return true;
  }

 private:
  int jobs_;
};

}  // namespace
}  // namespace fanout

FANOUT_REGISTER_BACKEND(
    thread,
    "a persistent std::thread pool; chunked dynamic scheduling off one atomic "
    "counter; the caller takes part",
    [](const fanout::ExecutorOptions& options) {
      return std::make_unique<fanout::ThreadExecutor>(options.jobs);
    })
