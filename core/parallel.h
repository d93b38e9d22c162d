// fanout/core/parallel.h — joblib's Parallel for C++: one call runs many
// independent tasks on every core, on an engine picked by name at run time.
//
// A parallel map over an index range or a container, results in task order:
//
//   #include "core/parallel.h"
//
//   long long process(long long n) {            // the reference workload
//     long long s = 0;
//     for (long long i = 0; i < 100000; ++i) s += i * n;
//     return s;
//   }
//
//   fanout::Parallel parallel({.jobs = -1, .backend = "thread"});
//   std::vector<long long> r = parallel.map(10000, process);     // task i gets i
//   std::vector<int> fibs = parallel.map(std::vector{38, 37, 36}, fib);
//
// The joblib spelling — tasks made with delayed(f)(args...), then run:
//
//   std::vector<fanout::Task<long long>> tasks;
//   for (int i = 0; i < 10000; ++i) tasks.push_back(fanout::delayed(process)(i));
//   std::vector<long long> r = fanout::Parallel({.jobs = -1, .verbose = 10})(tasks);
//
// Options (all optional):
//   jobs        -1 every usable CPU (affinity mask and cgroup quota), -k
//               usable+1-k, k > 0 exactly k, 0 is an error; 1 runs inline.
//   backend     "thread" (default), "sequential", "process", "tbb", "mpi" —
//               whichever are linked (see fanout::backend_names()).
//   verbose     joblib-style progress lines on stderr; 0 none, 10 many, >10 all.
//   batch_size  tasks per chunk handed to a worker; 0 picks one from n and jobs.
//   errors      kFailFast (default): the first failing task stops tasks not yet
//               started and the call throws fanout::TaskError naming the task,
//               backend, worker and the exception's type and message.
//               kCollectAll: every task runs; map() then throws the lowest
//               failed task's error, try_map() returns every outcome.
//   timeout     a call running longer throws fanout::TimeoutError. What is
//               guaranteed, per backend: at the deadline no new task starts
//               anywhere. process kills its workers at the deadline and
//               throws at once, naming the tasks that were running. thread,
//               tbb, sequential and mpi run tasks on threads, which cannot
//               be killed: the call throws as soon as the tasks running at
//               the deadline return; a task that never returns keeps the
//               call waiting, and on_stuck (below) names it 100 ms after the
//               deadline so the program can report it and end. Use process
//               for tasks that may hang.
//   on_progress a callback receiving progress events (core/progress.h).
//   on_stuck    see above: a call stopped while tasks on threads still run.
//   checkpoint  a file each finished task's result is appended to, about
//               once a second; a later call with the same file (and the
//               same n, result type, kind of call and checkpoint_key) reads
//               those results back and runs only the other tasks. See
//               "Checkpoint and resume" below.
//
// Checkpoint and resume. A long job that may be stopped (Ctrl+C, a timeout,
// a crash or kill -9 of the program) keeps what it finished:
//
//   fanout::Parallel p({.jobs = -1, .checkpoint = "/tmp/sum.ckpt",
//                       .checkpoint_key = "sum v1"});
//   std::vector<long long> r = p.map(10000, process);  // run it again after
//   // an interruption: tasks already in /tmp/sum.ckpt are not run again,
//   // p.last_call_resumed() says how many were read back, and r is what an
//   // uninterrupted run gives.
//
// The call runs in windows of about a second of work each (the first a few
// tasks per worker, then sized from how long the last one took); when a
// window returns, the results of its tasks that succeeded are appended to
// the file with one write(). At most about a second of work is redone after
// an interruption (the window in flight), and the file survives the
// program's death (not the machine's: it is not fsync'ed). A failed task is
// not recorded, so a rerun runs it again; under fail-fast the window that
// failed is not recorded at all. The file is refused, before any task runs,
// when it was written for another call (n, result type, kind or key differ)
// or is damaged before its last record; a last record cut short by a kill is
// dropped. Results must cross the codec (core/codec.h), as for the process
// backend. Works with map, try_map, for_each, map_reduce (one record per
// group), imap and imap_unordered (results read back come first). On mpi
// only the primary rank writes the file; every rank reads it (ranks share a
// filesystem) so all agree on the tasks left. The file is kept after a call
// that finished: running the call again reads every result back; delete it
// to start over. One call at a time per file (it is locked).
//
// A call made from inside a task runs inline on the calling worker.
#ifndef FANOUT_CORE_PARALLEL_H_
#define FANOUT_CORE_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core/codec.h"
#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/journal.h"
#include "core/internal/large_array.h"
#include "core/progress.h"

namespace fanout {

struct Options {
  int jobs = -1;
  std::string backend = "thread";
  int verbose = 0;
  std::size_t batch_size = 0;
  ErrorPolicy errors = ErrorPolicy::kFailFast;
  std::chrono::milliseconds timeout{0};
  ProgressCallback on_progress = nullptr;
  // Raised by the caller (e.g. from a signal handler) to stop the call between
  // chunks; the call then throws InterruptedError. May be null.
  const std::atomic<bool>* cancel = nullptr;
  // Called once, on the monitor thread, when the call was stopped (timeout
  // or cancel) but tasks that cannot be stopped from outside (on threads:
  // thread, tbb, sequential) are still running 100 ms later. It gets the
  // reason, the tasks still running and the message of the error the call
  // will throw once they return. The call itself keeps waiting: a running
  // thread cannot be killed, and its task may use the caller's memory. A
  // program may report it and end itself (the CLI does); the process
  // backend kills its workers at the deadline instead, so it never calls
  // this.
  std::function<void(const StuckCall&)> on_stuck = nullptr;
  // A task that throws is run again, on the same worker, up to `retries`
  // times (0: never); only for exceptions whose type is in `retry_on`
  // (demangled, e.g. "std::runtime_error"; empty: any). A task that fails
  // every attempt fails the call as usual, its message ending "(failed N
  // attempts)". On process, a task whose worker dies (a signal, an exit, an
  // OOM kill, task_timeout) is run again the same way, in a new worker, up
  // to `retries` times whatever retry_on says (a death has no exception
  // type). map_reduce never retries (a group would run again).
  int retries = 0;
  std::vector<std::string> retry_on = {};
  // process only (a UsageError before any task runs elsewhere: a thread
  // cannot be stopped or limited from outside). A task running longer than
  // task_timeout (0: none) has its worker killed and fails with "timed out
  // after N ms" (or is retried); the call goes on with a new worker.
  std::chrono::milliseconds task_timeout{0};
  // process only. Bytes each worker may allocate beyond what it inherits
  // from the caller at fork (0: none); a task that needs more fails with
  // "exceeded the worker memory limit of 256 MiB" (see
  // backends/process/memory_limit.h). With either limit set, even a call of
  // jobs = 1 or one task runs in a worker, so the limit holds.
  std::size_t worker_memory = 0;
  // Checkpoint and resume (see the top of this file): the journal file,
  // empty for none, and the user's name for the job, recorded in the file
  // so that a file of another job is refused rather than read back.
  std::string checkpoint = {};
  std::string checkpoint_key = {};
};

// One task's outcome under the collect-all policy: its value or its error.
template <class R>
class Outcome {
 public:
  explicit Outcome(R value) : v_(std::move(value)) {}
  explicit Outcome(TaskError error) : v_(std::move(error)) {}
  bool ok() const { return v_.index() == 0; }
  const R& value() const& {
    if (!ok()) throw std::get<1>(v_);
    return std::get<0>(v_);
  }
  R&& value() && {
    if (!ok()) throw std::get<1>(v_);
    return std::get<0>(std::move(v_));
  }
  const TaskError& error() const { return std::get<1>(v_); }

