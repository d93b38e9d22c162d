// fanout/core/internal/scheduler.h — the one chunk scheduler every backend
// runs its tasks through.
//
// IWYU pragma: private, include "core/executor.h"
//
// A backend says only how its workers come to exist (a pool, an arena, forked
// processes, ranks) and where outcomes go; each worker then runs
//
//   internal::ChunkRunner<Sink> runner(job, control, options, sink);
//   runner.RunClaimed();          // chunks off the shared counter, or
//   runner.RunChunk(begin, end);  // a chunk handed out by someone else
//
// and the runner does the rest, the same way on every backend: it claims
// chunks without overflow, runs them with one indirect call per chunk,
// counts progress exactly (a task that never ran is never counted), turns a
// failure into the sink's record, stops every worker of the call on the
// first failure under fail-fast, and stops at a chunk boundary once the
// call's StopToken says so (cancel, timeout, interrupt).
//
// CallControl holds only lock-free atomics and plain values, so it may live
// in MAP_SHARED memory that forked workers share with the caller.
#ifndef FANOUT_CORE_INTERNAL_SCHEDULER_H_
#define FANOUT_CORE_INTERNAL_SCHEDULER_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/stop_token.h"
#include "core/internal/trace.h"

namespace fanout::internal {

// The chunks of one call and the call's own stop flag.
//
// Chunks are fixed (`batch` tasks each, claimed by chunk number) or, for
// batch_size = 0 (RunOptions::batch_auto), sized from measured time: each
// worker's ChunkRunner reports how long its chunk took (Report), and later
// claims take about kAutoChunkNanos of work, growing or shrinking at most
// 4x a step from the size before, and never more than the tasks left over
// twice the workers (so the last chunks are small and end together). The
// first chunk of a call is one task. A claim is a compare-and-swap on the
// next task index: however the sizes change, each task is handed out once.
struct alignas(64) CallControl {
  // The time one auto-sized chunk aims at: long enough that claiming it
  // (an atomic, two clock reads; a message round trip on mpi) is well under
  // 1% of it, short enough that the slowest worker's last chunk costs the
  // call little.
  static constexpr std::uint64_t kAutoChunkNanos = 200000;  // 200 µs

  // Readies the control block for a call of `n` tasks in chunks of `batch`
  // (>= 1). Not thread-safe: call before any worker starts.
  void Reset(std::size_t n_tasks, std::size_t batch_size) {
    n = n_tasks;
    batch = std::max<std::size_t>(batch_size, 1);
    chunks = n / batch + (n % batch != 0 ? 1 : 0);
    adaptive = false;
    workers = 1;
    next_chunk.store(0, std::memory_order_relaxed);
    next_task.store(0, std::memory_order_relaxed);
    auto_size.store(1, std::memory_order_relaxed);
    progress.store(0, std::memory_order_relaxed);
    stop.store(0, std::memory_order_relaxed);
  }
  // The same for a call's options: auto-sized chunks when
  // options.batch_auto, over `total_workers` workers.
  void Reset(std::size_t n_tasks, const RunOptions& options,
             int total_workers) {
    Reset(n_tasks, options.batch_size);
    if (options.batch_auto) {
      adaptive = true;
      workers = static_cast<std::size_t>(std::max(total_workers, 1));
    }
  }

  // Claims the next chunk [*begin, *end); false when none is left. Counts
  // chunks, not task indices: however large the batch, the counter cannot
  // wrap and no task is handed out twice.
  bool Claim(std::size_t* begin, std::size_t* end) {
    if (adaptive) return ClaimSized(begin, end);
    const std::size_t k = next_chunk.fetch_add(1, std::memory_order_relaxed);
    if (k >= chunks) return false;
    *begin = k * batch;
    *end = *begin + std::min(batch, n - *begin);
    return true;
  }

