#include "core/executor.h"

#include <cxxabi.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <typeinfo>
#include <utility>

#include "core/internal/rank_task.h"
#include "core/internal/scheduler.h"
#include "core/internal/wait_status.h"

namespace fanout {

using internal::CallControl;
using internal::ChunkRunner;
using internal::FailureList;
using internal::InPlaceSink;

namespace {

struct Registration {
  std::string description;
  ExecutorFactory factory;
};

// Function-local static: registrations run from other translation units'
// static initializers, in an order nobody controls.
std::map<std::string, Registration, std::less<>>& Registry() {
  static auto* registry = new std::map<std::string, Registration, std::less<>>;
  return *registry;
}

std::mutex& RegistryMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}

thread_local bool t_in_task = false;

std::string Demangle(const char* mangled) {
  int status = 0;
  char* s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = (status == 0 && s != nullptr) ? s : mangled;
  std::free(s);
  return out;
}

// The cgroup CPU quota as a CPU count, or 0 when there is none.
int CgroupCpuLimit() {
  {  // cgroup v2: "max 100000" or "150000 100000"
    std::ifstream f("/sys/fs/cgroup/cpu.max");
    std::string quota;
    long period = 0;
    if (f >> quota >> period && quota != "max" && period > 0) {
      long q = std::atol(quota.c_str());
      if (q > 0) return static_cast<int>(std::ceil(double(q) / double(period)));
    }
  }
  {  // cgroup v1
    std::ifstream fq("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    std::ifstream fp("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    long q = -1, p = 0;
    if (fq >> q && fp >> p && q > 0 && p > 0) {
      return static_cast<int>(std::ceil(double(q) / double(p)));
    }
  }
  return 0;
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] =
          std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

bool register_backend(std::string name, std::string description,
                      ExecutorFactory factory) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry()[std::move(name)] =
      Registration{std::move(description), std::move(factory)};
  return true;
}

std::vector<std::string> backend_names() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::vector<std::string> names;
  for (const auto& [name, reg] : Registry()) names.push_back(name);
  return names;
}

std::string backend_description(std::string_view name) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto it = Registry().find(name);
  return it == Registry().end() ? "" : it->second.description;
}

std::unique_ptr<Executor> make_executor(std::string_view name,
                                        const ExecutorOptions& options) {
  ExecutorFactory factory;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto it = Registry().find(name);
    if (it != Registry().end()) factory = it->second.factory;
  }
  if (!factory) {
    // One of fanout's own backends that this program did not link.
    for (const char* known :
         {"sequential", "thread", "process", "tbb", "mpi"}) {
      if (name != known) continue;
      std::string linked;
      for (const std::string& n : backend_names()) {
        linked += (linked.empty() ? "" : ", ") + n;
      }
      throw UsageError(
          "backend '" + std::string(name) +
          "' is not linked into this program: add \"@fanout//backends/" +
          std::string(name) +
          "\" to the deps of its cc_binary (or "
          "\"@fanout//backends:all\" for every backend); linked backends: " +
          (linked.empty() ? "none" : linked));
    }
    std::string valid;
    for (const std::string& n : backend_names()) {
      valid += (valid.empty() ? "" : ", ") + n;
    }
    if (valid.empty()) valid = "(none linked: depend on @fanout//backends/...)";
    std::string hint;
    // Two typos in a longer name, one in a short one ("gpu" is not "mpi").
    const std::size_t allowed = name.size() <= 4 ? 1 : 2;
    for (const std::string& n : backend_names()) {
      if (EditDistance(name, n) <= allowed)
        hint = " (did you mean '" + n + "'?)";
    }
    throw UsageError("unknown backend '" + std::string(name) + "'" + hint +
                     "; valid backends: " + valid);
  }
  ExecutorOptions resolved = options;
  resolved.jobs = resolve_jobs(options.jobs);
  std::unique_ptr<Executor> executor = factory(resolved);
  refuse_jobs_over_limit(*executor, executor->jobs());
  return executor;
}

