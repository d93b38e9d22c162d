// The tbb backend: oneTBB runs the tasks. Each call executes in a
// tbb::task_arena sized to the call's jobs (arenas are cached per jobs count:
// making one costs far more than a small call) and splits the task range with
// tbb::parallel_for and the auto partitioner, calling the job's run_range once
// per sub-range TBB hands out. A job of only a few tasks per thread (each
// likely long) is handed out task by task in index order instead, still by a
// parallel_for in the arena: halving 6 unequal tasks caps 2 cores near 1.6x.
// A failed task cancels the call's
// task_group_context under the fail-fast policy; under collect-all the call
// carries on past it. Cancellation (timeout, interrupt) is checked before each
// sub-range; progress is counted once per sub-range.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/executor.h"

namespace fanout {
namespace {

// The arena for `jobs` concurrent threads, made on first use and kept for the
// life of the process (arenas are thread-safe: concurrent calls may share one).
tbb::task_arena& ArenaFor(int jobs) {
  static std::mutex mu;
  static auto* arenas = new std::map<int, std::unique_ptr<tbb::task_arena>>;
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<tbb::task_arena>& arena = (*arenas)[jobs];
  if (arena == nullptr) {
    // TBB keeps one worker per core less one; jobs beyond the cores need the
    // process-wide limit raised, or the arena would get fewer threads than
    // jobs and tasks that wait on each other could not all run at once.
    // Kept to the end of the process (never destroyed at exit, after TBB).
    static tbb::global_control* limit = nullptr;
    if (static_cast<std::size_t>(jobs) >
        tbb::global_control::active_value(
            tbb::global_control::max_allowed_parallelism)) {
      auto* raised = new tbb::global_control(
          tbb::global_control::max_allowed_parallelism, jobs);
      delete limit;  // after the new one is in force: the limit never dips
      limit = raised;
    }
    arena = std::make_unique<tbb::task_arena>(jobs);
    arena->initialize();
  }
  return *arena;
}

// Jobs of at most this many tasks per thread are handed out task by task.
constexpr std::size_t kFewTasksPerJob = 8;

// The state one call shares between the TBB threads running its sub-ranges.
class Call {
 public:
  Call(const Job& job, const RunOptions& options)
      : job_(job), options_(options) {}

  // Runs tasks [begin, end): the body of parallel_for.
  void RunRange(std::size_t begin, std::size_t end) {
    if (context_.is_group_execution_cancelled()) return;
    if (options_.cancel != nullptr &&
        options_.cancel->load(std::memory_order_relaxed)) {
      cancelled_.store(true, std::memory_order_relaxed);
      context_.cancel_group_execution();
      return;
    }
    internal::InTaskScope in_task;  // a call from a task here runs inline
    TaskFailure failure;
    while (begin < end) {
      const std::size_t done = job_.run_range(job_.ctx, begin, end, &failure);
      if (options_.progress != nullptr) {
        options_.progress->fetch_add(done + (begin + done < end),
                                     std::memory_order_relaxed);
      }
      if (begin + done == end) return;
      const std::size_t failed = begin + done;
      Record(failed, std::move(failure));
      failure = TaskFailure();
      if (options_.errors == ErrorPolicy::kFailFast) {
        context_.cancel_group_execution();
        return;
      }
      begin = failed + 1;
    }
  }

  RunReport Run(tbb::task_arena& arena, int jobs) {
    const std::size_t grain = std::max<std::size_t>(options_.batch_size, 1);
    if (job_.n > kFewTasksPerJob * static_cast<std::size_t>(jobs)) {
      arena.execute([&] {
        tbb::parallel_for(
            tbb::blocked_range<std::size_t>(0, job_.n, grain),
            [this](const tbb::blocked_range<std::size_t>& r) {
              RunRange(r.begin(), r.end());
            },
            tbb::auto_partitioner(), context_);
      });
    } else {
      // Few tasks, each likely long (fib 38..33): the auto partitioner's
      // halving leaves one thread with most of the work (1.6x on 2 cores
      // where greedy gets 2.0x). One parallel_for body per thread instead,
      // each taking the next `grain` tasks in index order until none is left.
      std::atomic<std::size_t> next{0};
      arena.execute([&] {
        tbb::parallel_for(
            tbb::blocked_range<int>(0, jobs, 1),
            [&](const tbb::blocked_range<int>& slots) {
              for (int k = slots.begin(); k != slots.end(); ++k) {
                for (std::size_t begin;
                     (begin = next.fetch_add(
                          grain, std::memory_order_relaxed)) < job_.n;) {
                  RunRange(begin, std::min(job_.n, begin + grain));
                }
              }
            },
            tbb::simple_partitioner(), context_);
      });
    }
    RunReport report;
    report.failures = std::move(failures_);
    report.cancelled = cancelled_.load(std::memory_order_relaxed);
    return report;
  }

 private:
  void Record(std::size_t index, TaskFailure failure) {
    const int thread = tbb::this_task_arena::current_thread_index();
    std::lock_guard<std::mutex> lock(failures_mu_);
    failures_.push_back(internal::task_error(
        index, "tbb", "tbb thread " + std::to_string(thread),
        std::move(failure)));
  }

  const Job& job_;
  const RunOptions& options_;
  tbb::task_group_context context_;
  std::atomic<bool> cancelled_{false};
  std::mutex failures_mu_;  // taken only when a task fails
  std::vector<TaskError> failures_;
};

class TbbExecutor final : public Executor {
 public:
  explicit TbbExecutor(int jobs) : jobs_(jobs) {}
  std::string_view name() const override { return "tbb"; }
  bool shares_memory() const override { return true; }
  int jobs() const override { return jobs_; }
  RunReport run(const Job& job, const RunOptions& options) override {
    if (options.jobs <= 1 || job.n <= 1) {
      return internal::run_inline("tbb", job, options, "tbb thread 0");
    }
    Call call(job, options);
    return call.Run(Arena(options.jobs), options.jobs);
  }

 private:
  // ArenaFor(jobs), remembered for this executor's own jobs count so the
  // usual call skips the cache's lock.
  tbb::task_arena& Arena(int jobs) {
    if (jobs != jobs_) return ArenaFor(jobs);
    tbb::task_arena* arena = arena_.load(std::memory_order_acquire);
    if (arena == nullptr) {
      arena = &ArenaFor(jobs);
      arena_.store(arena, std::memory_order_release);
    }
    return *arena;
  }

  int jobs_;
  std::atomic<tbb::task_arena*> arena_{nullptr};
};

}  // namespace
}  // namespace fanout

FANOUT_REGISTER_BACKEND(
    tbb,
    "oneTBB: parallel_for with the auto partitioner in a task_arena sized to "
    "jobs",
    [](const fanout::ExecutorOptions& options) {
      return std::make_unique<fanout::TbbExecutor>(options.jobs);
    })