  // An auto-sized call: `tasks` tasks of a chunk took `nanos` (their own
  // time and the chunk's overhead). Sets the size of the next claims.
  void Report(std::size_t tasks, std::uint64_t nanos) {
    if (tasks == 0) return;
    const std::size_t size = auto_size.load(std::memory_order_relaxed);
    std::size_t want;
    if (nanos == 0) {
      want = size * 4;
    } else {
      const double per_task =
          static_cast<double>(nanos) / static_cast<double>(tasks);
      const double w = static_cast<double>(kAutoChunkNanos) / per_task;
      want = w >= 1e15 ? std::numeric_limits<std::size_t>::max() / 8
                       : static_cast<std::size_t>(w);
    }
    want = std::clamp<std::size_t>(want, std::max<std::size_t>(size / 4, 1),
                                   size * 4);
    auto_size.store(want, std::memory_order_relaxed);
  }

  // Whether any chunk is still unclaimed.
  bool Unclaimed() const {
    if (adaptive) return next_task.load(std::memory_order_relaxed) < n;
    return next_chunk.load(std::memory_order_relaxed) < chunks;
  }
  // Chunks not yet claimed (auto-sized: at the current size).
  std::size_t RemainingChunks() const {
    if (adaptive) {
      const std::size_t t = next_task.load(std::memory_order_relaxed);
      if (t >= n) return 0;
      const std::size_t size =
          std::max<std::size_t>(auto_size.load(std::memory_order_relaxed), 1);
      return (n - t) / size + ((n - t) % size != 0 ? 1 : 0);
    }
    const std::size_t k = next_chunk.load(std::memory_order_relaxed);
    return k >= chunks ? 0 : chunks - k;
  }

  // Stops every worker of the call at its next chunk boundary; the first
  // reason stays.
  void RequestStop(StopReason reason) {
    std::uint32_t expected = 0;
    stop.compare_exchange_strong(expected, static_cast<std::uint32_t>(reason),
                                 std::memory_order_relaxed);
  }
  StopReason stopped() const {
    return static_cast<StopReason>(stop.load(std::memory_order_relaxed));
  }

  std::size_t n = 0;
  std::size_t batch = 1;
  std::size_t chunks = 0;
  bool adaptive = false;    // chunk sizes from measured time
  std::size_t workers = 1;  // adaptive: the call's workers
  alignas(64) std::atomic<std::size_t> next_chunk{0};
  // Adaptive: the first task not yet claimed, and the size of the next
  // chunk (from the last Report).
  std::atomic<std::size_t> next_task{0};
  std::atomic<std::size_t> auto_size{1};
  // Tasks finished (succeeded or failed) by workers that cannot reach the
  // caller's progress counter (forked workers); others count there directly.
  alignas(64) std::atomic<std::size_t> progress{0};
  alignas(64) std::atomic<std::uint32_t> stop{0};

 private:
  bool ClaimSized(std::size_t* begin, std::size_t* end) {
    std::size_t b = next_task.load(std::memory_order_relaxed);
    std::size_t e = 0;
    do {
      if (b >= n) return false;
      const std::size_t rest = n - b;
      // Never more than the rest over twice the workers: the call's last
      // chunks shrink, so the workers end together.
      const std::size_t cap = std::max<std::size_t>(rest / (2 * workers), 1);
      const std::size_t size = std::clamp<std::size_t>(
          auto_size.load(std::memory_order_relaxed), 1, cap);
      e = b + size;
    } while (!next_task.compare_exchange_weak(b, e, std::memory_order_relaxed));
    *begin = b;
    *end = e;
    return true;
  }
};

// The failures of one in-process call, shared by its workers. The lock is
// taken only when a task fails.
class FailureList {
 public:
  void Add(TaskError error) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.push_back(std::move(error));
  }
  std::vector<TaskError> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(failures_, {});
  }

 private:
  std::mutex mu_;
  std::vector<TaskError> failures_;
};

// Which task each worker of an in-process call is running, so that a call
// that was stopped while a task does not return can name it. Kept only for
// calls that can be stopped (a deadline or a cancel flag): it costs one
// relaxed store per task. One slot per worker index (thread k, TBB thread
// index); a worker past the last slot is simply not watched.
class TaskWatch {
 public:
  static constexpr std::size_t kIdle = std::numeric_limits<std::size_t>::max();
  // At most this many slots, whatever the jobs.
  static constexpr int kMaxSlots = 256;

