#include "core/parallel.h"

#include <algorithm>
#include <utility>

namespace fanout {

Parallel::Parallel(Options options)
    : executor_(make_executor(options.backend, {.jobs = options.jobs})),
      options_(std::move(options)) {}

Parallel::Parallel(std::shared_ptr<Executor> executor, Options options)
    : executor_(std::move(executor)), options_(std::move(options)) {
  options_.backend = std::string(executor_->name());
}

RunReport Parallel::Run(const Job& job, ErrorPolicy errors) {
  RunReport report = RunOn(job, errors);
  std::sort(report.failures.begin(), report.failures.end(),
            [](const TaskError& a, const TaskError& b) {
              return a.index() < b.index();
            });
  return report;
}

RunReport Parallel::RunOn(const Job& job, ErrorPolicy errors) {
  RunOptions ro;
  ro.jobs = executor_->jobs();
  ro.batch_size = options_.batch_size;
  ro.errors = errors;
  ro.timeout = options_.timeout;
  ro.cancel = options_.cancel;

  if (in_task()) {
    // A call from inside a task: the workers are busy with the outer call.
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
  const bool watch =
      callback || options_.timeout.count() > 0 || options_.cancel != nullptr;
  if (!watch) return executor_->run(job, ro);

  std::atomic<std::size_t> progress{0};
  std::atomic<bool> cancel{false};
  ro.progress = &progress;
  ro.cancel = &cancel;
  internal::ProgressMonitor monitor(job.n, &progress, callback,
                                    options_.timeout, options_.cancel, &cancel);
  RunReport report;
  try {
    report = executor_->run(job, ro);
  } catch (...) {
    monitor.finish(false);
    throw;
  }
  monitor.finish(report.failures.empty() && !report.cancelled);
  if (report.cancelled && report.failures.empty()) {
    if (monitor.timed_out()) {
      throw TimeoutError("call timed out after " +
                         std::to_string(options_.timeout.count()) +
                         " ms on backend '" + std::string(executor_->name()) +
                         "' with " + std::to_string(progress.load()) + " of " +
                         std::to_string(job.n) + " tasks finished");
    }
    throw InterruptedError("call cancelled on backend '" +
                               std::string(executor_->name()) + "' with " +
                               std::to_string(progress.load()) + " of " +
                               std::to_string(job.n) + " tasks finished",
                           0);
  }
  return report;
}

void Parallel::ThrowFirst(const RunReport& report) {
  if (report.failures.empty()) return;
  throw report.failures.front().with_failed_tasks(report.failures.size());
}

}  // namespace fanout
