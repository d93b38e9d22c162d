#include "backends/process/failure_text.h"

#include <errno.h>
#include <string.h>

#include <algorithm>

#include "backends/process/shared_block.h"
#include "backends/process/worker.h"
#include "core/errors.h"
#include "core/internal/wait_status.h"

namespace fanout::process_internal {

void ThrowErrno(const char* what) {
  throw Error(std::string("process backend: ") + what + ": " + strerror(errno));
}

void ThrowDeath(const Death& death) {
  std::string how;
  const internal::WaitOutcome outcome =
      death.status_known ? internal::DecodeWaitStatus(death.status)
                         : internal::WaitOutcome{};
  if (!death.status_known) {
    how = "worker ended and was reaped outside fanout (exit status unknown)";
  } else if (outcome.exit_status == kLostPipeExitStatus &&
             death.lost_pipe_fd >= 0) {
    how = "worker lost its result pipe (a task closed or replaced fd " +
          std::to_string(death.lost_pipe_fd) + "?)";
  } else {
    how = "worker " + internal::DescribeWaitStatus(death.status);
  }
  if (death.current == kNoTask) {
    throw Error("process backend: " + how + " (" + death.worker +
                ") before it started a task");
  }
  how += outcome.exit_status == kLostPipeExitStatus && death.lost_pipe_fd >= 0
             ? " after running this task"
             : " while running this task";
  TaskError error(TaskError::Details{
      static_cast<std::size_t>(death.current), "process", death.worker, "", how,
      outcome.signal, outcome.exit_status, nullptr});
  throw error.with_failed_tasks(death.failures_before + 1);
}

void ThrowTimeout(std::chrono::milliseconds timeout, std::size_t done,
                  std::size_t n,
                  std::vector<std::pair<std::int64_t, std::string>> running) {
  std::sort(running.begin(), running.end());
  std::string names;
  for (const auto& [task, worker] : running) {
    names += (names.empty() ? "" : ", ") + std::string("task ") +
             std::to_string(task) + " (" + worker + ")";
  }
  throw TimeoutError("call timed out after " + std::to_string(timeout.count()) +
                     " ms on backend 'process' with " + std::to_string(done) +
                     " of " + std::to_string(n) + " tasks finished; " +
                     (names.empty() ? std::string("no task was running")
                                    : "still running: " + names));
}

void ThrowInterrupted(int sig, std::size_t done, std::size_t n) {
  throw InterruptedError("interrupted by " + internal::SignalName(sig) +
                             " on backend 'process' with " +
                             std::to_string(done) + " of " + std::to_string(n) +
                             " tasks finished; every worker was stopped",
                         sig);
}

}  // namespace fanout::process_internal
