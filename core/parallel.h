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
//   batch_size  tasks per chunk handed to a worker; 0 (auto) sizes chunks
//               from their measured time while the call runs: the first is
//               one task, later ones aim at ~200 us of work each and shrink
//               near the end (core/internal/scheduler.h, CallControl).
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
//   trace       a Chrome trace-event JSON file of every call: a row per
//               worker, a span per chunk (per task when tasks are long),
//               forks, deaths, retries, moving results (core/trace.h);
//               $FANOUT_TRACE when empty. trace_summary keeps a summary of
//               each call for last_trace_summary() (with or without a file).
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
// A call made from inside a task is nested: on thread and tbb it shares the
// outer call's threads (never more than jobs at once); in a process worker a
// thread-backend call uses the worker's CPU share; elsewhere it runs inline
// on the calling worker (Executor::run decides, in one place).
#ifndef FANOUT_CORE_PARALLEL_H_
#define FANOUT_CORE_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
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
#include "core/internal/call_scope.h"
#include "core/internal/checkpoint.h"
#include "core/internal/runner.h"
#include "core/options.h"  // IWYU pragma: export
#include "core/progress.h"
#include "core/trace.h"

namespace fanout {

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
template <class R, class F>
class WindowSource;
struct TraceState;
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
  // Where the last traced call's time went (Options::trace or
  // trace_summary; core/trace.h), or nullopt before one.
  std::optional<TraceSummary> last_trace_summary() const;

  // r[i] = f(i) for i in [0, n), in parallel; results in task order.
  template <class F>
  requires std::invocable<F&, std::size_t>
  auto map(std::size_t n, F&& f);

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
          T map_reduce(std::size_t n, F&& f, T init, Op op);

  // The most groups map_reduce cuts its tasks into.
  static constexpr std::size_t kReduceGroups = 4096;

  // std::find_if in parallel: the lowest i in [0, n) for which pred(i) is
  // true, or nullopt when there is none. The same answer on every backend
  // and jobs count: once a task finds a hit, every task above it is skipped
  // (one relaxed load before each task; tasks below it still run, as one of
  // them may hit lower), so the first hit stops the other tasks. A task that
  // throws fails the call only when it is below the answer (a sequential
  // find_if would have reached it); one above is ignored. On process the hit
  // is seen by every worker at once (shared memory); on mpi ranks each rank
  // skips on its own hits, and the answer is the lowest of all.
  //
  //   std::optional<std::size_t> i = p.find_first(n, [&](std::size_t k) {
  //     return hash(k) == target;
  //   });
  template <class F>
  requires std::predicate<F&, std::size_t> std::optional<std::size_t>
  find_first(std::size_t n, F&& pred);

  // std::any_of in parallel: true when pred(i) holds for some i in [0, n).
  // The first hit anywhere skips every task not yet started. A task that
  // throws fails the call only when no task hits (then every task ran, so
  // the answer is the same on every backend).
  template <class F>
  requires std::predicate<F&, std::size_t>
  bool any_of(std::size_t n, F&& pred);

  // f(i) for i in [0, n), in parallel, for its effects.
  template <class F>
  requires std::invocable<F&, std::size_t>
  void for_each(std::size_t n, F&& f);

  // Like map, but every task runs and each outcome is returned: its value or
  // its TaskError. Backend failures (timeout, interrupt) still throw.
  template <class F>
  requires std::invocable<F&, std::size_t>
  auto try_map(std::size_t n, F&& f);

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

  // imap over any input range, of a length nobody knows: the lines of a
  // file, a generator, a Queue drained until closed. f(item) for each item,
  // in input order; the input is read as the loop goes, with at most
  // Options::max_in_flight tasks submitted and not yet yielded, so memory
  // stays flat whatever the input's length. A single-pass range is read
  // once, on the loop's thread. Each task runs a batch of consecutive
  // items (batch_size, or 0: from 1 item, sized while the loop runs to
  // about 2 ms of work a task; on mpi ranks, doubled per task up to 4096,
  // the same on every rank). A task that throws throws its TaskError,
  // naming the item's position in the input, when the loop reaches it;
  // retries run the failing item again, not its batch. Leaving the loop
  // early cancels the tasks not yet run and waits for those running.
  //
  //   std::ifstream in("inputs.txt");
  //   for (long long r : p.imap(std::views::istream<long long>(in), process))
  //     std::cout << r << '\n';
  //
  // Options::cancel is checked as items are read; timeout, checkpoint,
  // verbose and on_progress need a known task count and are refused.
  template <std::ranges::input_range In, class F>
  requires std::invocable<F&, std::ranges::range_reference_t<In>>
  auto imap(In&& input, F f);
  // The same, yielding (position, f(item)) pairs as tasks finish.
  template <std::ranges::input_range In, class F>
  requires std::invocable<F&, std::ranges::range_reference_t<In>>
  auto imap_unordered(In&& input, F f);

  // joblib's Parallel(...)(delayed(f)(x) for x in xs): runs the tasks.
  template <class R>
  std::vector<R> operator()(const std::vector<Task<R>>& tasks) {
    return map(tasks.size(), [&](std::size_t i) { return tasks[i](); });
  }

 private:
  template <class R, class F>
  friend class internal::WindowSource;

  // Runs the job and sorts its failures by task index; as one job of
  // `scope`'s call when given. `label` names the call in a trace.
  RunReport Run(const Job& job, ErrorPolicy errors, bool retry = true,
                internal::CallScope* scope = nullptr,
                std::string_view label = "call");
  // Opens the trace file, if any (see Options::trace).
  void OpenTrace();

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
  static std::vector<R> Collect(std::vector<internal::Slot<R>>& slots);

  std::shared_ptr<Executor> executor_;
  Options options_;
  // Set by imap's stream, which holds the Parallel as const.
  mutable std::size_t last_resumed_ = 0;
  // Null when calls are not traced.
  std::shared_ptr<internal::TraceState> trace_;
};

}  // namespace fanout

// The templates behind Parallel's members (they need the whole class).
#include "core/internal/bulk_calls.h"        // IWYU pragma: export
#include "core/internal/checkpointed_run.h"  // IWYU pragma: export
#include "core/internal/range_stream.h"      // IWYU pragma: export
#include "core/internal/search.h"            // IWYU pragma: export
#include "core/internal/stream.h"            // IWYU pragma: export

#endif  // FANOUT_CORE_PARALLEL_H_