 private:
  std::variant<R, TaskError> v_;
};

// A task made by delayed(f)(args...): f with its arguments bound (copied, as
// joblib pickles them). Run by Parallel::operator().
template <class R>
class Task {
 public:
  using result_type = R;
  explicit Task(std::function<R()> fn) : fn_(std::move(fn)) {}
  R operator()() const { return fn_(); }

 private:
  std::function<R()> fn_;
};

// joblib's delayed: delayed(f)(args...) makes a Task calling f(args...).
template <class F>
auto delayed(F f) {
  return [f = std::move(f)](auto&&... args) {
    using R =
        std::invoke_result_t<const F&, const std::decay_t<decltype(args)>&...>;
    return Task<R>([f, ... a = std::forward<decltype(args)>(args)]() -> R {
      return std::invoke(f, a...);
    });
  };
}

namespace internal {

// How results are stored while tasks run: in place when R allows it.
// bool gets a byte (std::vector<bool> packs bits: workers would race), types
// without a default constructor an optional.
template <class R>
using Slot =
    std::conditional_t<std::is_same_v<R, bool>, unsigned char,
                       std::conditional_t<std::is_default_constructible_v<R>, R,
                                          std::optional<R>>>;

template <class R>
R TakeSlot(Slot<R>& s) {
  if constexpr (std::is_same_v<Slot<R>, std::optional<R>>) {
    return std::move(*s);
  } else if constexpr (std::is_same_v<R, bool>) {
    return s != 0;
  } else {
    return std::move(s);
  }
}

// A backend handed back `got` results for a call of `n` tasks (results it
// adopts, Job::adopt_results): an internal error, never a short answer.
[[noreturn]] void ThrowBadResultCount(std::size_t got, std::size_t n,
                                      std::string_view backend = {});

// The typed job behind the type-erased fanout::Job.
template <class R, class F>
class Runner {
 public:
  // `reserve_only`: the slots are reserved, not constructed, for a backend
  // that adopts results (Job::construct_results); trivial results only.
  Runner(std::size_t n, F& f, bool reserve_only = false) : f_(f) {
    if constexpr (!std::is_void_v<R>) {
      reserved_ = codec::kIsTrivial<Slot<R>> && reserve_only ? n : 0;
      const bool large = n >= kLargeArrayBytes / sizeof(Slot<R>);
      if (large || reserved_ != 0) slots_.reserve(n);
      if (large) PrepareLargeArray(slots_.data(), n * sizeof(Slot<R>));
      if (reserved_ == 0) slots_.resize(n);
    }
  }

  Job MakeJob(std::size_t n) {
    Job job;
    job.n = n;
    job.ctx = this;
    job.run_range = &RunRange;
    if (order_ != nullptr) job.chunk_done = &ChunkDone;
    if constexpr (!std::is_void_v<R>) {
      if constexpr (codec::kIsTrivial<Slot<R>>) {
        job.encode_result = &Encode;
        job.decode_result = &Decode;
        job.trivial_result_size = sizeof(Slot<R>);
        job.result_slot = &ResultSlot;
        if (reserved_ != 0) {
          job.construct_results = &Construct;
          job.adopt_results = &Adopt;
        }
      } else if constexpr (codec::kCanCross<R>) {
        job.encode_result = &Encode;
        job.decode_result = &Decode;
      } else {
        // Fine where tasks share the caller's memory; refused before any
        // task runs where results cross processes (Executor::run).
        job.uncrossable_result = &typeid(R);
      }
    } else {
      job.encode_result = [](void*, std::size_t, std::string*) {};
      job.decode_result = [](void*, std::size_t, std::string_view) {};
    }
    return job;
  }

  std::vector<Slot<R>>& slots() { return slots_; }

  // Records each chunk [begin, end) as it ends, in that order (a stream's
  // completion order), under `mu`. Before MakeJob.
  void RecordChunks(std::vector<std::pair<std::size_t, std::size_t>>* order,
                    std::mutex* mu) {
    order_ = order;
    order_mu_ = mu;
  }

 private:
  static void ChunkDone(void* ctx, std::size_t begin, std::size_t end) {
    auto* self = static_cast<Runner*>(ctx);
    std::lock_guard<std::mutex> lock(*self->order_mu_);
    self->order_->emplace_back(begin, end);
  }

  static std::size_t RunRange(void* ctx, std::size_t begin, std::size_t end,
                              TaskFailure* failure) {
    auto* self = static_cast<Runner*>(ctx);
    std::size_t i = begin;
    const auto run = [self](std::size_t k) {
      if constexpr (std::is_void_v<R>) {
        std::invoke(self->f_, k);
      } else {
        // data(), not operator[]: a worker of a backend that adopts results
        // stores into reserved slots (trivial results; see MakeJob).
        self->slots_.data()[k] = std::invoke(self->f_, k);
      }
    };
    // A call that can be stopped records which task runs (one relaxed store
    // per task), so that one that never returns can be named.
    std::atomic<std::size_t>* const watch = current_task_slot();
    try {
      if (watch == nullptr) {
        for (; i < end; ++i) run(i);
      } else {
        for (; i < end; ++i) {
          watch->store(i, std::memory_order_relaxed);
          run(i);
        }
      }
    } catch (...) {
      *failure = describe_current_exception();
    }
    return i - begin;
  }

