#include "core/parallel.h"

#include <cxxabi.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <utility>

#include "core/internal/scheduler.h"
#include "core/internal/trace.h"

namespace fanout {

namespace internal {

SharedWord::SharedWord(std::size_t initial) {
  void* p = mmap(nullptr, sizeof(std::atomic<std::size_t>),
                 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  mapped_ = p != MAP_FAILED;
  word_ = mapped_ ? new (p) std::atomic<std::size_t>(initial)
                  : new std::atomic<std::size_t>(initial);
}

SharedWord::~SharedWord() {
  if (mapped_) {
    munmap(word_, sizeof(std::atomic<std::size_t>));
  } else {
    delete word_;
  }
}

std::size_t StreamInFlight(const Options& o, int jobs) {
  const auto refuse = [](const char* what) {
    throw UsageError(std::string("imap over an input range: Options::") + what +
                     " needs a known number of tasks; valid: imap(n, f) "
                     "over n tasks, or leave it unset");
  };
  if (o.timeout.count() != 0) refuse("timeout");
  if (!o.checkpoint.empty()) refuse("checkpoint");
  if (o.verbose != 0) refuse("verbose");
  if (o.on_progress != nullptr) refuse("on_progress");
  if (o.on_stuck != nullptr) refuse("on_stuck");
  if (!o.trace.empty()) refuse("trace");
  if (o.trace_summary) refuse("trace_summary");
  if (o.max_in_flight == -1) {
    return 4 * static_cast<std::size_t>(std::max(jobs, 1));
  }
  if (o.max_in_flight <= 0) ThrowBadMaxInFlight(o.max_in_flight);
  return static_cast<std::size_t>(o.max_in_flight);
}

void ThrowBadMaxInFlight(int value) {
  throw UsageError("max_in_flight must be a positive number of tasks (got " +
                   std::to_string(value) +
                   "); valid: 1 or more, or -1 for 4 x jobs");
}

std::size_t NextBatch(std::size_t batch, std::uint64_t nanos, bool timed,
                      std::size_t most) {
  if (!timed)
    return std::clamp<std::size_t>(batch * 2, 1,
                                   std::min<std::size_t>(most, 4096));
  constexpr double kTargetNanos = 2e6;
  const double b = static_cast<double>(batch);
  double next =
      nanos == 0 ? b * 2 : b * kTargetNanos / static_cast<double>(nanos);
  next = std::clamp(next, b / 2, b * 2);
  return std::clamp<std::size_t>(static_cast<std::size_t>(next), 1, most);
}

void ThrowBadResultCount(std::size_t got, std::size_t n,
                         std::string_view backend) {
  throw Error("internal: backend '" +
              std::string(backend.empty() ? "?" : backend) + "' returned " +
              std::to_string(got) + " results for " + std::to_string(n) +
              " tasks");
}

std::string TypeName(const std::type_info& type) {
  int status = 0;
  char* name = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name != nullptr ? name : type.name();
  std::free(name);
  return out;
}

Checkpoint::Checkpoint(const std::string& path, const JournalIdentity& id,
                       bool primary, const Journal::OnRecord& on_record)
    : path_(path) {
  try {
    journal_ = std::make_unique<Journal>(path, id, primary, on_record);
  } catch (const JournalError& e) {
    if (e.kind() == JournalError::Kind::kMismatch) throw UsageError(e.what());
    throw Error(e.what());
  }
  if (!primary) journal_.reset();  // read; only the primary rank writes
}

void Checkpoint::Append(std::string_view batch) {
  if (journal_ == nullptr) return;
  try {
    journal_->Append(batch);
  } catch (const JournalError& e) {
    throw Error(e.what());
  }
}

void RenameWindowFailures(std::vector<TaskError>* failures,
                          const std::size_t* ids, std::size_t begin,
                          std::size_t count, bool all) {
  bool renamed = false;
  for (TaskError& e : *failures) {
    if ((!all && !e.type().empty()) || e.index() >= count) continue;
    TaskError::Details d = e.details();
    d.index = ids != nullptr ? ids[d.index] : begin + d.index;
    e = TaskError(std::move(d)).with_failed_tasks(e.failed_tasks());
    renamed = true;
  }
  if (renamed) {
    std::stable_sort(failures->begin(), failures->end(),
                     [](const TaskError& a, const TaskError& b) {
                       return a.index() < b.index();
                     });
  }
}

// A checkpointed call's windows. The first is four tasks per worker: how
// long a task takes is not known yet, and one long task must not make the
// first window (the work an interruption may lose) long. Each next window
// aims at kWindowSeconds of work: the last one's size scaled by
// kWindowSeconds / the time it took, but at most 8 times and at least a
// quarter of it (one odd window does not swing the size far), and never
// under four tasks per worker (each has chunks to balance). So a second of
// work at most is redone after an interruption, and a call of tiny tasks
// reaches large windows (one write() and, on process, one fork per worker
// each) within a few windows. Where every rank must make the same calls
// (mpi), a rank's clock cannot decide: windows are then a 32nd of the tasks
// (at least four per worker), the same on every rank.
constexpr double kWindowSeconds = 1.0;

std::size_t FirstWindow(int jobs, std::size_t left, bool timed) {
  const std::size_t floor = 4 * static_cast<std::size_t>(std::max(jobs, 1));
  if (!timed) return std::max(floor, (left + 31) / 32);
  return floor;
}

std::size_t NextWindow(std::size_t window, double seconds, int jobs,
                       std::size_t left, bool timed) {
  if (!timed) return window;
  const std::size_t floor = 4 * static_cast<std::size_t>(std::max(jobs, 1));
  const double w = static_cast<double>(window);
  double next = seconds > 0 ? w * kWindowSeconds / seconds : w * 8;
  next = std::clamp(next, w / 4, w * 8);
  const auto size = static_cast<std::size_t>(std::llround(next));
  return std::max({size, floor, std::size_t{1}});
}

CallScope::CallScope(Executor& executor, const Options& options,
                     std::size_t total, std::size_t done, bool count,
                     TraceState* trace, std::string_view label)
    : executor_(executor),
      total_(total),
      stop_(options.timeout),
      progress_(done),
      count_(count),
      trace_state_(trace) {
  if (trace != nullptr) {
    trace_ = std::make_unique<CallTrace>(trace->file, std::string(label));
  }
  ProgressCallback callback = options.on_progress;
  if (options.verbose > 0 && executor.is_primary()) {
    auto printer =
        std::make_shared<VerbosePrinter>(options.verbose, executor.jobs());
    callback = [printer, user = std::move(callback)](const ProgressEvent& e) {
      (*printer)(e);
      if (user) user(e);
    };
  }
  if (!callback && !stop_.has_deadline() && options.cancel == nullptr) return;
  // A call that can be stopped records which task each thread runs, so a
  // stop that waits on a task can name it.
  if (stop_.has_deadline() || options.cancel != nullptr) {
    watch_ = std::make_unique<TaskWatch>(executor.jobs());
  }
  monitor_ = std::make_unique<ProgressMonitor>(
      MonitorOptions{.total = total,
                     .done = &progress_,
                     .callback = callback,
                     .stop = &stop_,
                     .external_cancel = options.cancel,
                     .watch = watch_.get(),
                     .task_ids = &ids_,
                     .on_stuck = options.on_stuck,
                     .backend = std::string(executor.name()),
                     .done_before = done});
}

CallScope::~CallScope() {
  // A call that throws (a stop, a failed task, a death) still writes what
  // its trace has. An error writing it cannot be thrown from here.
  if (trace_ != nullptr && !trace_->finished()) {
    try {
      FinishTrace(false);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fanout: %s\n", e.what());
    }
  }
  Finish(false);
}

void CallScope::FinishTrace(bool ok) {
  TraceSummary summary = trace_->Finish(ok);
  std::lock_guard<std::mutex> lock(trace_state_->mu);
  trace_state_->last = std::move(summary);
}

RunReport CallScope::Run(const Job& job, RunOptions ro) {
  ro.stop = &stop_;
  ro.trace = trace_.get();
  if (monitor_ != nullptr || count_) ro.progress = &progress_;
  ro.watch = watch_.get();
  if (const std::size_t* ids = ids_.load()) {
    Job numbered = job;
    numbered.task_ids = ids;
    numbered.call_tasks = total_;
    numbered.indices_are_tasks = false;
    return executor_.run(numbered, ro);
  }
  return executor_.run(job, ro);
}

void CallScope::Finish(bool success) {
  if (monitor_ != nullptr) monitor_->finish(success);
  if (trace_ != nullptr && !trace_->finished()) FinishTrace(success);
}

}  // namespace internal

Parallel::Parallel(Options options)
    : executor_(make_executor(options.backend, {.jobs = options.jobs})),
      options_(std::move(options)) {
  if (options_.max_in_flight == 0 || options_.max_in_flight < -1) {
    internal::ThrowBadMaxInFlight(options_.max_in_flight);
  }
  OpenTrace();
}

Parallel::Parallel(std::shared_ptr<Executor> executor, Options options)
    : executor_(std::move(executor)), options_(std::move(options)) {
  options_.backend = std::string(executor_->name());
  if (options_.max_in_flight == 0 || options_.max_in_flight < -1) {
    internal::ThrowBadMaxInFlight(options_.max_in_flight);
  }
  OpenTrace();
}

void Parallel::OpenTrace() {
  std::string what;
  const std::string path = internal::TracePath(options_.trace, &what);
  if (path.empty() && !options_.trace_summary) return;
  if (in_task()) {
    // Its calls run inline, inside the outer call's task span.
    if (!options_.trace.empty() || options_.trace_summary) {
      throw UsageError(
          "Options::trace" +
          std::string(options_.trace.empty() ? "_summary" : "") +
          " on a Parallel made inside a task: its calls run inline as part of "
          "the outer task, so they are not traced on their own; valid: trace "
          "the outer call");
    }
    return;  // $FANOUT_TRACE: the outer call is traced
  }
  trace_ = std::make_shared<internal::TraceState>();
  // On mpi only the primary rank writes; the others send it their records.
  // Every rank refuses a bad path alike.
  if (!path.empty()) internal::CheckTracePath(path, what);
  if (!path.empty() && executor_->is_primary()) {
    trace_->file = internal::TraceFile::Open(path, what);
  }
}

std::optional<TraceSummary> Parallel::last_trace_summary() const {
  if (trace_ == nullptr) return std::nullopt;
  std::lock_guard<std::mutex> lock(trace_->mu);
  return trace_->last;
}

RunReport Parallel::Run(const Job& job, ErrorPolicy errors, bool retry,
                        internal::CallScope* scope, std::string_view label) {
  RunOptions ro;
  ro.jobs = executor_->jobs();
  ro.batch_size = options_.batch_size;
  ro.errors = errors;
  ro.timeout = options_.timeout;
  ro.retries = retry ? options_.retries : 0;
  ro.retry_on = &options_.retry_on;
  ro.task_timeout = options_.task_timeout;
  ro.worker_memory = options_.worker_memory;

  if (in_task()) {
    // A call from inside a task: no progress monitor of its own (the outer
    // call's deadline and cancel flag still hold). Executor::run decides,
    // as for every call, whether it runs inline or shares the workers.
    return executor_->run(job, ro);
  }

  if (scope != nullptr) return scope->Run(job, ro);
  // A call of one job: its scope is its own (a failed last event if it
  // throws).
  internal::CallScope own(*executor_, options_, job.n, 0, /*count=*/false,
                          trace_.get(), label);
  RunReport report = own.Run(job, ro);
  own.Finish(report.failures.empty());
  return report;
}

void Parallel::ThrowFirst(const RunReport& report) {
  if (report.failures.empty()) return;
  throw report.failures.front().with_failed_tasks(report.failures.size());
}

}  // namespace fanout
