#include "core/internal/wait_status.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

namespace fanout::internal {

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev
                           : "signal " + std::to_string(sig);
}

std::string SignalDescription(int sig) {
  const char* d = sigdescr_np(sig);
  return d != nullptr ? d : "unknown signal";
}

WaitOutcome DecodeWaitStatus(int status) {
  WaitOutcome outcome;
  if (WIFSIGNALED(status)) {
    outcome.signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    outcome.exit_status = WEXITSTATUS(status);
  }
  return outcome;
}

std::string DescribeWaitStatus(int status) {
  const WaitOutcome outcome = DecodeWaitStatus(status);
  if (outcome.signal == 0) {
    return "exited with status " + std::to_string(outcome.exit_status);
  }
  std::string text = "killed by " + SignalName(outcome.signal) + " (" +
                     SignalDescription(outcome.signal) + ")";
  if (outcome.signal == SIGKILL) {
    text += ", possibly out of memory (see the kernel log for the OOM killer)";
  }
  return text;
}

int ShellExitCode(int status) {
  const WaitOutcome outcome = DecodeWaitStatus(status);
  return outcome.signal != 0 ? 128 + outcome.signal : outcome.exit_status;
}

pid_t WaitPid(pid_t pid, int* status, int options) {
  for (;;) {
    const pid_t r = waitpid(pid, status, options);
    if (r >= 0 || errno != EINTR) return r;
  }
}

}  // namespace fanout::internal
