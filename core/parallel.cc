#include "core/parallel.h"

#include <algorithm>
#include <utility>

#include "core/internal/scheduler.h"

namespace fanout {

Parallel::Parallel(Options options)
    : executor_(make_executor(options.backend, {.jobs = options.jobs})),
      options_(std::move(options)) {}

Parallel::Parallel(std::shared_ptr<Executor> executor, Options options)
    : executor_(std::move(executor)), options_(std::move(options)) {
  options_.backend = std::string(executor_->name());
}

RunReport Parallel::Run(const Job& job, ErrorPolicy errors, bool retry) {
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
    // A call from inside a task: the workers are busy with the outer call,
    // whose own deadline and cancel flag still hold.
    ro.batch_size = resolve_batch_size(job.n, 1, ro.batch_size);
    return internal::run_inline(executor_->name(), job, ro, "nested call");
  }

  ProgressCallback callback = options_.on_progress;
  if (options_.verbose > 0 && executor_->is_primary()) {
    auto printer = std::make_shared<VerbosePrinter>(options_.verbose, ro.jobs);
    callback = [printer, user = std::move(callback)](const ProgressEvent& e) {
      (*printer)(e);
      if (user) user(e);
    };
  }
  StopToken stop(options_.timeout);
  ro.stop = &stop;
  const bool monitored =
      callback || stop.has_deadline() || options_.cancel != nullptr;
  if (!monitored) return executor_->run(job, ro);

  std::atomic<std::size_t> progress{0};
  ro.progress = &progress;
  // A call that can be stopped records which task each thread runs, so a
  // stop that waits on a task can name it.
  std::unique_ptr<internal::TaskWatch> watch;
  if (stop.has_deadline() || options_.cancel != nullptr) {
    watch = std::make_unique<internal::TaskWatch>(ro.jobs);
    ro.watch = watch.get();
  }
  internal::ProgressMonitor monitor(
      {.total = job.n,
       .done = &progress,
       .callback = callback,
       .stop = &stop,
       .external_cancel = options_.cancel,
       .watch = watch.get(),
       .on_stuck = options_.on_stuck,
       .backend = std::string(executor_->name())});
  RunReport report;
  try {
    report = executor_->run(job, ro);
  } catch (...) {
    monitor.finish(false);
    throw;
  }
  monitor.finish(report.failures.empty());
  return report;
}

void Parallel::ThrowFirst(const RunReport& report) {
  if (report.failures.empty()) return;
  throw report.failures.front().with_failed_tasks(report.failures.size());
}

}  // namespace fanout