  static void Encode(void* ctx, std::size_t index, std::string* out) {
    auto* self = static_cast<Runner*>(ctx);
    if constexpr (std::is_same_v<Slot<R>, std::optional<R>>) {
      codec::encode(*self->slots_[index], *out);
    } else {
      codec::encode(self->slots_[index], *out);
    }
  }

  static void Decode(void* ctx, std::size_t index, std::string_view bytes) {
    auto* self = static_cast<Runner*>(ctx);
    if constexpr (!std::is_default_constructible_v<R>) {
      throw Error(
          "a result type without a default constructor cannot cross "
          "a process boundary; give it one");
    } else if constexpr (std::is_same_v<Slot<R>, std::optional<R>>) {
      self->slots_[index].emplace(codec::decode<R>(bytes));
    } else {
      self->slots_[index] = codec::decode<Slot<R>>(bytes);
    }
  }

  static void* ResultSlot(void* ctx, std::size_t index) {
    return static_cast<Runner*>(ctx)->slots_.data() + index;
  }

  static void Construct(void* ctx) {
    if constexpr (!std::is_void_v<R>) {
      auto* self = static_cast<Runner*>(ctx);
      self->slots_.resize(self->reserved_);
    }
  }

  static void Adopt(void* ctx, const void* src, std::size_t count) {
    if constexpr (!std::is_void_v<R>) {
      auto* self = static_cast<Runner*>(ctx);
      if (count > self->reserved_ - self->slots_.size()) {
        ThrowBadResultCount(self->slots_.size() + count, self->reserved_);
      }
      const auto* first = static_cast<const Slot<R>*>(src);
      self->slots_.insert(self->slots_.end(), first, first + count);
    }
  }

  F& f_;
  std::conditional_t<std::is_void_v<R>, char, std::vector<Slot<R>>> slots_{};
  std::size_t reserved_ = 0;  // slots reserved, not constructed (reserve_only)
  std::vector<std::pair<std::size_t, std::size_t>>* order_ = nullptr;
  std::mutex* order_mu_ = nullptr;
};

template <class R, class F>
class WindowSource;

// The result slots of a job (none for void).
template <class R>
struct SlotsOf {
  using type = std::vector<Slot<R>>;
};
template <>
struct SlotsOf<void> {
  using type = std::vector<char>;
};

// True when R's results can be written to a checkpoint: the test the
// process backend applies (Runner::MakeJob).
template <class R>
constexpr bool Journalable() {
  if constexpr (std::is_void_v<R>) {
    return true;
  } else {
    return codec::kIsTrivial<Slot<R>> || codec::kCanCross<R>;
  }
}

// A result slot as a checkpoint record's bytes, and back (as Runner's
// Encode and Decode: the same bytes as cross a process).
template <class R>
void EncodeSlot(const Slot<R>& slot, std::string* out) {
  if constexpr (!codec::kIsTrivial<Slot<R>> &&
                std::is_same_v<Slot<R>, std::optional<R>>) {
    codec::encode(*slot, *out);
  } else {
    codec::encode(slot, *out);
  }
}
template <class R>
void DecodeSlot(std::string_view bytes, Slot<R>* slot) {
  if constexpr (!codec::kIsTrivial<Slot<R>> &&
                std::is_same_v<Slot<R>, std::optional<R>>) {
    slot->emplace(codec::decode<R>(bytes));
  } else {
    *slot = codec::decode<Slot<R>>(bytes);
  }
}

// Appends the records of a window's tasks ids[0 .. count) to *batch (inside
// a frame), but not those `failed(k)` names (called with k rising); task
// ids[k]'s result is slots[k]. Fixed-size results go as runs of
// consecutive tasks, copied as they lie (one memcpy a run); others are
// encoded one by one.
template <class R>
constexpr bool RecordsAsRuns() {
  if constexpr (std::is_void_v<R>) {
    return true;
  } else {
    return codec::kIsTrivial<Slot<R>>;
  }
}
template <class R, class Failed>
void RecordWindow(std::string* batch, const std::size_t* ids, std::size_t count,
                  const void* slots, Failed failed) {
  if constexpr (RecordsAsRuns<R>()) {
    for (std::size_t k = 0; k < count;) {
      if (failed(k)) {
        ++k;
        continue;
      }
      std::size_t end = k + 1;
      while (end < count && ids[end] == ids[end - 1] + 1 && !failed(end)) {
        ++end;
      }
      if constexpr (std::is_void_v<R>) {
        Journal::AppendRun(batch, ids[k], end - k, 0, nullptr);
      } else {
        Journal::AppendRun(batch, ids[k], end - k, sizeof(Slot<R>),
                           static_cast<const Slot<R>*>(slots) + k);
      }
      k = end;
    }
  } else {
    for (std::size_t k = 0; k < count; ++k) {
      if (failed(k)) continue;
      const std::size_t at = Journal::BeginRecord(batch, ids[k]);
      EncodeSlot<R>(static_cast<const Slot<R>*>(slots)[k], batch);
      Journal::EndRecord(batch, at);
    }
  }
}

// About the bytes one result takes in a checkpoint (to reserve a window's).
template <class R>
constexpr std::size_t RecordBytes() {
  if constexpr (std::is_void_v<R>) {
    return 1;
  } else if constexpr (codec::kIsTrivial<Slot<R>>) {
    return sizeof(Slot<R>) + 1;
  } else {
    return 32;
  }
}

// Renames the failures of a window, sorted by index, from the window's task
// k to the call's (ids[k], or begin + k when ids is null), and sorts them
// again. A backend names a worker's death or a task it stopped (type "")
// by the window's task; with `all`, every failure names it so (the window's
// tasks do not name themselves). Others name the call's task already (a
// GroupTaskFailure).
void RenameWindowFailures(std::vector<TaskError>* failures,
                          const std::size_t* ids, std::size_t begin,
                          std::size_t count, bool all);

// The demangled name of a type ("long long"): what a checkpoint records.
std::string TypeName(const std::type_info& type);

// A checkpointed call's journal: opened for writing on the primary rank (or
// the only process), read only elsewhere. Errors become UsageError (another
// call's file, or one in use) or Error (damage, I/O), naming the file.
class Checkpoint {
 public:
  Checkpoint(const std::string& path, const JournalIdentity& id, bool primary,
             const Journal::OnRecord& on_record);
  // Appends one window's records; nothing on a rank that does not write.
  void Append(std::string_view batch);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<Journal> journal_;
};

// The size of a checkpointed call's next window, in tasks. See parallel.cc.
std::size_t FirstWindow(int jobs, std::size_t left, bool timed);
std::size_t NextWindow(std::size_t window, double seconds, int jobs,
                       std::size_t n, bool timed);

// One call's stop token, progress counter and progress monitor, shared by
// the jobs it runs (a checkpointed call runs one job per window, and its
// timeout, cancel flag and progress are the whole call's).
class CallScope {
 public:
  // `total` tasks, `done` of them finished before the call (read back from
  // a checkpoint). `count`: keep a progress counter even when nobody
  // watches it (a windowed call's stop message counts the whole call).
  CallScope(Executor& executor, const Options& options, std::size_t total,
            std::size_t done, bool count);
  ~CallScope();
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

