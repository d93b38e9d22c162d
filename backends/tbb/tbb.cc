// The tbb backend: oneTBB runs the tasks. Each call executes in a
// tbb::task_arena sized to the call's jobs (arenas are cached per jobs count:
// making one costs far more than a small call) and splits the task range with
// tbb::parallel_for and the auto partitioner; every sub-range TBB hands out
// is one chunk for core's scheduler (internal::ChunkRunner), which runs it,
// counts progress and records failures as on every backend. A job of only a
// few tasks per thread (each likely long) is claimed chunk by chunk off
// core's counter in index order instead, still by a parallel_for in the
// arena: halving 6 unequal tasks caps 2 cores near 1.6x. A call that stops
// (a failure under fail-fast, cancel, timeout, interrupt) cancels its
// task_group_context so TBB hands out no more sub-ranges.
//
// A task must not call exit(): while a call runs here an exit() ends the
// process with a line on stderr and a non-zero status (exit_hooks.h:
// InProcessCallScope), never in libtbb's shutdown under running workers.
// Out of threads, the call fails naming the limit (CheckThreadsCanStart).
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
#include "core/internal/scheduler.h"
#include "core/internal/thread_start.h"

namespace fanout {
namespace {

// TBB cannot report a worker thread it failed to start: it throws from a
// worker or from inside its scheduler, which ends the process with
// "terminate called ... pthread_create has failed" (SIGABRT). So before an
// arena for `jobs` is made, as many threads as it needs (with TBB's stack
// size) are started and ended here; when they cannot all exist at once, the
// call fails with an error naming the limit instead. Workers TBB already
// runs for other arenas count against the probe too, so a probe may refuse
// a count that would just fit.
// False when `stop` (if any) was raised while the threads started (Ctrl+C,
// the deadline, a cancel): the call then ends without an arena.
bool CheckThreadsCanStart(int workers, const StopToken* stop = nullptr) {
  const internal::ThreadProbe probe = internal::ProbeThreads(
      workers,
      tbb::global_control::active_value(tbb::global_control::thread_stack_size),
      [stop] { return stop != nullptr && stop->stop_requested(); });
  if (probe.stopped) return false;
  if (probe.error != 0) {
    throw Error(internal::ThreadStartError("tbb backend", "worker thread",
                                           probe.started + 1, workers,
                                           probe.error));
  }
  return true;
}

// Lets TBB run `threads` threads at once, process-wide: TBB keeps one
// worker per core less one, so jobs beyond the cores need the limit raised,
// or an arena would get fewer threads than asked and tasks that wait on
// each other could not all run at once. Kept to the end of the process
// (never destroyed at exit, after TBB). Under the arenas' lock.
void RaiseParallelism(int threads) {
  static tbb::global_control* limit = nullptr;
  if (static_cast<std::size_t>(threads) >
      tbb::global_control::active_value(
          tbb::global_control::max_allowed_parallelism)) {
    auto* raised = new tbb::global_control(
        tbb::global_control::max_allowed_parallelism, threads);
    delete limit;  // after the new one is in force: the limit never dips
    limit = raised;
  }
}

std::mutex& ArenasMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}

// The arena for `jobs` concurrent threads, made on first use and kept for the
// life of the process (arenas are thread-safe: concurrent calls may share one).
// nullptr when `stop` was raised before it could be made.
tbb::task_arena* ArenaFor(int jobs, const StopToken& stop) {
  static auto* arenas = new std::map<int, std::unique_ptr<tbb::task_arena>>;
  std::lock_guard<std::mutex> lock(ArenasMutex());
  std::unique_ptr<tbb::task_arena>& arena = (*arenas)[jobs];
  if (arena == nullptr) {
    if (!CheckThreadsCanStart(jobs - 1, &stop)) return nullptr;
    RaiseParallelism(jobs);
    arena = std::make_unique<tbb::task_arena>(jobs);
    arena->initialize();
  }
  return arena.get();
}

// The arena a fanout::Pool of `workers` posts its drainers to: as many
// worker threads, none reserved for a caller (drainers are enqueued, never
// executed by the thread that posts them).
tbb::task_arena& PoolArenaFor(int workers) {
  static auto* arenas = new std::map<int, std::unique_ptr<tbb::task_arena>>;
  std::lock_guard<std::mutex> lock(ArenasMutex());
  std::unique_ptr<tbb::task_arena>& arena = (*arenas)[workers];
  if (arena == nullptr) {
    CheckThreadsCanStart(workers);
    RaiseParallelism(workers + 1);
    arena = std::make_unique<tbb::task_arena>(workers, 0);
    arena->initialize();
  }
  return *arena;
}

// Jobs of at most this many tasks per thread are handed out task by task.
constexpr std::size_t kFewTasksPerJob = 8;

// The state one call shares between the TBB threads running its sub-ranges.
// The chunk loop itself is core's (internal::ChunkRunner); this class only
// says how TBB hands the chunks out.
class Call {
 public:
  Call(const Job& job, const RunOptions& options)
      : job_(job), options_(options) {
    control_.Reset(job.n, options, options.total_workers);
  }

  // In `arena`, or with null in the arena the calling thread runs in (a
  // call nested in a task: TBB's threads there take its sub-ranges).
  RunReport Run(tbb::task_arena* arena, int jobs) {
    // batch_size = 0 (auto): core's counter sizes chunks from their
    // measured time, claimed greedily by one body per thread; a fixed batch
    // size is TBB's grain under its auto partitioner.
    if (!options_.batch_auto &&
        job_.n > kFewTasksPerJob * static_cast<std::size_t>(jobs)) {
      RunSplit(arena);
    } else {
      RunGreedy(arena, jobs);
    }
    RunReport report;
    report.failures = failures_.Take();
    report.stopped = control_.stopped();
    return report;
  }

