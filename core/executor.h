// fanout/core/executor.h — the backend-agnostic Executor interface and registry.
//
// Users rarely touch this header: `fanout::Parallel` (core/parallel.h) is the
// front end. Backends implement `Executor` and register themselves by name;
// programs pick one at run time:
//
//   std::unique_ptr<fanout::Executor> ex =
//       fanout::make_executor("thread", {.jobs = -1});
//   // throws fanout::UsageError: "unknown backend 'thred'; valid backends:
//   // process, sequential, tbb, thread" for a name that is not linked in.
//
// A job is `n` tasks and a type-erased body that runs a range of task indices
// (one indirect call per chunk, never an allocation per task). Each task ends
// in exactly one outcome: its value, stored by the body, or a failure that the
// backend turns into a `TaskError` naming the task, backend and worker.
//
// Writing a backend — this header is all a backend author reads. A backend
// answers two questions; core (Executor::run, core/internal/scheduler.h)
// does everything else: inline small calls, batch sizes (fixed or from
// measured time), retries, the stop token (deadline, Ctrl+C, cancel),
// progress, traces, checkpoints, and sorting failures.
//
//   1. How workers come to exist. RunParallel(job, options) starts (or
//      reuses) options.jobs workers — threads, forked processes, ranks —
//      and each claims chunks of [0, job.n) from core's scheduler and runs
//      them with job.run_range; RunParallel returns once none of the call is
//      running. Work that arrives over time (a Pool) comes through Post(),
//      or, where a backend has no such workers, as bulk calls in
//      generations.
//   2. How results move. Where workers share the caller's memory,
//      run_range stores each result in place and nothing moves. Where they
//      do not, a worker encodes each result (job.encode_result, or a memcpy
//      of job.trivial_result_size bytes from job.result_slot) and the
//      caller decodes it (job.decode_result, or adopt_results).
//
// What else differs between backends is one Capabilities struct. A
// minimal backend, whose workers are threads of the caller's process:
//
//   class MyExecutor : public fanout::Executor {
//    public:
//     std::string_view name() const override { return "mine"; }
//     int jobs() const override { return jobs_; }
//     fanout::Capabilities capabilities() const override { return {}; }
//    protected:
//     fanout::RunReport RunParallel(const fanout::Job& job,
//                                   const fanout::RunOptions& o) override;
//     int jobs_ = 4;
//   };
//   FANOUT_REGISTER_BACKEND(mine, "one line on what it is",
//       [](const fanout::ExecutorOptions& o) {
//         return std::make_unique<MyExecutor>(o);
//       });
//
// and make its cc_library `alwayslink = True` so the registration is linked.
// backends/sequential/sequential.cc is the shortest real one;
// core/testing/conformance.h is the suite a backend must pass.
#ifndef FANOUT_CORE_EXECUTOR_H_
#define FANOUT_CORE_EXECUTOR_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "core/errors.h"
#include "core/internal/exit_hooks.h"
#include "core/internal/stop_token.h"

namespace fanout {

namespace internal {
class CallTrace;
class TaskWatch;

// Work posted to a backend's own workers (Executor::Post): run(this) is
// called once, on one of them. Intrusive, so that posting allocates nothing.
struct Work {
  void (*run)(Work* self) = nullptr;
  Work* next = nullptr;
};
}  // namespace internal

// What happens when a task fails.
enum class ErrorPolicy {
  kFailFast,  // the first failure stops tasks not yet started; the call throws
  kCollectAll,  // every task runs; every outcome is returned
};

// One task's failure as seen inside a worker, before the backend names it.
struct TaskFailure {
  std::string type;     // demangled exception type, e.g. "std::runtime_error"
  std::string message;  // what()
  std::exception_ptr
      exception;  // the original, when it did not cross a process
  // The user's task that failed, when the job's index is not one (a group
  // of map_reduce); npos when it is the job's own index.
  std::size_t task = static_cast<std::size_t>(-1);
};

// The type-erased job a backend runs. Built by the front end.
struct Job {
  std::size_t n = 0;  // tasks are 0 .. n-1
  void* ctx = nullptr;