  // The call's task numbering for the next job (see RunOptions::task_ids).
  void SetTaskIds(const std::size_t* ids) { ids_.store(ids); }
  // Runs one job of the call.
  RunReport Run(const Job& job, RunOptions ro);
  // Sends the last progress event (once; the destructor sends a failed one).
  void Finish(bool success);
  bool monitored() const { return monitor_ != nullptr; }
  const StopToken& stop() const { return stop_; }

 private:
  Executor& executor_;
  const std::size_t total_;
  StopToken stop_;
  std::atomic<std::size_t> progress_;
  const bool count_;
  // Read by the monitor's thread when it names tasks still running.
  std::atomic<const std::size_t*> ids_{nullptr};
  std::unique_ptr<TaskWatch> watch_;
  std::unique_ptr<ProgressMonitor> monitor_;
};

// What a checkpointed call did: the report of its windows (failures by
// task index), which of its tasks were read back from the file, and how many.
struct CheckpointedRun {
  RunReport report;
  std::vector<unsigned char> loaded;  // per task: read back
  std::size_t resumed = 0;
};

}  // namespace internal

class Parallel {
 public:
  // Makes the executor named by options.backend. Throws UsageError for an
  // unknown backend or jobs == 0.
  explicit Parallel(Options options = {});
  // Runs on an executor the caller made (shared between Parallel objects).
  explicit Parallel(std::shared_ptr<Executor> executor, Options options = {});

  Executor& executor() const { return *executor_; }
  const Options& options() const { return options_; }
  // Tasks the last call made with Options::checkpoint read back from the
  // file instead of running (0 for a fresh file).
  std::size_t last_call_resumed() const { return last_resumed_; }
  // Workers a call uses (options.jobs resolved).
  int jobs() const { return executor_->jobs(); }

  // r[i] = f(i) for i in [0, n), in parallel; results in task order.
  template <class F>
  requires std::invocable<F&, std::size_t>
  auto map(std::size_t n, F&& f) {
    using R = std::invoke_result_t<F&, std::size_t>;
    static_assert(!std::is_void_v<R>, "map needs a value; use for_each");
    if (!options_.checkpoint.empty()) {
      std::vector<internal::Slot<R>> slots(n);
      ThrowFirst(RunCheckpointed<R>("map", n, f, &slots, options_.errors,
                                    /*retry=*/true)
                     .report);
      return Collect<R>(slots);
    }
    // Trivial results a backend fills from its own buffer (process) are
    // copied once, not over a zero-filled array.
    // (Not in a nested call, which runs inline in this process.)
    internal::Runner<R, std::remove_reference_t<F>> runner(
        n, f, executor_->adopts_results() && !in_task());
    RunReport report = Run(runner.MakeJob(n), options_.errors);
    ThrowFirst(report);
    if (runner.slots().size() != n) {
      internal::ThrowBadResultCount(runner.slots().size(), n,
                                    executor_->name());
    }
    return Collect<R>(runner.slots());
  }

  // r[k] = f(items[k]) for each item of a container, in parallel.
  template <std::ranges::sized_range Items, class F>
  requires std::invocable<F&, std::ranges::range_reference_t<const Items&>>
  auto map(const Items& items, F&& f) {
    if constexpr (std::ranges::random_access_range<const Items&>) {
      auto first = std::ranges::begin(items);
      return map(std::ranges::size(items),
                 [&](std::size_t i) { return std::invoke(f, first[i]); });
    } else {
      std::vector<const std::ranges::range_value_t<Items>*> refs;
      refs.reserve(std::ranges::size(items));
      for (const auto& item : items) refs.push_back(&item);
      return map(refs.size(),
                 [&](std::size_t i) { return std::invoke(f, *refs[i]); });
    }
  }

  // init op f(0) op f(1) op ... op f(n-1), in parallel, for an associative
  // `op` (commutativity is not assumed): the tasks are cut into at most
  // kReduceGroups contiguous groups that depend on n alone, each group is
  // folded in index order by one worker, and the group results are folded
  // in index order by the caller. So the answer is the same on every
  // backend and jobs count, even for floating point; memory is
  // O(kReduceGroups) whatever n is. Across processes and ranks the group
  // results cross through the codec (T must be serializable there); on mpi
  // every rank gets the answer. A failing task fails the call (fail-fast
  // under either error policy: there is no answer without it), naming the
  // task. Progress counts groups.
  //
  //   long long total = fanout::Parallel({.jobs = -1}).map_reduce(
  //       10000, process, 0LL, std::plus<>());
  template <class T, class F, class Op>
  requires std::invocable<F&, std::size_t> &&
      std::invocable<Op&, T, std::invoke_result_t<F&, std::size_t>>
          T map_reduce(std::size_t n, F&& f, T init, Op op) {
    static_assert(std::is_default_constructible_v<T>,
                  "map_reduce needs a default-constructible T to hold the "
                  "group results");
    if (n == 0) return init;
    const std::size_t groups = std::min(n, kReduceGroups);
    const std::size_t per = n / groups;
    const std::size_t extra = n % groups;
    const auto first = [per, extra](std::size_t g) {
      return g * per + std::min(g, extra);
    };
    auto fold_group = [&](std::size_t g) -> T {
      std::size_t i = first(g);
      const std::size_t end = first(g + 1);
      try {
        T acc = static_cast<T>(std::invoke(f, i));
        for (++i; i < end; ++i) acc = op(std::move(acc), std::invoke(f, i));
        return acc;
      } catch (...) {
        throw internal::GroupTaskFailure{i, std::current_exception()};
      }
    };
    std::vector<internal::Slot<T>> partials;
    if (!options_.checkpoint.empty()) {
      // One record per group: the groups depend on n alone, so a rerun
      // folds the same tasks into each.
      partials.resize(groups);
      internal::CheckpointedRun run = RunCheckpointed<T>(
          "map_reduce", groups, fold_group, &partials, ErrorPolicy::kFailFast,
          /*retry=*/false, n);
      ThrowFirst(run.report);
      std::size_t resumed = 0;
      for (std::size_t g = 0; g < groups; ++g) {
        if (run.loaded[g]) resumed += first(g + 1) - first(g);
      }
      last_resumed_ = resumed;
    } else {
      internal::Runner<T, decltype(fold_group)> runner(groups, fold_group);
      RunReport report =
          Run(runner.MakeJob(groups), ErrorPolicy::kFailFast, /*retry=*/false);
      ThrowFirst(report);
      partials = std::move(runner.slots());
    }
    T acc = std::move(init);
    for (auto& partial : partials) {
      acc = op(std::move(acc), internal::TakeSlot<T>(partial));
    }
    return acc;
  }

