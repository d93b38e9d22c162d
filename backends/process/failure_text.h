// What the process backend says when a call fails as a whole: a worker that
// died (the signal or exit status, and the task it was running), a timeout
// (the tasks still running), an interrupt, a system call that failed. Each
// builds its message and throws.
// IWYU pragma: private
#ifndef FANOUT_BACKENDS_PROCESS_FAILURE_TEXT_H_
#define FANOUT_BACKENDS_PROCESS_FAILURE_TEXT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/errors.h"

namespace fanout::process_internal {

// fanout::Error "process backend: <what>: <strerror(errno)>".
[[noreturn]] void ThrowErrno(const char* what);

// Deaths between tasks (a worker killed from outside before its first
// task, or while it took or handed in work) that a call survives: no task
// is to blame, so retries do not bound them.
inline constexpr int kMaxUnblamedDeaths = 16;

// A worker that ended without finishing cleanly.
struct Death {
  std::string worker;           // "pid 4242"
  bool status_known = false;    // false: reaped outside fanout
  int status = 0;               // its wait status, when known
  std::int32_t lost_pipe_fd;    // WorkerSlot::lost_pipe_fd
  std::size_t current;          // the task it ran last, or kNoTask
  std::size_t failures_before;  // task failures the call reported already
  // How many workers this task has killed (attempts), their last one's
  // peak memory, and the task_timeout it was killed for (0: it was not).
  int attempts = 1;
  long peak_kib = 0;
  std::chrono::milliseconds timed_out{0};
  // Processes the kernel's OOM killer killed during the call (-1: unknown):
  // see internal::DescribeWaitStatus.
  long long oom_kills = -1;
  // Deaths between tasks in the call so far, when that is why it ends.
  int unblamed_deaths = 0;
};
// TaskError naming the task and how the worker ended; fanout::Error when it
// died between tasks (death.current is kNoTask) more often than a call
// replaces such deaths.
[[noreturn]] void ThrowDeath(const Death& death);
// The TaskError of a worker's death while running death.current:
// "worker killed by SIGSEGV (Segmentation fault) while running this task",
// for SIGKILL with ", peak memory 1.2 GiB", or "timed out after 200 ms";
// then " (failed 2 attempts)" after more than one.
TaskError DeathError(const Death& death);

}  // namespace fanout::process_internal

#endif  // FANOUT_BACKENDS_PROCESS_FAILURE_TEXT_H_