  // Runs tasks [begin, end) in order, storing each result. Returns how many
  // succeeded before the first failure; when that is less than end - begin,
  // task begin + returned failed and *failure describes it.
  std::size_t (*run_range)(void* ctx, std::size_t begin, std::size_t end,
                           TaskFailure* failure) = nullptr;

  // For backends that do not share the caller's memory (process, mpi): the
  // stored result of task `index`, encoded with the codec (core/codec.h) ...
  void (*encode_result)(void* ctx, std::size_t index,
                        std::string* out) = nullptr;
  // ... and stored back into the caller's result slot from those bytes.
  void (*decode_result)(void* ctx, std::size_t index,
                        std::string_view bytes) = nullptr;
  // sizeof(result) when the result is trivially copyable (encode = memcpy of
  // this many bytes), else 0. Lets a backend use fixed-size shared slots.
  std::size_t trivial_result_size = 0;
  // Address of task `index`'s result slot when trivial_result_size != 0.
  void* (*result_slot)(void* ctx, std::size_t index) = nullptr;
  // Set when the results cannot cross a process boundary (no cereal
  // serialize(), or neither a default constructor to decode into nor
  // cereal's load_and_construct to build one; see codec::kCanCross): the result
  // type, which a backend that does not share memory refuses before any
  // task runs. encode_result and decode_result are then null.
  const std::type_info* uncrossable_result = nullptr;
  // Optional: called by the worker that ran tasks [begin, end) (they ended,
  // ok or failed), where tasks share the caller's memory; from any thread.
  void (*chunk_done)(void* ctx, std::size_t begin, std::size_t end) = nullptr;
  // Set (both) when the result slots are reserved but not yet constructed:
  // trivial results, for a backend whose Capabilities::adopts_results is set, which
  // then fills them in one pass from its own buffer instead of over a
  // zero-filled array. Nothing may write a result through run_range or
  // result_slot in the caller before construct_results() (value-initialises
  // every slot not yet adopted). adopt_results(ctx, src, count) appends the
  // next `count` results, copied from src, in task order; all n of them
  // must be appended or constructed before the call returns. Executor::run
  // constructs them before any path but an adopting backend's RunParallel.
  void (*construct_results)(void* ctx) = nullptr;
  void (*adopt_results)(void* ctx, const void* src,
                        std::size_t count) = nullptr;
  // Optional: a byte per task, in memory every worker sees (MAP_SHARED where
  // workers are forked), set when that task is cancelled (a pool's
  // Future::cancel). run_range does not run a cancelled task (it fails with
  // type "fanout::CancelledError"); a task already running sees it through
  // this_task::stop_requested(), and a backend whose workers can be killed
  // (can_limit_tasks) kills the worker running it and reports the task
  // failed the same way, without a retry.
  const std::atomic<std::uint8_t>* cancelled = nullptr;
  // Optional: what identifies the job's tasks (a pool's submissions, in
  // order). A backend whose processes each build the job (mpi) refuses, on
  // every process, a call whose processes built different ones. 0: none.
  std::uint64_t fingerprint = 0;
  // Index i is the caller's task i (map, for_each, try_map), so a report
  // from inside a task (its exit(): InProcessCallScope) may name it; false
  // for jobs with numbers of their own (windows of a stream or checkpoint,
  // map_reduce's groups).
  bool indices_are_tasks = false;
  // Front end only (core names the tasks; backends pass them along): a call
  // run as several jobs (a checkpointed call's windows) numbers task k of
  // this job as the call's task task_ids[k], of call_tasks in all, and the
  // error a stop throws names those (indices_are_tasks is then false).
  // Null / 0: the job is the whole call.
  const std::size_t* task_ids = nullptr;
  std::size_t call_tasks = 0;
};

// Options for one call, as the front end gives them to Executor::run.
struct RunOptions {
  int jobs = 1;                // already resolved: >= 1
  std::size_t batch_size = 0;  // tasks per chunk; 0 = auto (see below)
  ErrorPolicy errors = ErrorPolicy::kFailFast;
  std::chrono::milliseconds timeout{0};  // 0 = none; sets the token's deadline
  // Finished-task counter; backends add to it once per chunk. May be null.
  std::atomic<std::size_t>* progress = nullptr;
  // The call's one stop token (cancel, deadline, interrupt). May be null:
  // Executor::run then makes one from `timeout`.
  StopToken* stop = nullptr;
  // Set by Executor::run for the backend: batch_size was 0 and has been
  // resolved with auto_batch_size(); core's scheduler then sizes chunks
  // from their measured time (CallControl::Reset with these options) over
  // `total_workers` workers (Executor::total_workers(jobs)).
  bool batch_auto = false;
  int total_workers = 1;
  // Where in-process workers record the task they run, for a call that can
  // be stopped while a task does not return. May be null.
  internal::TaskWatch* watch = nullptr;
  // A task that fails is run again up to `retries` times, when its exception
  // type is one of `retry_on` (null or empty: any).
  int retries = 0;
  const std::vector<std::string>* retry_on = nullptr;
  // A task running longer than this fails (0: no limit); its worker is
  // killed. Only backends whose Capabilities::can_limit_tasks is set take it.
  std::chrono::milliseconds task_timeout{0};
  // Bytes each worker may allocate beyond what it holds at its start (0: no
  // limit). Only backends with Capabilities::can_limit_tasks take it.
  std::size_t worker_memory = 0;
  // Run in the backend's workers even a call of one task or jobs = 1 (a
  // pool's generation: on process a task must run where it can be killed,
  // and where its crash cannot take the caller with it).
  bool in_workers = false;
  // The call's trace (Options::trace), or null. Executor::run opens and
  // closes a job on it around RunParallel; a backend's workers record
  // through core's scheduler (ChunkRunner), and a backend adds its own
  // events (forks, deaths, moving results) with CallTrace::Note.
  internal::CallTrace* trace = nullptr;
  // Optional (a pool's generation): called once for each of the call's
  // `jobs` worker places that frees up while the call still runs (a worker
  // that handed in its last task, or one never started because the tasks
  // were all claimed), so that work arriving meanwhile can start in it.
  // From the thread that made the call.
  void (*place_freed)(void* ctx) = nullptr;
  void* place_ctx = nullptr;
};

// A task that was running when a call was stopped from outside.
struct RunningTask {
  std::size_t index = 0;
  std::string worker;  // "pid 4242"
};

// What one call produced besides the results: the failures (sorted by task
// index by Executor::run) and why the call stopped early, if it did.
struct RunReport {
  std::vector<TaskError> failures;
  StopReason stopped = StopReason::kNone;
  // Backends that can tell which tasks were still running when the call was
  // stopped (process) list them; TimeoutError names them.
  std::vector<RunningTask> running;
  // True when the backend ended the workers itself (they were killed).
  bool workers_stopped = false;
};

// Options for making an executor.
struct ExecutorOptions {
  int jobs = -1;  // as joblib's n_jobs: -1 all usable CPUs, -k usable+1-k, 0
                  // invalid
};

// The most jobs a backend runs at once: `per_cpu` per usable CPU (0: no
// limit), and why, for the refusal of more.
struct JobsLimit {
  int per_cpu = 0;
  std::string_view why;  // "each worker is a forked process ..."
};

// What a backend can do: one struct, returned by Executor::capabilities(),
// from which core decides how each call runs. A new backend sets what
// differs from these defaults (a backend of threads in the caller's
// process needs none).
struct Capabilities {
  // Tasks run in the caller's address space and store their results in
  // place; false: results cross a process boundary through the codec
  // (core/codec.h, Job::encode_result), and a result type that cannot is
  // refused before any task runs.
  bool shares_memory = true;
  // A task runs in a worker that can be killed and limited from outside
  // (process): RunOptions::task_timeout and worker_memory are refused with
  // a UsageError elsewhere, before any task runs, and calls with either
  // limit never run inline (a limit must hold for one task too).
  bool can_limit_tasks = false;
  // RunParallel fills trivial results through Job::adopt_results (see
  // Job::construct_results).
  bool adopts_results = false;
  // A call of jobs <= 1 or n <= 1 runs inline on the calling thread; false
  // where even a one-task call must go through the backend (mpi with
  // several ranks: every rank must take part in every call).
  bool runs_small_calls_inline = true;
  // A call made from inside a task can share the backend's workers (thread,
  // tbb: RunParallel is then called with in_task() true, and runs the call
  // on the threads the outer call already has, starting none); false runs
  // such a call inline on the calling worker.
  bool runs_nested_calls = false;
  // False where every call must come from one thread (mpi on several
  // ranks: the ranks must make the same calls in the same order).
  bool calls_from_any_thread = true;
  // The most jobs it runs (none by default). make_executor() and run()
  // refuse more with a UsageError naming the limit, before anything
  // starts: a jobs count far above the CPUs (a typo, --jobs=100000) must
  // not start that many threads or processes.
  JobsLimit jobs_limit = {};
};

// A backend. Core owns scheduling (core/internal/scheduler.h): run() does
// what every backend shares, and a backend supplies only RunParallel(): how
// its workers come to exist and how results move.
class Executor {
 public:
  virtual ~Executor() = default;

