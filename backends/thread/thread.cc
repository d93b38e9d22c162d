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
#include <utility>
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
// Looks a nested call's owner takes at its sharers before it sleeps.
constexpr int kOwnerSpins = 4096;
// Helpers started between looks at the call's stop token.
constexpr int kStopCheckEvery = 16;

// A FIFO of posted work under a lock (posts are rare: a fanout::Pool's
// drainers, a nested call's shares).
class Lane {
 public:
  void Push(internal::Work* work) {
    work->next = nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    if (tail_ == nullptr) {
      head_ = work;
    } else {
      tail_->next = work;
    }
    tail_ = work;
    size_.fetch_add(1, std::memory_order_seq_cst);
  }
  internal::Work* Pop() {
    if (size_.load(std::memory_order_acquire) == 0) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    internal::Work* work = head_;
    if (work == nullptr) return nullptr;
    head_ = work->next;
    if (head_ == nullptr) tail_ = nullptr;
    size_.fetch_sub(1, std::memory_order_seq_cst);
    return work;
  }
  bool Empty() const { return size_.load(std::memory_order_acquire) == 0; }

 private:
  std::mutex mu_;
  internal::Work* head_ = nullptr;
  internal::Work* tail_ = nullptr;
  std::atomic<int> size_{0};
};

// True on the pool's helpers and on a caller while it runs a call's tasks:
// a call made from a task here can be shared with the pool's other threads.
thread_local bool t_pool_thread = false;

class Pool {
 public:
  RunReport Run(const Job& job, const RunOptions& options);
  // A call made from inside a task on one of the pool's threads: its chunks
  // are offered to the helpers that are idle (posted work), the calling
  // thread runs them too, and it returns once every chunk that started has
  // ended. No thread is started for it, so nested calls never add threads.
  RunReport RunNested(const Job& job, const RunOptions& options);
  // Runs work->run(work) on a helper, soon (a fanout::Pool's drainers);
  // with null, only makes sure `workers` helpers exist.
  void Post(internal::Work* work, int workers);
  // Offers a nested call's share to an idle helper (or a caller waiting
  // for its own call's helpers): taken before posted work.
  void PostShare(internal::Work* work);
  // Runs one share offered, if any; false when none was, or when `counted`
  // is false and the pool's threads running tasks are already as many as
  // the running call's jobs (a nested call never adds a compute thread).
  // `counted`: the calling thread is one of those already (a nested call's
  // owner waiting for its sharers).
  bool RunShare(bool counted = false);
  // A share is waiting and a thread may take it.
  bool ShareAvailable() const;
  // A thread stops running tasks (busy_ down), waking a helper for a
  // share that waits.
  void Leave();
  // Wakes a sleeping helper, and the caller waiting for its helpers.
  void WakeForShare();

 private:
  // Starts helpers until there are `count`; false (and fewer) when `stop`
  // (if any) was raised meanwhile.
  bool EnsureHelpers(int count, const StopToken* stop = nullptr);
  void HelperLoop(std::uint32_t seen);
  void Work(int worker);
  int Helpers() {
    std::lock_guard<std::mutex> lock(helpers_mu_);
    return static_cast<int>(helpers_.size());
  }

  std::mutex call_mu_;  // one call at a time on the pool
  std::mutex helpers_mu_;
  std::vector<std::thread> helpers_;

  // Posted work and nested calls' shares, taken by helpers between calls.
  Lane posted_;
  Lane shares_;
  // The pool's threads running tasks now (a call's, posted work, shares),
  // and the most there may be: the running call's jobs, or the drainers a
  // fanout::Pool posted for plus the thread that waits on it.
  alignas(64) std::atomic<int> busy_{0};
  std::atomic<int> call_limit_{0};
  std::atomic<int> posted_limit_{0};
  // Posted works not yet run to their end, and helpers started (for Post,
  // which starts helpers as posted work needs them).
  std::atomic<int> posted_live_{0};
  std::atomic<int> helper_count_{0};
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
    helper_count_.store(static_cast<int>(helpers_.size()),
                        std::memory_order_release);
  }
  return true;
}