  // The most groups map_reduce cuts its tasks into.
  static constexpr std::size_t kReduceGroups = 4096;

  // f(i) for i in [0, n), in parallel, for its effects.
  template <class F>
  requires std::invocable<F&, std::size_t>
  void for_each(std::size_t n, F&& f) {
    if (!options_.checkpoint.empty()) {
      std::vector<char> none;
      ThrowFirst(RunCheckpointed<void>("for_each", n, f, &none, options_.errors,
                                       /*retry=*/true)
                     .report);
      return;
    }
    internal::Runner<void, std::remove_reference_t<F>> runner(n, f);
    RunReport report = Run(runner.MakeJob(n), options_.errors);
    ThrowFirst(report);
  }

  // Like map, but every task runs and each outcome is returned: its value or
  // its TaskError. Backend failures (timeout, interrupt) still throw.
  template <class F>
  requires std::invocable<F&, std::size_t>
  auto try_map(std::size_t n, F&& f) {
    using R = std::invoke_result_t<F&, std::size_t>;
    internal::Runner<R, std::remove_reference_t<F>> runner(
        options_.checkpoint.empty() ? n : 0, f);
    RunReport report;
    if (!options_.checkpoint.empty()) {
      runner.slots().resize(n);
      // The same records as map's: a map may resume a try_map and back.
      report = RunCheckpointed<R>("map", n, f, &runner.slots(),
                                  ErrorPolicy::kCollectAll, /*retry=*/true)
                   .report;
    } else {
      report = Run(runner.MakeJob(n), ErrorPolicy::kCollectAll);
    }
    std::vector<Outcome<R>> out;
    out.reserve(n);
    auto failure = report.failures.begin();
    for (std::size_t i = 0; i < n; ++i) {
      if (failure != report.failures.end() && failure->index() == i) {
        out.emplace_back(*failure++);
      } else {
        out.emplace_back(internal::TakeSlot<R>(runner.slots()[i]));
      }
    }
    return out;
  }

  // joblib's return_as="generator" and Pool.imap: f(0), f(1), ... in task
  // order as a range, computed window by window so that at most two windows
  // of results exist at once, whatever n is:
  //
  //   for (long long r : fanout::Parallel({.jobs = -1}).imap(n, process))
  //     write(r);
  //
  // A window is `window` tasks (0: four times jobs x batch, at least 1024;
  // on process, where each window forks its workers, a window that took
  // under 20 ms makes the next one twice as large, up to 4 MiB of results).
  // While the loop consumes one window the next one runs (on mpi with
  // several ranks, where calls come from the main thread only, windows run
  // one after another on the loop's own thread). Leaving the loop early
  // cancels the window running and waits for it: nothing is left running.
  // A failed task throws its TaskError when the loop reaches it (the results
  // before it were yielded); a timeout applies to each window.
  template <class F>
  requires std::invocable<F&, std::size_t>
  auto imap(std::size_t n, F f, std::size_t window = 0);

  // joblib's return_as="generator_unordered" and Pool.imap_unordered:
  // (index, f(index)) pairs, every index once, a window at a time like
  // imap, and within a window in the order its chunks finished where tasks
  // share the caller's memory (thread, tbb, sequential; index order on
  // process and mpi, whose completions are seen only when the window ends).
  template <class F>
  requires std::invocable<F&, std::size_t>
  auto imap_unordered(std::size_t n, F f, std::size_t window = 0);

  // joblib's Parallel(...)(delayed(f)(x) for x in xs): runs the tasks.
  template <class R>
  std::vector<R> operator()(const std::vector<Task<R>>& tasks) {
    return map(tasks.size(), [&](std::size_t i) { return tasks[i](); });
  }

 private:
  template <class R, class F>
  friend class internal::WindowSource;

  // Runs the job and sorts its failures by task index; as one job of
  // `scope`'s call when given.
  RunReport Run(const Job& job, ErrorPolicy errors, bool retry = true,
                internal::CallScope* scope = nullptr);

  // Runs tasks [0, n) of a job whose task i is f(i) (the user's task; a
  // group for map_reduce) with Options::checkpoint: reads the finished ones
  // back into (*slots)[i], runs the others window by window and appends
  // each window's results. `kind` and `tasks` (the user's task count, n
  // when 0) name the call in the file.
  template <class R, class F>
  internal::CheckpointedRun RunCheckpointed(
      std::string_view kind, std::size_t n, F& f,
      typename internal::SlotsOf<R>::type* slots, ErrorPolicy errors,
      bool retry, std::size_t tasks = 0);
  static void ThrowFirst(const RunReport& report);

  template <class R>
  static std::vector<R> Collect(std::vector<internal::Slot<R>>& slots) {
    if constexpr (std::is_same_v<internal::Slot<R>, R>) {
      return std::move(slots);
    } else {
      std::vector<R> out;
      out.reserve(slots.size());
      for (auto& s : slots) out.push_back(internal::TakeSlot<R>(s));
      return out;
    }
  }