  // The registered name ("thread", "process", ...).
  virtual std::string_view name() const = 0;
  // Workers this executor uses by default (resolved from ExecutorOptions).
  virtual int jobs() const = 0;
  // What this backend can do, said once (see Capabilities). Called by core
  // at each call; cheap.
  virtual Capabilities capabilities() const = 0;
  // False on every rank but the one that should print (mpi); true elsewhere.
  virtual bool is_primary() const { return true; }

  // Shorthands for capabilities().
  bool shares_memory() const { return capabilities().shares_memory; }
  bool can_limit_tasks() const { return capabilities().can_limit_tasks; }
  bool adopts_results() const { return capabilities().adopts_results; }
  JobsLimit jobs_limit() const { return capabilities().jobs_limit; }
  bool calls_from_any_thread() const {
    return capabilities().calls_from_any_thread;
  }

  // Runs every task of `job` (or stops early, per options.errors and the
  // stop token) and returns once nothing of the call is still running.
  // Task failures are reported, not thrown. A call that was stopped from
  // outside throws: TimeoutError at the deadline (naming the tasks still
  // running where the backend knows them), InterruptedError for a cancel or
  // a signal. An error of the backend itself (a worker that died) is thrown
  // as a fanout::Error subclass.
  //
  // The same for every backend: a call of jobs <= 1 or n <= 1 runs inline on
  // the calling thread (as joblib does; not with a task_timeout or
  // worker_memory, which only a separate worker can enforce), the batch
  // size is resolved and clamped to n, and failures come back sorted by
  // task index.
  RunReport run(const Job& job, const RunOptions& options);

