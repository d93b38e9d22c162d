// fanout/core/pool.h — work that arrives over time: a pool of workers that
// lives until it is closed, tasks submitted one by one, futures, tasks that
// wait for other tasks' results, and cancellation. The same backends as
// fanout::Parallel, picked by name at run time.
//
//   #include "core/pool.h"
//
//   fanout::Pool pool({.jobs = -1, .backend = "process"});
//   fanout::Future<long long> a = pool.submit(process, 10);
//   fanout::Future<long long> b = pool.submit(process, 20);
//   // A future passed as an argument: the task runs once a and b are done,
//   // and gets their values (no worker waits for them meanwhile).
//   fanout::Future<long long> c =
//       pool.submit([](long long x, long long y) { return x + y; }, a, b);
//   long long total = c.get();  // or throws the TaskError of c, a or b
//
//   std::vector<fanout::Future<int>> fs;
//   for (int n : {38, 37, 36}) fs.push_back(pool.submit(fib, n));
//   for (fanout::Future<int>& f : fanout::as_completed(fs)) use(f.get());
//
//   fanout::Future<void> slow = pool.submit([] {
//     while (!fanout::this_task::stop_requested()) step();
//   });
//   slow.cancel();  // the future reports cancelled at once (see below)
//
// Python → fanout: concurrent.futures' Executor.submit / Future.result /
// as_completed / wait(FIRST_COMPLETED) are Pool::submit / Future::get /
// fanout::as_completed / fanout::wait_any; multiprocessing's
// Pool.apply_async(f, args).get() is pool.submit(f, args...).get(); Dask's
// client.submit(f, future) is pool.submit(f, future); ray.cancel(ref) is
// future.cancel().
//
// Futures. get() waits and returns the value, or throws: the task's
// TaskError (naming the task by its submission number, from 0), a
// CancelledError for a cancelled task, or the error that stopped its
// workers (InterruptedError for Ctrl+C). A future's outcome is taken once:
// a second get() (of it or a copy of it) is a UsageError. wait(),
// wait_for(d) and ready() do not take it. Futures may be copied (they share
// one task) and outlive neither their pool's close() nor its destruction
// usefully: both end every task first.
//
// Dependencies. A Future<T> argument makes the task wait until that task is
// done; the function then receives its value as `const T&` (the value is
// read in place, never copied; a later get() of the input still gets it).
// A task whose input failed or was cancelled never runs: its future fails
// with a TaskError naming that input and its error, and so on down the
// graph. Inputs are futures that exist already, so a cycle cannot be built,
// and no worker ever blocks waiting for one, so any graph runs with
// jobs = 1. A get() or wait() inside a task of the same pool: on thread and
// tbb the waiting worker runs other queued tasks meanwhile (it helps); on
// sequential the queued tasks run there; on process and mpi it is refused
// with a UsageError (a forked worker or another rank cannot see the pool's
// later results): pass the future as an argument instead.
//
// Cancellation. cancel() ends a task that has not ended: the future reports
// CancelledError at once, its dependents fail, and it returns true (false
// when the task had ended). A task not yet started never runs. A running
// task: on process its worker is killed and replaced (the generation's
// other tasks and results are kept); on thread, tbb and sequential it runs
// on, and fanout::this_task::stop_requested() turns true for it so that it
// can return early (its result is dropped); on mpi the same, on the rank
// whose cancel() reached it. Closing or destroying the pool cancels every
// task not yet started, kills running ones on process, lets running ones
// on threads see stop_requested(), and waits until nothing of the pool
// runs.
//
// How each backend runs a pool (see core/internal/pool_core.h):
//   thread, tbb  tasks queue in the pool and up to `jobs` of the backend's
//                own threads (the thread backend's pool, tbb's arena) take
//                them one at a time; a thread that waits for a future runs
//                queued tasks while fewer than `jobs` threads do.
//   process      generations: the tasks queued when the pool is idle are
//                forked as one generation of workers (min(jobs, tasks)) from
//                the caller as it is then, so any closure works, and its
//                results come back through the codec; tasks submitted while
//                a generation runs go to the next one, forked when it ends.
//                Dead workers are replaced as in map().
//   sequential   nothing runs at submit(): the tasks queued run, in
//                submission order, on the thread that waits for one (get,
//                wait, as_completed, wait_all), deterministically.
//   mpi          every rank makes the same submits in the same order (SPMD)
//                and runs the queued tasks as one call when it waits, as
//                sequential does; rank 0 schedules them over every rank and
//                every rank's futures get every value. Ranks that submitted
//                different tasks are refused on every rank (the call's
//                fingerprint differs), never a mix of results.
//
// Options are Parallel's. Submitted tasks use jobs, backend, batch_size (a
// generation's chunks), retries and retry_on (a task is run again on the
// same worker), task_timeout and worker_memory (process). errors applies to
// the pool's map calls: each submitted task has its own outcome. timeout,
// cancel, verbose, on_progress and on_stuck apply to the pool's map, imap
// and map_reduce calls; submit() refuses them (use Future::wait_for), so
// that none is silently ignored.
//
// Checkpoint. With Options::checkpoint (and checkpoint_key), the pool
// journals the value of each task that ends done, keyed by its submission
// number (0, 1, ...), in batches of at most 64 records or 20 ms, and at
// wait_all(), close() and destruction. A rerun of the same program that
// submits the same tasks in the same order gets those futures done at
// submit(), their values read back, and runs only the rest: a graph killed
// by Ctrl+C or kill -9 resumes (resumed() counts the tasks read back).
// Each record carries the task's fingerprint (its function's and result's
// types, its inputs' numbers, its plain arguments' codec bytes): a task
// submitted at a number the journal holds for another is a UsageError,
// never another task's value. Results must be serializable (refused at
// submit otherwise); the pool's bulk calls refuse a checkpointed pool (use
// a Parallel with its own file). Submit from one thread: the order is the
// key.
#ifndef FANOUT_CORE_POOL_H_
#define FANOUT_CORE_POOL_H_