  std::shared_ptr<Executor> executor_;
  Options options_;
  // Set by imap's stream, which holds the Parallel as const.
  mutable std::size_t last_resumed_ = 0;
};

namespace internal {

// One window of a stream: tasks [begin, begin + slots.size()), or the
// tasks ids[0 .. slots.size()) of a checkpointed stream.
template <class R>
struct Window {
  std::size_t begin = 0;
  const std::size_t* ids = nullptr;
  double seconds = 0;  // how long it ran
  std::size_t index(std::size_t pos) const {
    return ids != nullptr ? ids[pos] : begin + pos;
  }
  std::vector<Slot<R>> slots;
  std::vector<TaskError> failures;  // by task index
  // Chunks in the order they finished (where tasks share memory), relative
  // to begin; empty where completions are not seen.
  std::vector<std::pair<std::size_t, std::size_t>> order;
  std::exception_ptr error;  // the window's call threw (timeout, cancel)
};

// Runs a stream's windows: the next one in the background while the
// current one is consumed (where calls may come from any thread).
template <class R, class F>
class WindowSource {
 public:
  WindowSource(const Parallel& parallel, std::size_t n, F f, std::size_t window)
      : user_cancel_(parallel.options_.cancel),
        inner_(parallel.executor_, InnerOptions(parallel.options_, &cancel_)),
        n_(n),
        window_(window != 0 ? window : DefaultWindow(parallel, n)),
        f_(std::move(f)),
        prefetch_(parallel.executor_->calls_from_any_thread() && !in_task()),
        // Where a call costs forks (process), a window that ends quickly
        // makes the next one twice as large, up to kGrowBytes of results:
        // the first results still come after one small window, and a long
        // stream of tiny tasks pays for a few forks, not one per 16K
        // tasks. Never on mpi ranks: every rank must cut the same windows.
        grow_(window == 0 && !parallel.executor_->shares_memory() &&
              parallel.executor_->calls_from_any_thread()),
        grow_cap_(std::max(window_, kGrowBytes / sizeof(Slot<R>))) {
    if (!parallel.options_.checkpoint.empty()) {
      OpenCheckpoint(parallel, /*timed=*/window == 0);
    }
  }

  ~WindowSource() {
    cancel_.store(true);
    if (pending_.valid()) pending_.wait();  // nothing left running
  }
  WindowSource(const WindowSource&) = delete;
  WindowSource& operator=(const WindowSource&) = delete;

  // The next window; false when every window was handed out.
  bool Next(Window<R>* out) {
    if (user_cancel_ != nullptr && user_cancel_->load()) {
      throw InterruptedError("stream cancelled by the caller's cancel flag", 0);
    }
    if (pending_.valid()) {
      *out = pending_.get();
    } else if (next_ < left()) {
      *out = RunWindow(TakeRange());
    } else {
      return false;
    }
    if (sized_) {
      window_ = NextWindow(window_, out->seconds, inner_.jobs(), left() - next_,
                           timed_);
    } else if (grow_ && out->seconds < kGrowBelowSeconds) {
      window_ = std::min(grow_cap_, window_ * 2);
    }
    if (prefetch_ && next_ < left() && !out->error && out->failures.empty()) {
      const auto range = TakeRange();
      pending_ = std::async(std::launch::async,
                            [this, range] { return RunWindow(range); });
    }
    return true;
  }

  // A checkpointed stream's results read back from the file, by index: they
  // are yielded first (unordered) or in their place (ordered).
  std::vector<std::pair<std::size_t, Slot<R>>>& loaded() { return loaded_; }
  // The task a checkpointed stream computes `k`-th (its k-th missing task),
  // or n when every one is computed; k itself without a checkpoint.
  std::size_t computed(std::size_t k) const {
    if (file_ == nullptr) return k;
    return k < todo_.size() ? todo_[k] : n_;
  }

 private:
  static Options InnerOptions(Options o, const std::atomic<bool>* cancel) {
    o.verbose = 0;
    o.on_progress = nullptr;
    o.on_stuck = nullptr;
    o.cancel = cancel;
    o.checkpoint.clear();  // this source writes it, window by window
    return o;
  }
  // The tasks computed: every one, or those the checkpoint lacks.
  std::size_t left() const { return file_ != nullptr ? todo_.size() : n_; }

  // Reads the checkpoint back. `timed`: windows are then sized by time, as
  // a checkpointed map's (the caller did not fix their size).
  void OpenCheckpoint(const Parallel& parallel, bool timed) {
    const std::string& path = parallel.options_.checkpoint;
    const std::string type = TypeName(typeid(R));
    if (in_task()) {
      throw UsageError("checkpoint " + path +
                       " cannot be used by a call made from inside a task (it "
                       "runs inline, as one of the outer call's tasks); "
                       "valid: a checkpoint on the outer call");
    }
    if constexpr (!Journalable<R>()) {
      throw UsageError("checkpoint " + path + ": the result type '" + type +
                       "' cannot be written to a checkpoint; valid: a type "
                       "with a cereal serialize() (see core/codec.h) and a "
                       "default constructor, or no checkpoint");
    } else {
      std::vector<unsigned char> done(n_, 0);
      primary_ = parallel.executor_->is_primary();
      file_ = std::make_unique<Checkpoint>(
          path,
          JournalIdentity{.tasks = n_,
                          .type = type,
                          .kind = "imap",
                          .key = parallel.options_.checkpoint_key},
          primary_, [&](std::uint64_t i, std::string_view bytes) {
            if (done[i]) return;  // a repeat: the first one wins
            done[i] = 1;
            loaded_.emplace_back(i, Slot<R>{});
            try {
              DecodeSlot<R>(bytes, &loaded_.back().second);
            } catch (const std::exception& e) {
              throw Error("checkpoint " + path + ": the record of task " +
                          std::to_string(i) + " is not a " + type + " (" +
                          e.what() + "); valid: delete " + path +
                          " to start over");
            }
          });
      std::stable_sort(
          loaded_.begin(), loaded_.end(),
          [](const auto& a, const auto& b) { return a.first < b.first; });
      parallel.last_resumed_ = loaded_.size();
      todo_.reserve(n_ - loaded_.size());
      for (std::size_t i = 0; i < n_; ++i) {
        if (!done[i]) todo_.push_back(i);
      }
      sized_ = timed;
      if (timed) {
        timed_ = parallel.executor_->calls_from_any_thread();
        window_ = FirstWindow(inner_.jobs(), todo_.size(), timed_);
      }
    }
  }