 protected:
  // The backend's part of a call with jobs >= 2 and n >= 2 (or every call,
  // where Capabilities::runs_small_calls_inline is false or the call sets a
  // task limit). options.batch_size is >= 1 and <= n, options.stop and
  // options.progress are never null.
  virtual RunReport RunParallel(const Job& job, const RunOptions& options) = 0;
  // How a call that runs inline names its worker in errors ("thread 0").
  virtual std::string inline_worker() const { return "main thread"; }
  // The workers `jobs` gives across the whole backend (mpi: jobs per rank
  // times ranks); auto batch sizes are computed for this many.
  virtual int total_workers(int jobs) const { return jobs; }

 public:
  // Work that arrives over time (a Pool's tasks): runs work->run(work) once,
  // soon, on one of the backend's own workers in this process; from any
  // thread, allocating nothing. The caller keeps at most `workers` works
  // posted or running at once, and the backend has that many workers for
  // them. Post(nullptr, workers) only readies them. False where the backend
  // has no such workers (the default): a pool then runs its tasks as bulk
  // calls of run(), in generations (see core/internal/pool_core.h).
  virtual bool Post(internal::Work* work, int workers) {
    (void)work;
    (void)workers;
    return false;
  }
};

using ExecutorFactory =
    std::function<std::unique_ptr<Executor>(const ExecutorOptions&)>;

// Registers a backend; called from a static initializer in each backend.
bool register_backend(std::string name, std::string description,
                      ExecutorFactory factory);

// The names of every linked backend, sorted.
std::vector<std::string> backend_names();
// The one-line description given at registration ("" when unknown).
std::string backend_description(std::string_view name);

// Makes the named executor. Throws UsageError listing the valid names when
// `name` is not registered, or when options.jobs is 0.
std::unique_ptr<Executor> make_executor(std::string_view name,
                                        const ExecutorOptions& options = {});

// The number of CPUs this process may use: its affinity mask, capped by the
// cgroup CPU quota (v2 cpu.max or v1 cfs quota), at least 1.
int usable_cpus();

// joblib's n_jobs rule: -1 -> usable_cpus(), -k -> usable+1-k (at least 1),
// k > 0 -> k. Throws UsageError for 0.
int resolve_jobs(int jobs);

// Throws UsageError when `jobs` is more than `executor.jobs_limit()` allows:
// "jobs=100000 is more than backend 'tbb' runs at once: at most 128 (64 per
// usable CPU, 2 usable CPUs here); <why>; valid: ...".
void refuse_jobs_over_limit(const Executor& executor, int jobs);

// The chunk size a backend should hand out when options ask for auto.
std::size_t auto_batch_size(std::size_t n, int jobs);

// The batch size a call uses: auto_batch_size() for 0, else `requested`
// clamped to [1, max(n, 1)] (a batch larger than the job is the whole job).
std::size_t resolve_batch_size(std::size_t n, int jobs, std::size_t requested);

// True while the calling thread is running a task of some backend. A call
// made from inside a task is nested: it shares the outer call's threads
// (thread, tbb) or runs inline, and never deadlocks on the pool.
bool in_task();

namespace internal {
// The CPUs a nested call may use in this process: 0 (unset) in the caller;
// in a forked worker of the process backend, the worker's share of the
// usable CPUs (its CpuBudget), so a thread-backend call made in a task there
// runs on at most that many threads.
void set_worker_cpu_share(int cpus);
int worker_cpu_share();

// Marks the current thread as running tasks for its lifetime.
class InTaskScope {
 public:
  InTaskScope();
  ~InTaskScope();
  InTaskScope(const InTaskScope&) = delete;
  InTaskScope& operator=(const InTaskScope&) = delete;

