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
  TaskError error(TaskError::Details{death.current, "process", death.worker, "",
                                     how, outcome.signal, outcome.exit_status,
                                     nullptr});
  throw error.with_failed_tasks(death.failures_before + 1);
}

}  // namespace fanout::process_internal