  // Appends a window's results to the checkpoint (none when a task of it
  // failed: under fail-fast the tasks it never started hold no result).
  void Record(const Window<R>& w) {
    if constexpr (Journalable<R>()) {
      if (!primary_ || !w.failures.empty()) return;
      std::string batch;
      batch.reserve(64 + w.slots.size() * RecordBytes<R>());
      const std::size_t frame = Journal::BeginFrame(&batch);
      RecordWindow<R>(&batch, w.ids, w.slots.size(), w.slots.data(),
                      [](std::size_t) { return false; });
      if (Journal::EndFrame(&batch, frame)) file_->Append(batch);
    }
  }
  static std::size_t DefaultWindow(const Parallel& p, std::size_t n) {
    const int jobs = p.jobs();
    const std::size_t batch =
        resolve_batch_size(n, jobs, p.options().batch_size);
    const std::size_t w =
        std::max<std::size_t>(1024, 4 * static_cast<std::size_t>(jobs) *
                                        std::min<std::size_t>(batch, 1 << 16));
    return std::max<std::size_t>(std::min(w, n), 1);
  }
  // Takes the next window's tasks: [begin, begin + count) of the tasks
  // computed. The size is fixed here, on the consumer's thread.
  std::pair<std::size_t, std::size_t> TakeRange() {
    const std::size_t begin = next_;
    const std::size_t count = std::min(window_, left() - begin);
    next_ += count;
    return {begin, count};
  }

  Window<R> RunWindow(std::pair<std::size_t, std::size_t> range) {
    const auto [begin, count] = range;
    Window<R> w;
    w.begin = begin;
    if (file_ != nullptr) w.ids = todo_.data() + begin;
    auto task = [this, &w](std::size_t k) -> R {
      try {
        return std::invoke(f_, w.index(k));
      } catch (...) {  // named by its own index, not the window's
        throw GroupTaskFailure{w.index(k), std::current_exception()};
      }
    };
    Runner<R, decltype(task)> runner(count, task);
    std::mutex order_mu;
    if (inner_.executor().shares_memory()) {
      runner.RecordChunks(&w.order, &order_mu);
    }
    const Job job = runner.MakeJob(count);
    const auto start = std::chrono::steady_clock::now();
    try {
      RunReport report;
      try {
        // Every task of the window runs, even after one fails: under
        // fail-fast a task before the failed one might never start (tbb
        // and process run chunks in any order), and the stream, which
        // yields every result before the failure, would yield its empty
        // slot. At most one window's work runs past a failure.
        report = inner_.Run(job, ErrorPolicy::kCollectAll);
      } catch (const TaskError& e) {
        // A worker died: the backend named the window's task.
        TaskError::Details d = e.details();
        if (d.index < count) d.index = w.index(d.index);
        throw TaskError(std::move(d)).with_failed_tasks(e.failed_tasks());
      }
      RenameWindowFailures(&report.failures, w.ids, w.begin, count,
                           /*all=*/false);
      w.failures = std::move(report.failures);
      w.slots = std::move(runner.slots());
      if (file_ != nullptr) Record(w);
    } catch (...) {
      w.error = std::current_exception();
    }
    w.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (w.slots.empty()) w.slots = std::move(runner.slots());
    return w;
  }

  static constexpr std::size_t kGrowBytes = std::size_t{4} << 20;
  static constexpr double kGrowBelowSeconds = 0.02;

  std::atomic<bool> cancel_{false};
  const std::atomic<bool>* const user_cancel_;
  Parallel inner_;
  const std::size_t n_;
  std::size_t window_;
  F f_;
  const bool prefetch_;
  const bool grow_;
  const std::size_t grow_cap_;
  std::size_t next_ = 0;
  std::future<Window<R>> pending_;
  // With a checkpoint: the file, the tasks it lacks (computed, in index
  // order) and the results it held.
  std::unique_ptr<Checkpoint> file_;
  bool primary_ = true;
  bool sized_ = false;  // windows sized by time (see NextWindow)
  bool timed_ = true;
  std::vector<std::size_t> todo_;
  std::vector<std::pair<std::size_t, Slot<R>>> loaded_;
};

// The range imap and imap_unordered return: an input range, read once.
template <class R, class F, bool kIndexed>
class StreamRange {
 public:
  using value_type = std::conditional_t<kIndexed, std::pair<std::size_t, R>, R>;

  StreamRange(const Parallel& parallel, std::size_t n, F f, std::size_t window)
      : source_(std::make_unique<WindowSource<R, F>>(parallel, n, std::move(f),
                                                     window)) {}

  class iterator {
   public:
    using value_type = StreamRange::value_type;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(StreamRange* range) : range_(range) {}
    value_type& operator*() const { return *range_->current_; }
    value_type* operator->() const { return &*range_->current_; }
    iterator& operator++() {
      range_->Advance();
      return *this;
    }
    void operator++(int) { range_->Advance(); }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.range_ == nullptr || it.range_->done();
    }

   private:
    StreamRange* range_ = nullptr;
  };

  iterator begin() {
    if (!started_) {
      started_ = true;
      Advance();
    }
    return iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }
  // True once every result was yielded.
  bool done() const { return done_; }

 private:
  // The next task's position in the window, in the order it is yielded.
  bool NextPosition(std::size_t* pos) {
    if constexpr (kIndexed) {
      if (!window_.order.empty()) {
        while (chunk_ < window_.order.size()) {
          auto& [b, e] = window_.order[chunk_];
          if (b < e) {
            *pos = b++;
            return true;
          }
          ++chunk_;
        }
        return false;
      }
    }
    if (pos_ >= window_.slots.size()) return false;
    *pos = pos_++;
    return true;
  }

  // A result read back from a checkpoint, when it comes next: all of them
  // first (unordered), or each before the first computed task after it.
  bool NextLoaded() {
    auto& loaded = source_->loaded();
    if (loaded_pos_ >= loaded.size()) return false;
    auto& [index, slot] = loaded[loaded_pos_];
    if (!kIndexed && index > source_->computed(computed_)) return false;
    ++loaded_pos_;
    if constexpr (kIndexed) {
      current_.emplace(index, TakeSlot<R>(slot));
    } else {
      current_.emplace(TakeSlot<R>(slot));
    }
    return true;
  }

  void Advance() {
    current_.reset();
    if (NextLoaded()) return;
    for (;;) {
      std::size_t pos = 0;
      if (NextPosition(&pos)) {
        ++computed_;
        const std::size_t index = window_.index(pos);
        for (const TaskError& e : window_.failures) {
          if (e.index() == index)
            throw e.with_failed_tasks(window_.failures.size());
        }
        if constexpr (kIndexed) {
          current_.emplace(index, TakeSlot<R>(window_.slots[pos]));
        } else {
          current_.emplace(TakeSlot<R>(window_.slots[pos]));
        }
        return;
      }
      Window<R> next;
      if (!source_->Next(&next)) {
        done_ = true;
        return;
      }
      if (next.error) std::rethrow_exception(next.error);
      window_ = std::move(next);
      pos_ = 0;
      chunk_ = 0;
    }
  }

