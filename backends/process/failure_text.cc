#include "backends/process/failure_text.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include <algorithm>

#include "backends/process/memory_limit.h"
#include "backends/process/shared_block.h"
#include "backends/process/worker.h"
#include "core/errors.h"
#include "core/internal/wait_status.h"

namespace fanout::process_internal {

void ThrowErrno(const char* what) {
  throw Error(std::string("process backend: ") + what + ": " + strerror(errno));
}

void ThrowDeath(const Death& death) {
  const internal::WaitOutcome outcome =
      death.status_known ? internal::DecodeWaitStatus(death.status)
                         : internal::WaitOutcome{};
  const bool lost_pipe =
      outcome.exit_status == kLostPipeExitStatus && death.lost_pipe_fd >= 0;
  std::string how;
  if (!death.status_known) {
    how = "worker ended and was reaped outside fanout (exit status unknown)";
  } else if (lost_pipe) {
    how = "worker lost its result pipe (a task closed or replaced fd " +
          std::to_string(death.lost_pipe_fd) + "?)";
  } else {
    how =
        "worker " + internal::DescribeWaitStatus(death.status, death.oom_kills);
  }
  if (death.current == kNoTask && death.unblamed_deaths <= kMaxUnblamedDeaths) {
    throw Error("process backend: " + how + " (" + death.worker +
                ") before it started a task");
  }
  if (death.current == kNoTask) {
    throw Error("process backend: " + how + " (" + death.worker +
                ") between tasks; " + std::to_string(death.unblamed_deaths) +
                " workers died running no task in this call and at most " +
                std::to_string(kMaxUnblamedDeaths) +
                " are replaced, so something keeps killing them (a kill "
                "from outside?)");
  }
  if (death.status_known && !lost_pipe) {
    throw DeathError(death).with_failed_tasks(death.failures_before + 1);
  }
  TaskError error(TaskError::Details{
      death.current, "process", death.worker, "",
      how +
          (lost_pipe ? " after running this task" : " while running this task"),
      outcome.signal, outcome.exit_status, nullptr});
  throw error.with_failed_tasks(death.failures_before + 1);
}

TaskError DeathError(const Death& death) {
  const internal::WaitOutcome outcome =
      death.status_known ? internal::DecodeWaitStatus(death.status)
                         : internal::WaitOutcome{};
  std::string how;
  if (death.timed_out.count() != 0) {
    how = "timed out after " + std::to_string(death.timed_out.count()) +
          " ms (its worker was killed)";
  } else {
    how = "worker " +
          internal::DescribeWaitStatus(death.status, death.oom_kills) +
          " while running this task";
    if (outcome.signal == SIGKILL && death.peak_kib > 0) {
      how += "; peak memory " +
             FormatBytes(static_cast<std::size_t>(death.peak_kib) * 1024);
    }
  }
  if (death.attempts > 1) {
    how += " (failed " + std::to_string(death.attempts) + " attempts)";
  }
  return TaskError(TaskError::Details{
      static_cast<std::size_t>(death.current), "process", death.worker, "", how,
      outcome.signal, outcome.exit_status, nullptr});
}

}  // namespace fanout::process_internal