  // Slots for worker indices 0 .. workers-1 (every backend numbers its
  // workers below its jobs count).
  explicit TaskWatch(int workers)
      : n_(std::clamp(workers, 1, kMaxSlots)), slots_(new Slot[n_]) {}

  struct alignas(64) Slot {
    std::atomic<std::size_t> task{kIdle};
    std::atomic<bool> named{false};
    char name[40] = {};
  };

  // The slot of worker `index`, named by `name()` on its first use in this
  // call (a worker index belongs to one thread at a time); null past the
  // last slot.
  template <class NameFn>
  Slot* Of(int index, const NameFn& name) {
    if (index < 0 || index >= n_) return nullptr;
    Slot& slot = slots_[index];
    if (!slot.named.load(std::memory_order_relaxed)) {
      const std::string text = name();
      const std::size_t len = std::min(text.size(), sizeof(slot.name) - 1);
      std::memcpy(slot.name, text.data(), len);
      slot.name[len] = '\0';
      slot.named.store(true, std::memory_order_release);
    }
    return &slot;
  }

  // The tasks running now, by index.
  std::vector<RunningTask> Running() const {
    std::vector<RunningTask> out;
    for (int k = 0; k < n_; ++k) {
      const Slot& slot = slots_[k];
      if (!slot.named.load(std::memory_order_acquire)) continue;
      const std::size_t task = slot.task.load(std::memory_order_relaxed);
      if (task != kIdle) out.push_back({task, slot.name});
    }
    std::sort(out.begin(), out.end(),
              [](const RunningTask& a, const RunningTask& b) {
                return a.index < b.index;
              });
    return out;
  }

 private:
  const int n_;
  std::unique_ptr<Slot[]> slots_;
};

// The sink of a worker that shares the caller's memory: results are already
// in place; a failure goes into the call's FailureList, named by
// `worker_name()` (called only when a task fails, or once per call for the
// call's TaskWatch). `worker` indexes the watch's slots.
template <class WorkerName>
class InPlaceSink {
 public:
  static constexpr bool kPerTask = false;

  InPlaceSink(FailureList& failures, std::string_view backend,
              WorkerName worker_name, TaskWatch* watch = nullptr,
              int worker = 0)
      : failures_(failures),
        backend_(backend),
        worker_name_(worker_name),
        watch_(watch != nullptr ? watch->Of(worker, worker_name) : nullptr),
        worker_(worker) {}

  // The worker's track in a traced call (see TraceTrackOf).
  int trace_worker() const { return worker_; }
  std::string trace_name() const { return worker_name_(); }

  // Where the tasks this worker runs record their index; null when the call
  // keeps no watch.
  std::atomic<std::size_t>* watch_slot() const {
    return watch_ != nullptr ? &watch_->task : nullptr;
  }

  void Failed(std::size_t index, TaskFailure&& failure) {
    failures_.Add(
        task_error(index, backend_, worker_name_(), std::move(failure)));
  }
  void ChunkDone(std::size_t, std::size_t) {}
  void Started(std::size_t) {}
  bool Finished(std::size_t) { return true; }

 private:
  FailureList& failures_;
  std::string_view backend_;
  WorkerName worker_name_;
  TaskWatch::Slot* const watch_;
  const int worker_;
};

// The trace track a worker's ChunkRunner records into, or null for a call
// without a trace. A sink that owns its track (a forked worker's, in shared
// memory) says trace_track(); the others give their worker index and name.
template <class Sink>
TraceTrack* TraceTrackOf(const RunOptions& options, Sink& sink) {
  if constexpr (requires { sink.trace_track(); }) {
    return options.trace != nullptr ? sink.trace_track() : nullptr;
  } else {
    if (options.trace == nullptr) return nullptr;
    return options.trace->Worker(sink.trace_worker(),
                                 [&sink] { return sink.trace_name(); });
  }
}