  std::unique_ptr<WindowSource<R, F>> source_;
  Window<R> window_;
  std::size_t pos_ = 0;
  std::size_t chunk_ = 0;
  std::size_t loaded_pos_ = 0;  // results read back, yielded so far
  std::size_t computed_ = 0;    // results computed, yielded so far
  std::optional<value_type> current_;
  bool started_ = false;
  bool done_ = false;
};

}  // namespace internal

template <class R, class F>
internal::CheckpointedRun Parallel::RunCheckpointed(
    std::string_view kind, std::size_t n, F& f,
    typename internal::SlotsOf<R>::type* slots, ErrorPolicy errors, bool retry,
    std::size_t tasks) {
  const std::string& path = options_.checkpoint;
  const std::string type = internal::TypeName(typeid(R));
  if (in_task()) {
    throw UsageError("checkpoint " + path +
                     " cannot be used by a call made from inside a task (it "
                     "runs inline, as one of the outer call's tasks); valid: "
                     "a checkpoint on the outer call");
  }
  if constexpr (!internal::Journalable<R>()) {
    throw UsageError("checkpoint " + path + ": the result type '" + type +
                     "' cannot be written to a checkpoint; valid: a type "
                     "with a cereal serialize() (see core/codec.h) and a "
                     "default constructor, or no checkpoint");
  } else {
    internal::CheckpointedRun run;
    run.loaded.assign(n, 0);
    const bool primary = executor_->is_primary();
    internal::Checkpoint file(
        path,
        {.tasks = tasks != 0 ? tasks : n,
         .type = type,
         .kind = std::string(kind),
         .key = options_.checkpoint_key},
        primary, [&](std::uint64_t i, std::string_view bytes) {
          if (run.loaded[i]) return;  // a repeat: the first one wins
          if constexpr (!std::is_void_v<R>) {
            try {
              internal::DecodeSlot<R>(bytes, &(*slots)[i]);
            } catch (const std::exception& e) {
              throw Error("checkpoint " + path + ": the record of task " +
                          std::to_string(i) + " is not a " + type + " (" +
                          e.what() + "); valid: delete " + path +
                          " to start over");
            }
          }
          run.loaded[i] = 1;
          ++run.resumed;
        });
    last_resumed_ = run.resumed;
    // The tasks left, in index order: task k of a window is ids[k].
    std::vector<std::size_t> todo;
    todo.reserve(n - run.resumed);
    for (std::size_t i = 0; i < n; ++i) {
      if (!run.loaded[i]) todo.push_back(i);
    }
    internal::CallScope scope(*executor_, options_, n, run.resumed,
                              /*count=*/true);
    // Where every rank must make the same calls (mpi), windows cannot be
    // sized by each rank's clock.
    const bool timed = executor_->calls_from_any_thread();
    const int jobs = executor_->jobs();
    std::size_t window = internal::FirstWindow(jobs, todo.size(), timed);
    std::string batch;
    for (std::size_t pos = 0; pos < todo.size();) {
      const std::size_t count = std::min(window, todo.size() - pos);
      const std::size_t* ids = todo.data() + pos;
      // Failures name the window's task k; they are renamed below. (A
      // group of map_reduce names its failing task itself.)
      auto task = [&f, ids](std::size_t k) -> R {
        return std::invoke(f, ids[k]);
      };
      internal::Runner<R, decltype(task)> runner(count, task);
      scope.SetTaskIds(ids);
      const auto start = std::chrono::steady_clock::now();
      RunReport report;
      try {
        report = Run(runner.MakeJob(count), errors, retry, &scope);
      } catch (const TaskError& e) {
        // A worker died: the backend named the window's task.
        TaskError::Details d = e.details();
        if (d.index < count) d.index = ids[d.index];
        throw TaskError(std::move(d)).with_failed_tasks(e.failed_tasks());
      }
      const double seconds = std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start)
                                 .count();
      internal::RenameWindowFailures(&report.failures, ids, 0, count,
                                     /*all=*/kind != "map_reduce");
      // Failed tasks are not recorded (a rerun runs them again). Under
      // fail-fast a window with a failure is not recorded at all: the tasks
      // it never started hold no result.
      if (errors == ErrorPolicy::kCollectAll || report.failures.empty()) {
        if (primary) {
          auto failure = report.failures.begin();  // by index, as ids
          const auto failed = [&](std::size_t k) {
            while (failure != report.failures.end() &&
                   failure->index() < ids[k]) {
              ++failure;
            }
            return failure != report.failures.end() &&
                   failure->index() == ids[k];
          };
          batch.clear();
          batch.reserve(64 + count * internal::RecordBytes<R>());
          const std::size_t frame = internal::Journal::BeginFrame(&batch);
          const void* results = nullptr;
          if constexpr (!std::is_void_v<R>) results = runner.slots().data();
          internal::RecordWindow<R>(&batch, ids, count, results, failed);
          if (internal::Journal::EndFrame(&batch, frame)) file.Append(batch);
        }
        // A failed task's slot holds no result; the failure is reported.
        if constexpr (!std::is_void_v<R>) {
          for (std::size_t k = 0; k < count; ++k) {
            (*slots)[ids[k]] = std::move(runner.slots()[k]);
          }
        }
      }
      for (TaskError& e : report.failures) {
        run.report.failures.push_back(std::move(e));
      }
      if (errors == ErrorPolicy::kFailFast && !run.report.failures.empty()) {
        break;
      }
      pos += count;
      window =
          internal::NextWindow(window, seconds, jobs, todo.size() - pos, timed);
    }
    scope.Finish(run.report.failures.empty());
    return run;
  }
}

template <class F>
requires std::invocable<F&, std::size_t>
auto Parallel::imap(std::size_t n, F f, std::size_t window) {
  using R = std::invoke_result_t<F&, std::size_t>;
  static_assert(!std::is_void_v<R>, "imap needs a value; use for_each");
  return internal::StreamRange<R, F, false>(*this, n, std::move(f), window);
}

template <class F>
requires std::invocable<F&, std::size_t>
auto Parallel::imap_unordered(std::size_t n, F f, std::size_t window) {
  using R = std::invoke_result_t<F&, std::size_t>;
  static_assert(!std::is_void_v<R>, "imap_unordered needs a value");
  return internal::StreamRange<R, F, true>(*this, n, std::move(f), window);
}

}  // namespace fanout

#endif  // FANOUT_CORE_PARALLEL_H_