 private:
  static std::string WorkerName() {
    return "tbb thread " +
           std::to_string(tbb::this_task_arena::current_thread_index());
  }
  using Sink = internal::InPlaceSink<decltype(&WorkerName)>;

  // Many tasks: parallel_for with the auto partitioner; each sub-range is a
  // chunk. A stopping call cancels the task_group_context.
  template <class F>
  static void InArena(tbb::task_arena* arena, const F& f) {
    if (arena == nullptr) {
      f();
    } else {
      arena->execute(f);
    }
  }

  void RunSplit(tbb::task_arena* arena) {
    // The user's batch size is TBB's grain.
    const std::size_t grain = options_.batch_size;
    InArena(arena, [&] {
      tbb::parallel_for(
          tbb::blocked_range<std::size_t>(0, job_.n, grain),
          [this](const tbb::blocked_range<std::size_t>& r) {
            if (context_.is_group_execution_cancelled()) return;
            internal::InTaskScope in_task;  // a call from a task is nested
            Sink sink = MakeSink();
            if (!Runner(sink).RunChunk(r.begin(), r.end())) {
              context_.cancel_group_execution();
            }
          },
          tbb::auto_partitioner(), context_);
    });
  }

  // Few tasks, each likely long (fib 38..33): the auto partitioner's
  // halving leaves one thread with most of the work (1.6x on 2 cores where
  // greedy gets 2.0x). One parallel_for body per thread instead, each
  // claiming the next chunk off core's counter until none is left.
  void RunGreedy(tbb::task_arena* arena, int jobs) {
    InArena(arena, [&] {
      tbb::parallel_for(
          tbb::blocked_range<int>(0, jobs, 1),
          [&](const tbb::blocked_range<int>& slots) {
            internal::InTaskScope in_task;
            Sink sink = MakeSink();
            for (int k = slots.begin(); k != slots.end(); ++k) {
              Runner(sink).RunClaimed();
            }
          },
          tbb::simple_partitioner(), context_);
    });
  }

  Sink MakeSink() {
    return Sink(failures_, "tbb", &WorkerName, options_.watch,
                tbb::this_task_arena::current_thread_index());
  }

  internal::ChunkRunner<Sink> Runner(Sink& sink) {
    return internal::ChunkRunner<Sink>(job_, control_, options_,
                                       options_.progress, options_.stop, sink);
  }

  const Job& job_;
  const RunOptions& options_;
  internal::CallControl control_;
  tbb::task_group_context context_;
  internal::FailureList failures_;
};

class TbbExecutor final : public Executor {
 public:
  explicit TbbExecutor(int jobs) : jobs_(jobs) {}
  std::string_view name() const override { return "tbb"; }
  int jobs() const override { return jobs_; }
  Capabilities capabilities() const override {
    return {// A nested call runs in the arena its task runs in.
            .runs_nested_calls = true,
            // TBB is made for CPU work: its idle threads look for work before
            // they sleep, so threads far beyond the CPUs slow every call (jobs
            // 1000 on 2 CPUs: a call of 100000 tiny tasks took 0.33 s against
            // 0.01 s at jobs 2) and gain nothing.
            .jobs_limit = {.per_cpu = 64,
                           .why = "TBB's threads are for CPU work: beyond the "
                                  "CPUs they only take turns and slow every "
                                  "call; for tasks that mostly wait, use "
                                  "backend 'thread'"}};
  }

 protected:
  RunReport RunParallel(const Job& job, const RunOptions& options) override {
    if (in_task()) {
      // Nested in a task: on a TBB thread (of a call's arena or a
      // fanout::Pool's) the call's sub-ranges go to that arena's threads,
      // and this thread takes others' work while it waits: no thread is
      // added. Elsewhere (a task of another backend) it runs inline.
      if (tbb::this_task_arena::current_thread_index() ==
          tbb::task_arena::not_initialized) {
        return internal::run_inline("tbb", job, options, "nested call");
      }
      Call call(job, options);
      return call.Run(
          nullptr,
          std::min(options.jobs, tbb::this_task_arena::max_concurrency()));
    }
    // A task's exit() now would crash libtbb's shutdown: say so, end at once.
    internal::InProcessCallScope exit_guard("tbb", job.indices_are_tasks);
    tbb::task_arena* arena = Arena(options.jobs, *options.stop);
    if (arena == nullptr) {  // stopped while its threads were tried
      RunReport report;
      report.stopped = options.stop->reason();
      return report;
    }
    Call call(job, options);
    return call.Run(arena, options.jobs);
  }
  std::string inline_worker() const override { return "tbb thread 0"; }

 public:
  bool Post(internal::Work* work, int workers) override {
    tbb::task_arena& arena = PoolArenaFor(workers);
    if (work != nullptr) arena.enqueue([work] { work->run(work); });
    return true;
  }

 private:
  // ArenaFor(jobs), remembered for this executor's own jobs count so the
  // usual call skips the cache's lock.
  tbb::task_arena* Arena(int jobs, const StopToken& stop) {
    if (jobs != jobs_) return ArenaFor(jobs, stop);
    tbb::task_arena* arena = arena_.load(std::memory_order_acquire);
    if (arena == nullptr) {
      arena = ArenaFor(jobs, stop);
      if (arena != nullptr) arena_.store(arena, std::memory_order_release);
    }
    return arena;
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