// Runs chunks of one call on one worker. `Sink` receives the outcomes:
//   static constexpr bool kPerTask;  // run task by task (process: a death
//                                    // must name its task) or per chunk
//   bool RunsWhole(std::size_t begin, std::size_t end);  // kPerTask: this
//                                    // chunk may run whole after all (each
//                                    // task's outcome is kept as it ends)
//   std::atomic<std::size_t>* watch_slot();  // where a whole chunk's
//                                    // tasks record their index, or null
//   void Started(std::size_t i);     // kPerTask: task i is about to run
//   bool Finished(std::size_t i);    // kPerTask: task i succeeded; false
//                                    // when its result could not be kept
//                                    // (the sink recorded that failure)
//   void Failed(std::size_t i, TaskFailure&&);  // task i threw
//   void ChunkDone(std::size_t begin, std::size_t end);  // tasks that ran
template <class Sink>
class ChunkRunner {
 public:
  // `progress` counts finished tasks (may be null); `stop` is the call's
  // token when this worker can see it (null in a forked worker: its caller
  // watches the token and stops the worker from outside).
  // `options` gives the error policy and the retry rule.
  ChunkRunner(const Job& job, CallControl& control, const RunOptions& options,
              std::atomic<std::size_t>* progress, const StopToken* stop,
              Sink& sink)
      : job_(job),
        control_(control),
        fail_fast_(options.errors == ErrorPolicy::kFailFast),
        retries_(options.retries),
        retry_on_(options.retry_on),
        progress_(progress),
        stop_(stop),
        sink_(sink),
        trace_(TraceTrackOf(options, sink)) {}

  // True once the call is stopping: fail-fast, or its token was raised (the
  // token's reason is then copied into the control block for the others).
  bool Stopping() const {
    if (control_.stop.load(std::memory_order_relaxed) != 0) return true;
    if (stop_ != nullptr && stop_->stop_requested()) {
      control_.RequestStop(stop_->reason());
      return true;
    }
    return false;
  }

  // Claims and runs chunks until none is left or the call stops.
  void RunClaimed() {
    std::size_t begin = 0;
    std::size_t end = 0;
    while (!Stopping() && control_.Claim(&begin, &end)) {
      if (!RunChunk(begin, end)) return;
    }
  }

  // Runs tasks [begin, end) unless the call is stopping. False when the call
  // must stop (this chunk's failure under fail-fast, or a stop request).
  bool RunChunk(std::size_t begin, std::size_t end) {
    if (Stopping()) return false;
    if (control_.adaptive) [[unlikely]]
      return RunChunkTimed(begin, end);
    return RunChunkNow(begin, end);
  }

 private:
  bool RunChunkNow(std::size_t begin, std::size_t end) {
    if constexpr (Sink::kPerTask) {
      // One indirect call per task costs tiny tasks as much as the task
      // itself; a sink that keeps each outcome as the task ends anyway
      // (results written in place) lets the chunk run whole.
      if (sink_.RunsWhole(begin, end)) return RunWhole(begin, end);
      return RunTaskByTask(begin, end);
    } else {
      return RunWhole(begin, end);
    }
  }
  // An auto-sized call (CallControl::adaptive): the chunk, timed, its time
  // reported to size the next claims. Two clock reads per chunk.
  [[gnu::noinline]] bool RunChunkTimed(std::size_t begin, std::size_t end) {
    const std::uint64_t t0 = TraceNow();
    const bool ok = RunChunkNow(begin, end);
    control_.Report(end - begin, TraceNow() - t0);
    return ok;
  }
  bool RunWhole(std::size_t begin, std::size_t end);
  bool RunTaskByTask(std::size_t begin, std::size_t end);
  // The same, recording spans into trace_ (out of line: a call without a
  // trace pays one test of trace_ per chunk, nothing per task).
  [[gnu::noinline]] bool RunWholeTraced(std::size_t begin, std::size_t end);
  [[gnu::noinline]] bool RunTaskByTaskTraced(std::size_t begin,
                                             std::size_t end);
  void Done(std::size_t begin, std::size_t end) {
    sink_.ChunkDone(begin, end);
    if (job_.chunk_done != nullptr) job_.chunk_done(job_.ctx, begin, end);
  }
  void Count(std::size_t tasks) {
    if (progress_ != nullptr && tasks != 0) {
      progress_->fetch_add(tasks, std::memory_order_relaxed);
    }
  }
  // Records task `index`'s failure; false when the call must stop.
  bool Fail(std::size_t index, TaskFailure&& failure);
  // Runs the failed task `index` again while the retry rule allows; true
  // when an attempt succeeded. Otherwise *failure is the last attempt's,
  // its message saying how many attempts there were.
  bool Retry(std::size_t index, TaskFailure* failure) {
    int attempts = 1;
    while (attempts <= retries_ && Retryable(*failure) && !Stopping()) {
      ++attempts;
      TaskFailure again;
      TraceRecord* span =
          trace_ != nullptr
              ? trace_->Begin(index, index + 1,
                              static_cast<std::uint32_t>(attempts))
              : nullptr;
      const bool ok = job_.run_range(job_.ctx, index, index + 1, &again) == 1;
      if (span != nullptr) trace_->End(span, index + 1);
      if (ok) {
        *failure = TaskFailure();
        return true;
      }
      *failure = std::move(again);
    }
    if (attempts > 1) {
      failure->message += " (failed " + std::to_string(attempts) + " attempts)";
    }
    return false;
  }
  bool Retryable(const TaskFailure& failure) const {
    // A cancelled task (Job::cancelled) is never run again.
    if (failure.type == "fanout::CancelledError") return false;
    if (retry_on_ == nullptr || retry_on_->empty()) return true;
    for (const std::string& type : *retry_on_) {
      if (failure.type == type) return true;
    }
    return false;
  }