void Pool::HelperLoop(std::uint32_t seen) {
  internal::InTaskScope in_task;  // a call from a task here is nested
  t_pool_thread = true;
  for (;;) {
    const auto have_work = [&] {
      return epoch_.load(std::memory_order_acquire) != seen ||
             ShareAvailable() || !posted_.Empty();
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
    if (RunShare()) continue;
    if (internal::Work* work = posted_.Pop()) {
      busy_.fetch_add(1, std::memory_order_seq_cst);
      work->run(work);
      posted_live_.fetch_sub(1, std::memory_order_seq_cst);
      Leave();
    }
  }
}

void Pool::Post(internal::Work* work, int workers) {
  // Helpers start as posted work needs them, one per work posted and not
  // yet run to its end, up to `workers`: a fanout::Pool of jobs 1000 whose
  // tasks come one by one (commands mode's lines of stdin) starts as many
  // threads as it runs tasks at once, not 1000 up front. Readying starts
  // one, so that a pool that cannot start any thread is refused when made.
  const int live =
      work == nullptr
          ? 1
          : posted_live_.fetch_add(1, std::memory_order_seq_cst) + 1;
  if (std::min(live, workers) > helper_count_.load(std::memory_order_acquire)) {
    if (work == nullptr) {
      EnsureHelpers(1);
    } else {
      try {
        EnsureHelpers(std::min(live, workers));
      } catch (const Error&) {
        // Out of threads: the helpers there are run it, fewer at a time.
      }
    }
  }
  for (int limit = posted_limit_.load(std::memory_order_relaxed);
       limit < workers + 1 &&
       !posted_limit_.compare_exchange_weak(limit, workers + 1,
                                            std::memory_order_relaxed);) {
  }
  if (work == nullptr) return;
  posted_.Push(work);
  wake_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWake(&wake_, 1);
}

void Pool::PostShare(internal::Work* work) {
  shares_.Push(work);
  WakeForShare();
}

void Pool::WakeForShare() {
  wake_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWake(&wake_, 1);
  if (caller_sleeping_.load(std::memory_order_seq_cst) != 0) {
    FutexWake(&finished_, 1);
  }
}

bool Pool::RunShare(bool counted) {
  if (shares_.Empty()) return false;
  if (counted) {
    internal::Work* work = shares_.Pop();
    if (work == nullptr) return false;
    work->run(work);
    return true;
  }
  const int limit = std::max(call_limit_.load(std::memory_order_seq_cst),
                             posted_limit_.load(std::memory_order_relaxed));
  if (busy_.fetch_add(1, std::memory_order_seq_cst) >= limit) {
    busy_.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  internal::Work* work = shares_.Pop();
  if (work != nullptr) work->run(work);
  Leave();
  return work != nullptr;
}

bool Pool::ShareAvailable() const {
  return !shares_.Empty() &&
         busy_.load(std::memory_order_seq_cst) <
             std::max(call_limit_.load(std::memory_order_seq_cst),
                      posted_limit_.load(std::memory_order_relaxed));
}

void Pool::Leave() {
  busy_.fetch_sub(1, std::memory_order_seq_cst);
  // A share waiting for a thread to come free: wake one to take it.
  if (!shares_.Empty()) WakeForShare();
}

void Pool::Work(int worker) {
  busy_.fetch_add(1, std::memory_order_seq_cst);
  struct Leaving {
    Pool* pool;
    ~Leaving() { pool->Leave(); }
  } leaving{this};
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
  call_limit_.store(options.jobs, std::memory_order_seq_cst);
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
    const bool was = std::exchange(t_pool_thread, true);
    Work(0);
    t_pool_thread = was;
  }

  // Close the call: helpers that joined before this are waited for; any
  // later one sees a slot past max_helpers_ and goes back to waiting.
  const int joined =
      std::min(joined_.exchange(kClosed, std::memory_order_acq_rel), helpers);
  const auto all_in = [&] {
    return finished_.load(std::memory_order_acquire) ==
           static_cast<std::uint32_t>(joined);
  };
  // Meanwhile the caller runs the shares of calls nested in the tasks its
  // helpers run (never a fanout::Pool's posted work: this call would then
  // wait for it).
  const auto all_in_or_share = [&] { return all_in() || ShareAvailable(); };
  while (!all_in()) {
    if (ShareAvailable()) {
      internal::InTaskScope in_task;
      const bool was = std::exchange(t_pool_thread, true);
      const bool ran = RunShare();
      t_pool_thread = was;
      if (ran) continue;
    }
    if (SpinUntil(all_in_or_share, kSpin)) continue;
    caller_sleeping_.store(1, std::memory_order_seq_cst);
    const std::uint32_t f = finished_.load(std::memory_order_seq_cst);
    if (f != static_cast<std::uint32_t>(joined)) {
      // A share posted is told with a wake (PostShare, Leave) that can
      // come between the look above and this wait: hence the time limit.
      internal::FutexWaitFor(internal::FutexWord(&finished_), f,
                             internal::FutexScope::kPrivate,
                             std::chrono::milliseconds(2));
    }
    caller_sleeping_.store(0, std::memory_order_relaxed);
  }
  call_limit_.store(0, std::memory_order_seq_cst);

  RunReport report;
  report.failures = failures_.Take();
  report.stopped = control_.stopped();
  return report;
}

// One nested call, shared with idle helpers through posted work. Reference
// counted: a share popped after the call returned finds it closed and only
// drops its reference.
struct NestedCall {
  struct Share {
    internal::Work work;
    NestedCall* call = nullptr;
    int worker = 0;
  };

  NestedCall(const Job& j, const RunOptions& o, int shares)
      : job(j), options(o), refs(shares + 1), shares(new Share[shares]) {
    control.Reset(j.n, o, o.jobs);
  }

  void Unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Runs chunks on this thread until none is left; `worker` names it.
  void RunChunks(int worker) {
    const auto name = [worker] {
      return "thread " + std::to_string(worker) + " (nested)";
    };
    internal::InPlaceSink<decltype(name)> sink(failures, "thread", name);
    internal::ChunkRunner<decltype(sink)> runner(
        job, control, options, options.progress, options.stop, sink);
    runner.RunClaimed();
  }

  static void RunShare(internal::Work* work) {
    Share* share = reinterpret_cast<Share*>(work);
    NestedCall* call = share->call;
    // In, then look: the owner closes, then waits for those inside.
    call->active.fetch_add(1, std::memory_order_seq_cst);
    if (!call->closed.load(std::memory_order_seq_cst)) {
      internal::InTaskScope in_task;
      call->RunChunks(share->worker);
    }
    if (call->active.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        call->owner_sleeping.load(std::memory_order_seq_cst)) {
      internal::FutexWake(&call->active, 1, internal::FutexScope::kPrivate);
    }
    call->Unref();
  }

  const Job& job;
  const RunOptions& options;
  internal::CallControl control;
  internal::FailureList failures;
  std::atomic<int> refs;
  alignas(64) std::atomic<std::uint32_t> active{0};
  std::atomic<bool> closed{false};
  std::atomic<bool> owner_sleeping{false};
  std::unique_ptr<Share[]> shares;
};

RunReport Pool::RunNested(const Job& job, const RunOptions& options) {
  // No more sharers than the helpers that exist, the chunks, and jobs - 1.
  const int shares = static_cast<int>(std::min<std::size_t>(
      {static_cast<std::size_t>(std::max(options.jobs - 1, 0)),
       static_cast<std::size_t>(Helpers()),
       (job.n + options.batch_size - 1) / options.batch_size - 1}));
  auto* call = new NestedCall(job, options, shares);
  for (int k = 0; k < shares; ++k) {
    NestedCall::Share& share = call->shares[k];
    share.call = call;
    share.worker = k + 1;
    share.work.run = &NestedCall::RunShare;
    PostShare(&share.work);
  }
  call->RunChunks(0);
  // Every chunk is claimed: sharers that come now do nothing, and those
  // inside finish the chunks they hold. While they do, this thread runs
  // other posted work (another nested call's chunks), not the pool's calls.
  call->closed.store(true, std::memory_order_seq_cst);
  for (int spins = 0; call->active.load(std::memory_order_seq_cst) != 0;) {
    if (RunShare(/*counted=*/true)) continue;
    if (++spins < kOwnerSpins) {
      internal::CpuRelax();
      continue;
    }
    // A sharer holds a long chunk: sleep until the last one leaves (it
    // wakes this thread), looking for other shares every millisecond.
    call->owner_sleeping.store(true, std::memory_order_seq_cst);
    const std::uint32_t active = call->active.load(std::memory_order_seq_cst);
    if (active != 0) {
      internal::FutexWaitFor(internal::FutexWord(&call->active), active,
                             internal::FutexScope::kPrivate,
                             std::chrono::milliseconds(1));
    }
    call->owner_sleeping.store(false, std::memory_order_relaxed);
  }
  RunReport report;
  report.failures = call->failures.Take();
  report.stopped = call->control.stopped();
  call->Unref();
  return report;
}

class ThreadExecutor final : public Executor {
 public:
  explicit ThreadExecutor(int jobs) : jobs_(jobs) {}
  std::string_view name() const override { return "thread"; }
  int jobs() const override { return jobs_; }
  Capabilities capabilities() const override {
    return {
        // A nested call shares the outer call's threads.
        .runs_nested_calls = true,
        // Threads that wait (I/O, sleeps) are what this backend is for, so
        // more jobs than CPUs are common; but each is a thread the pool
        // keeps until the process ends (about 0.2 ms to start, a stack, a
        // slot in the kernel's thread limits).
        .jobs_limit = {.per_cpu = 1024,
                       .why = "each job is a thread the pool keeps until the "
                              "process ends"}};
  }

 protected:
  RunReport RunParallel(const Job& job, const RunOptions& options) override {
    if (in_task()) {
      // Nested: shared with the pool's idle threads when made on one of
      // them; elsewhere (a task of another backend) inline, so that no
      // backend's threads multiply.
      if (t_pool_thread) return GetPool().RunNested(job, options);
      // In a forked worker of the process backend: on this process's own
      // pool, with at most the worker's share of the CPUs.
      const int share = internal::worker_cpu_share();
      if (share > 1) {
        RunOptions in_worker = options;
        in_worker.jobs = std::min(options.jobs, share);
        return GetPool().Run(job, in_worker);
      }
      return internal::run_inline("thread", job, options, "nested call");
    }
    // A task's exit() now would lose the call's results without a word.
    internal::InProcessCallScope exit_guard("thread", job.indices_are_tasks);
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