void refuse_jobs_over_limit(const Executor& executor, int jobs) {
  const JobsLimit limit = executor.jobs_limit();
  if (limit.per_cpu <= 0) return;
  const int cpus = usable_cpus();
  const long long most = static_cast<long long>(limit.per_cpu) * cpus;
  if (jobs <= most) return;
  const std::string at_most = std::to_string(most);
  throw UsageError("jobs=" + std::to_string(jobs) + " is more than backend '" +
                   std::string(executor.name()) + "' runs at once: at most " +
                   at_most + " (" + std::to_string(limit.per_cpu) +
                   " per usable CPU, " + std::to_string(cpus) + " usable CPU" +
                   (cpus == 1 ? "" : "s") + " here); " +
                   std::string(limit.why) + "; valid: jobs from 1 to " +
                   at_most + ", or -1 for every usable CPU");
}

int usable_cpus() {
  static const int cpus = [] {
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    int quota = CgroupCpuLimit();
    if (quota > 0) n = std::min(n, quota);
    return std::max(n, 1);
  }();
  return cpus;
}

int resolve_jobs(int jobs) {
  if (jobs == 0) {
    throw UsageError(
        "jobs must not be 0; valid: a positive count, or -1 for every usable "
        "CPU (" +
        std::to_string(usable_cpus()) + " here), -2 for all but one, ...");
  }
  if (jobs > 0) return jobs;
  return std::max(usable_cpus() + 1 + jobs, 1);
}

std::size_t auto_batch_size(std::size_t n, int jobs) {
  // About 32 chunks per worker keeps imbalance low (dynamic scheduling) while
  // a chunk of up to 2048 tiny tasks makes the shared counter's cost vanish.
  std::size_t per = n / (static_cast<std::size_t>(std::max(jobs, 1)) * 32);
  return std::clamp<std::size_t>(per, 1, 2048);
}

std::size_t resolve_batch_size(std::size_t n, int jobs, std::size_t requested) {
  if (requested == 0) return auto_batch_size(n, jobs);
  return std::clamp<std::size_t>(requested, 1, std::max<std::size_t>(n, 1));
}

bool in_task() { return t_in_task; }

namespace {
std::atomic<int> g_worker_cpu_share{0};
}  // namespace

namespace internal {
void set_worker_cpu_share(int cpus) {
  g_worker_cpu_share.store(cpus, std::memory_order_relaxed);
}
int worker_cpu_share() {
  return g_worker_cpu_share.load(std::memory_order_relaxed);
}
}  // namespace internal

namespace {
thread_local bool t_in_rank_task = false;
}  // namespace

bool internal::in_rank_task() { return t_in_rank_task; }
internal::RankTaskScope::RankTaskScope() : previous_(t_in_rank_task) {
  t_in_rank_task = true;
}
internal::RankTaskScope::~RankTaskScope() { t_in_rank_task = previous_; }

namespace {
thread_local bool t_in_sequential_spawn = false;
}  // namespace

bool internal::in_sequential_spawn() { return t_in_sequential_spawn; }
internal::SequentialSpawnScope::SequentialSpawnScope()
    : previous_(t_in_sequential_spawn) {
  t_in_sequential_spawn = true;
}
internal::SequentialSpawnScope::~SequentialSpawnScope() {
  t_in_sequential_spawn = previous_;
}

void internal::ThrowSharedAcrossRanks(const char* what) {
  throw UsageError(
      std::string(what) +
      " used inside a task on the mpi backend with several ranks: ranks "
      "share no memory, so each would change only its own copy and the "
      "caller would see a different answer than on any other backend; pass "
      "values in as task arguments and out as results (map_reduce them), or "
      "use the thread or process backend on one machine");
}

namespace {
constinit thread_local std::atomic<std::size_t>* t_task_slot = nullptr;
}  // namespace

std::atomic<std::size_t>* internal::current_task_slot() { return t_task_slot; }
void internal::set_current_task_slot(std::atomic<std::size_t>* slot) {
  t_task_slot = slot;
}

