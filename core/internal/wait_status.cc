#include "core/internal/wait_status.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

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

std::string DescribeWaitStatus(int status, long long oom_kills) {
  const WaitOutcome outcome = DecodeWaitStatus(status);
  if (outcome.signal == 0) {
    return "exited with status " + std::to_string(outcome.exit_status);
  }
  std::string text = "killed by " + SignalName(outcome.signal) + " (" +
                     SignalDescription(outcome.signal) + ")";
  if (outcome.signal != SIGKILL) return text;
  if (oom_kills < 0) {
    text += ", possibly out of memory (see the kernel log for the OOM killer)";
  } else if (oom_kills == 0) {
    text += ", not by the kernel's OOM killer (it killed no process meanwhile)";
  } else {
    text += ", possibly out of memory (the kernel's OOM killer killed " +
            std::to_string(oom_kills) + " process" +
            (oom_kills == 1 ? "" : "es") + " meanwhile; see the kernel log)";
  }
  return text;
}

long long OomKillCount(const char* vmstat) {
  // Plain system calls into a buffer on the stack: about 12 us here, once
  // per process-backend call.
  const int fd = open(vmstat, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[16384];
  std::size_t len = 0;
  for (ssize_t n; len + 1 < sizeof(buf) &&
                  (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return -1;
    }
    len += static_cast<std::size_t>(n);
  }
  close(fd);
  buf[len] = '\0';
  static constexpr char kKey[] = "oom_kill ";
  for (const char* line = buf; line != nullptr && *line != '\0';) {
    if (std::strncmp(line, kKey, sizeof(kKey) - 1) == 0) {
      char* end = nullptr;
      const long long count = std::strtoll(line + sizeof(kKey) - 1, &end, 10);
      return end != line + sizeof(kKey) - 1 && count >= 0 ? count : -1;
    }
    line = std::strchr(line, '\n');
    if (line != nullptr) ++line;
  }
  return -1;
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