  const Job& job_;
  CallControl& control_;
  const bool fail_fast_;
  const int retries_;
  const std::vector<std::string>* const retry_on_;
  std::atomic<std::size_t>* const progress_;
  const StopToken* const stop_;
  Sink& sink_;
  TraceTrack* const trace_;
};

// Points the calling thread's current-task slot (see current_task_slot())
// at `slot` for one chunk; idles the slot and restores the previous one
// after (a nested call runs inline inside a task).
class CurrentTaskScope {
 public:
  explicit CurrentTaskScope(std::atomic<std::size_t>* slot)
      : slot_(slot), previous_(current_task_slot()) {
    if (slot_ != nullptr || previous_ != nullptr) set_current_task_slot(slot_);
  }
  ~CurrentTaskScope() {
    if (slot_ != nullptr)
      slot_->store(TaskWatch::kIdle, std::memory_order_relaxed);
    if (slot_ != nullptr || previous_ != nullptr) {
      set_current_task_slot(previous_);
    }
  }
  CurrentTaskScope(const CurrentTaskScope&) = delete;
  CurrentTaskScope& operator=(const CurrentTaskScope&) = delete;

 private:
  std::atomic<std::size_t>* const slot_;
  std::atomic<std::size_t>* const previous_;
};

template <class Sink>
bool ChunkRunner<Sink>::Fail(std::size_t index, TaskFailure&& failure) {
  // A job whose index is a group of the user's tasks names the task.
  const std::size_t task =
      failure.task != static_cast<std::size_t>(-1) ? failure.task : index;
  sink_.Failed(task, std::move(failure));
  // A sink that must know which of the job's results is missing (mpi's
  // exchange) hears the job's index too.
  if constexpr (requires { sink_.FailedJob(index); }) sink_.FailedJob(index);
  if (!fail_fast_) return true;
  control_.RequestStop(StopReason::kFailed);
  return false;
}

template <class Sink>
bool ChunkRunner<Sink>::RunWhole(std::size_t begin, std::size_t end) {
  if (trace_ != nullptr) [[unlikely]]
    return RunWholeTraced(begin, end);
  const std::size_t first = begin;
  TaskFailure failure;
  const CurrentTaskScope watching(sink_.watch_slot());
  while (begin < end) {
    const std::size_t done = job_.run_range(job_.ctx, begin, end, &failure);
    const std::size_t failed = begin + done;
    // The tasks that succeeded, and the one that failed (it finished too).
    Count(done + (failed < end ? 1 : 0));
    if (failed == end) break;
    if (retries_ > 0 && Retry(failed, &failure)) {
      failure = TaskFailure();
      begin = failed + 1;
      continue;
    }
    if (!Fail(failed, std::exchange(failure, TaskFailure()))) {
      Done(first, failed + 1);
      return false;
    }
    begin = failed + 1;
  }
  Done(first, end);
  return true;
}