std::string internal::stop_message(StopReason reason, std::string_view backend,
                                   const StopToken& stop, std::size_t done,
                                   std::size_t n,
                                   const std::vector<RunningTask>& running,
                                   bool workers_stopped) {
  const std::string finished = " on backend '" + std::string(backend) +
                               "' with " + std::to_string(done) + " of " +
                               std::to_string(n) + " tasks finished";
  std::string tasks;
  for (const RunningTask& t : running) {
    tasks += (tasks.empty() ? "" : ", ") + std::string("task ") +
             std::to_string(t.index) + " (" + t.worker + ")";
  }
  switch (reason) {
    case StopReason::kTimedOut: {
      std::string what = "call timed out after " +
                         std::to_string(stop.timeout().count()) + " ms" +
                         finished;
      if (!tasks.empty()) {
        what += "; still running: " + tasks;
      } else if (workers_stopped) {
        what += "; no task was running";
      }
      return what;
    }
    case StopReason::kInterrupted:
      return "interrupted by " + internal::SignalName(stop.signal()) +
             finished + (workers_stopped ? "; every worker was stopped" : "");
    default:
      return "call cancelled" + finished +
             (tasks.empty() ? "" : "; still running: " + tasks);
  }
}

namespace {

// Throws the error for a call that was stopped from outside; returns for a
// call that ran to its end or stopped on a failed task.
void ThrowIfStopped(std::string_view backend, const RunReport& report,
                    const RunOptions& options, const Job& job) {
  if (report.stopped == StopReason::kNone ||
      report.stopped == StopReason::kFailed) {
    return;
  }
  std::vector<RunningTask> running = report.running;
  if (job.task_ids != nullptr) {
    for (RunningTask& t : running) t.index = job.task_ids[t.index];
  }
  const std::string what = internal::stop_message(
      report.stopped, backend, *options.stop, options.progress->load(),
      job.call_tasks != 0 ? job.call_tasks : job.n, running,
      report.workers_stopped);
  if (report.stopped == StopReason::kTimedOut) throw TimeoutError(what);
  throw InterruptedError(what, report.stopped == StopReason::kInterrupted
                                   ? options.stop->signal()
                                   : 0);
}

// Task limits need a worker that can be killed from outside: a thread
// cannot be stopped, and its memory is the caller's.
void RefuseTaskLimits(const Executor& executor, const RunOptions& o) {
  if (o.task_timeout.count() < 0) {
    throw UsageError("task_timeout must not be negative (got " +
                     std::to_string(o.task_timeout.count()) +
                     " ms); valid: 0 (no limit) or a duration in ms");
  }
  if (executor.can_limit_tasks()) return;
  const std::string backend(executor.name());
  if (o.task_timeout.count() != 0) {
    throw UsageError(
        "task_timeout needs the process backend: a thread cannot be stopped "
        "from outside, so backend '" +
        backend +
        "' cannot end a task that runs too long; use backend 'process', or "
        "timeout for the whole call");
  }
  throw UsageError(
      "worker_memory needs the process backend: backend '" + backend +
      "' runs tasks in memory it cannot limit per worker; use backend "
      "'process'");
}

}  // namespace