#include <concepts>
#include <memory>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "core/errors.h"
#include "core/executor.h"
#include "core/future.h"  // IWYU pragma: export
#include "core/internal/pool_core.h"
#include "core/parallel.h"

namespace fanout {

// A pool of workers on one backend, alive until close() or destruction.
class Pool {
 public:
  // Makes the executor named by options.backend (UsageError for an unknown
  // one or jobs == 0).
  explicit Pool(Options options = {})
      : parallel_(std::move(options)),
        core_(std::make_unique<internal::PoolCore>(
            std::shared_ptr<Executor>(&parallel_.executor(), [](Executor*) {}),
            parallel_.options())) {}
  // Cancels what has not started and waits until nothing of it runs.
  ~Pool() { close(); }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs f(args...) on a worker (see the top of this file); a Future<T>
  // argument is waited for and passed as its value. Arguments are copied
  // into the task (as joblib's delayed does).
  template <class F, class... Args>
  requires std::invocable < std::decay_t<F>
  &, typename internal::ArgOf<std::decay_t<Args>>::type... >
         auto submit(F&& f, Args&&... args) {
    internal::RefuseCallOptions(parallel_.options());
    return internal::SubmitTo(*core_, std::forward<F>(f),
                              std::forward<Args>(args)...);
  }

  // Waits until every task submitted so far ended.
  void wait_all() { core_->WaitAll(); }
  // Refuses further submits, cancels every task not yet started, and waits
  // until nothing of the pool runs (see the top of this file). Idempotent.
  void close() { core_->Close(); }

  // Bulk calls on the pool's backend, as Parallel's (see core/parallel.h).
  template <class... A>
  auto map(A&&... a)
      -> decltype(std::declval<Parallel&>().map(std::forward<A>(a)...)) {
    internal::RefuseBulkCheckpoint(parallel_.options());
    return parallel_.map(std::forward<A>(a)...);
  }
  template <class... A>
  auto try_map(A&&... a)
      -> decltype(std::declval<Parallel&>().try_map(std::forward<A>(a)...)) {
    internal::RefuseBulkCheckpoint(parallel_.options());
    return parallel_.try_map(std::forward<A>(a)...);
  }
  template <class... A>
  void for_each(A&&... a) {
    internal::RefuseBulkCheckpoint(parallel_.options());
    parallel_.for_each(std::forward<A>(a)...);
  }
  template <class... A>
  auto map_reduce(A&&... a)
      -> decltype(std::declval<Parallel&>().map_reduce(std::forward<A>(a)...)) {
    internal::RefuseBulkCheckpoint(parallel_.options());
    return parallel_.map_reduce(std::forward<A>(a)...);
  }
  template <class... A>
  auto imap(A&&... a)
      -> decltype(std::declval<Parallel&>().imap(std::forward<A>(a)...)) {
    internal::RefuseBulkCheckpoint(parallel_.options());
    return parallel_.imap(std::forward<A>(a)...);
  }
  template <class... A>
  auto imap_unordered(A&&... a)
      -> decltype(std::declval<Parallel&>().imap_unordered(
          std::forward<A>(a)...)) {
    internal::RefuseBulkCheckpoint(parallel_.options());
    return parallel_.imap_unordered(std::forward<A>(a)...);
  }

  // Tasks submit() read back from Options::checkpoint instead of running
  // them (see the top of this file).
  std::size_t resumed() const { return core_->resumed(); }

  Parallel& parallel() { return parallel_; }
  Executor& executor() const { return parallel_.executor(); }
  int jobs() const { return parallel_.jobs(); }

 private:
  Parallel parallel_;
  std::unique_ptr<internal::PoolCore> core_;
};

}  // namespace fanout

#endif  // FANOUT_CORE_POOL_H_