 private:
  bool previous_;
};

// The demangled type name and message of an exception in flight. A
// GroupTaskFailure is described as the exception it carries, with its task.
TaskFailure describe_current_exception();

// Thrown by a job whose index is a group of the user's tasks (map_reduce)
// when one of them throws: which task, and its exception.
struct GroupTaskFailure {
  std::size_t task;
  std::exception_ptr exception;
};

// Where the task running on this thread records its index (one relaxed
// store per task), or null when its call keeps no TaskWatch. Read once per
// chunk by the front end's typed job; set by the scheduler.
std::atomic<std::size_t>* current_task_slot();
void set_current_task_slot(std::atomic<std::size_t>* slot);

// The message of the error a call stopped for `reason` throws (TimeoutError
// for kTimedOut, InterruptedError otherwise): the one place it is written.
std::string stop_message(StopReason reason, std::string_view backend,
                         const StopToken& stop, std::size_t done, std::size_t n,
                         const std::vector<RunningTask>& running,
                         bool workers_stopped);

// The TaskError for a task of `backend` that failed on `worker`.
TaskError task_error(std::size_t index, std::string_view backend,
                     std::string worker, TaskFailure&& failure);

// Runs the whole job on the calling thread, in index order: the reference
// semantics every backend must match. `worker` names the thread in errors.
// options.batch_size must be resolved (>= 1).
RunReport run_inline(std::string_view backend, const Job& job,
                     const RunOptions& options, std::string_view worker);
}  // namespace internal

}  // namespace fanout

#define FANOUT_REGISTER_BACKEND(ident, description, ...)            \
  namespace {                                                       \
  [[maybe_unused]] const bool fanout_registered_backend_##ident =   \
      ::fanout::register_backend(#ident, description, __VA_ARGS__); \
  }

#endif  // FANOUT_CORE_EXECUTOR_H_