RunReport Executor::run(const Job& job, const RunOptions& options) {
  RunOptions o = options;
  StopToken own_stop;
  std::atomic<std::size_t> own_progress{0};
  if (o.stop == nullptr) {
    own_stop.SetTimeout(o.timeout);
    o.stop = &own_stop;
  }
  if (o.progress == nullptr) o.progress = &own_progress;
  o.jobs = std::max(o.jobs, 1);
  refuse_jobs_over_limit(*this, o.jobs);
  o.batch_auto = o.batch_size == 0;
  o.total_workers = total_workers(o.jobs);
  o.batch_size = resolve_batch_size(job.n, total_workers(o.jobs), o.batch_size);
  if (o.retries < 0) {
    throw UsageError("retries must not be negative (got " +
                     std::to_string(o.retries) +
                     "); valid: 0 (never) or how many times to run a failed "
                     "task again");
  }
  const bool task_limits = o.task_timeout.count() != 0 || o.worker_memory != 0;
  if (task_limits) RefuseTaskLimits(*this, o);
  if (!shares_memory() && job.uncrossable_result != nullptr && job.n > 0) {
    const std::string type = Demangle(job.uncrossable_result->name());
    throw UsageError(
        "the result type '" + type +
        "' cannot cross a process boundary, "
        "as backend '" +
        std::string(name()) +
        "' needs: give it a cereal "
        "serialize() (template <class A> void serialize(A& a) { a(x, y); }, "
        "see core/codec.h) and a default constructor or cereal's "
        "load_and_construct, or use a backend that "
        "shares memory (thread, tbb, sequential)");
  }
  RunReport report;
  const Capabilities caps = capabilities();
  // A call from inside a task runs inline: the workers are busy with the
  // outer call (and on mpi only the outer call talks to the other ranks).
  const bool nested = in_task();
  const bool inline_run =
      nested || (caps.runs_small_calls_inline && !task_limits &&
                 !o.in_workers && (o.jobs <= 1 || job.n <= 1));
  // Reserved result slots are constructed here unless an adopting backend
  // fills them (Job::construct_results).
  Job j = job;
  if (j.construct_results != nullptr && (inline_run || !caps.adopts_results)) {
    j.construct_results(j.ctx);
    j.construct_results = nullptr;
    j.adopt_results = nullptr;
  }
  if (nested) {
    RunOptions in_task_options = o;
    in_task_options.watch = nullptr;  // the outer call's tasks own the watch
    in_task_options.trace = nullptr;  // part of the outer task's span
    if (caps.runs_nested_calls && !task_limits && o.jobs > 1 && job.n > 1) {
      report = RunParallel(j, in_task_options);
    } else {
      report = internal::run_inline(name(), j, in_task_options, "nested call");
    }
  } else {
    // A traced job: its tracks are taken in however it ends (a stop
    // throws from here), so that what ran is written.
    struct JobTrace {
      internal::CallTrace* trace;
      ~JobTrace() {
        if (trace != nullptr) trace->EndJob();
      }
    } job_trace{o.trace};
    if (o.trace != nullptr) {
      o.trace->BeginJob(name(), j.n, inline_run ? 1 : total_workers(o.jobs),
                        o.batch_size, o.batch_auto);
    }
    if (inline_run) {
      report = internal::run_inline(name(), j, o, inline_worker());
    } else {
      report = RunParallel(j, o);
    }
  }
  std::sort(report.failures.begin(), report.failures.end(),
            [](const TaskError& a, const TaskError& b) {
              return a.index() < b.index();
            });
  ThrowIfStopped(name(), report, o, job);
  return report;
}

namespace internal {

InTaskScope::InTaskScope() : previous_(t_in_task) { t_in_task = true; }
InTaskScope::~InTaskScope() { t_in_task = previous_; }

TaskFailure describe_current_exception() {
  TaskFailure f;
  f.exception = std::current_exception();
  try {
    throw;
  } catch (const GroupTaskFailure& g) {
    try {
      std::rethrow_exception(g.exception);
    } catch (...) {
      f = describe_current_exception();
    }
    f.task = g.task;
  } catch (const std::exception& e) {
    f.type = Demangle(typeid(e).name());
    f.message = e.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    f.type = t != nullptr ? Demangle(t->name()) : "unknown exception";
    f.message = "(not a std::exception)";
  }
  return f;
}

TaskError task_error(std::size_t index, std::string_view backend,
                     std::string worker, TaskFailure&& failure) {
  return TaskError(TaskError::Details{
      index, std::string(backend), std::move(worker), std::move(failure.type),
      std::move(failure.message), 0, -1, std::move(failure.exception)});
}

RunReport run_inline(std::string_view backend, const Job& job,
                     const RunOptions& options, std::string_view worker) {
  InTaskScope scope;
  CallControl control;
  control.Reset(job.n, options, 1);
  FailureList failures;
  const auto name = [worker] { return std::string(worker); };
  InPlaceSink<decltype(name)> sink(failures, backend, name, options.watch, 0);
  ChunkRunner<decltype(sink)> runner(job, control, options, options.progress,
                                     options.stop, sink);
  runner.RunClaimed();
  RunReport report;
  report.failures = failures.Take();
  report.stopped = control.stopped();
  return report;
}

}  // namespace internal
}  // namespace fanout