template <class Sink>
bool ChunkRunner<Sink>::RunWholeTraced(std::size_t begin, std::size_t end) {
  // RunWhole, with a span per run of run_range: the chunk (up to a failed
  // task, which ends its span), or each task when they are long.
  const std::size_t first = begin;
  TaskFailure failure;
  const CurrentTaskScope watching(sink_.watch_slot());
  const bool per_task = trace_->PerTask();
  while (begin < end) {
    const std::size_t stop = per_task ? begin + 1 : end;
    TraceRecord* span = trace_->Begin(begin, stop);
    const std::size_t done = job_.run_range(job_.ctx, begin, stop, &failure);
    const std::size_t failed = begin + done;
    trace_->End(span, failed < stop ? failed + 1 : stop);
    Count(done + (failed < stop ? 1 : 0));
    if (failed == stop) {
      begin = stop;
      continue;
    }
    if (retries_ > 0 && Retry(failed, &failure)) {
      failure = TaskFailure();
      begin = failed + 1;
      continue;
    }
    if (!Fail(failed, std::exchange(failure, TaskFailure()))) {
      Done(first, failed + 1);
      return false;
    }
    begin = failed + 1;
  }
  Done(first, end);
  return true;
}

template <class Sink>
bool ChunkRunner<Sink>::RunTaskByTaskTraced(std::size_t begin,
                                            std::size_t end) {
  // RunTaskByTask, with a span for the chunk (cut at a failed task, which
  // ends it) or for each task when they are long.
  TaskFailure failure;
  bool keep_going = true;
  const bool per_task = trace_->PerTask();
  TraceRecord* chunk = per_task ? nullptr : trace_->Begin(begin, end);
  std::size_t i = begin;
  while (i < end && keep_going) {
    TraceRecord* task = per_task ? trace_->Begin(i, i + 1) : nullptr;
    sink_.Started(i);
    const bool ok = job_.run_range(job_.ctx, i, i + 1, &failure) == 1;
    if (task != nullptr) trace_->End(task, i + 1);
    bool kept = true;
    if (!ok) {
      if (chunk != nullptr) {
        trace_->End(chunk, i + 1);
        chunk = nullptr;
      }
      if (retries_ > 0 && Retry(i, &failure)) {
        kept = sink_.Finished(i);
      } else {
        keep_going = Fail(i, std::exchange(failure, TaskFailure()));
      }
      if (!per_task && keep_going && i + 1 < end) {
        chunk = trace_->Begin(i + 1, end);
      }
    } else {
      kept = sink_.Finished(i);
    }
    if (!kept && fail_fast_) {
      // The sink recorded why the result could not be kept.
      control_.RequestStop(StopReason::kFailed);
      keep_going = false;
    }
    ++i;
  }
  if (chunk != nullptr) {
    if (i > chunk->first) {
      trace_->End(chunk, i);
    } else {
      trace_->Abandon(chunk);
    }
  }
  Count(i - begin);
  sink_.ChunkDone(begin, i);
  return keep_going;
}

template <class Sink>
bool ChunkRunner<Sink>::RunTaskByTask(std::size_t begin, std::size_t end) {
  if (trace_ != nullptr) [[unlikely]]
    return RunTaskByTaskTraced(begin, end);
  TaskFailure failure;
  bool keep_going = true;
  std::size_t i = begin;
  while (i < end && keep_going) {
    sink_.Started(i);
    if (job_.run_range(job_.ctx, i, i + 1, &failure) != 1 &&
        !(retries_ > 0 && Retry(i, &failure))) {
      keep_going = Fail(i, std::exchange(failure, TaskFailure()));
    } else if (!sink_.Finished(i)) {
      // The sink recorded why the result could not be kept.
      if (fail_fast_) {
        control_.RequestStop(StopReason::kFailed);
        keep_going = false;
      }
    }
    ++i;
  }
  // Counted before the sink sends the chunk's outcomes: a caller that stops
  // the call on a failure it receives has then already seen the count.
  Count(i - begin);
  sink_.ChunkDone(begin, i);
  return keep_going;
}

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_SCHEDULER_H_
