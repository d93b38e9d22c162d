// fanout/core/internal/wait_status.h — how a child ended, in words: the one
// place that turns a wait status into text.
//
//   int status;
//   fanout::internal::WaitPid(pid, &status);
//   "child " + fanout::internal::DescribeWaitStatus(status)
//   // "child killed by SIGSEGV (Segmentation fault)"
//   // "child killed by SIGKILL (Killed), possibly out of memory (see the
//   //  kernel log for the OOM killer)"
//   // "child exited with status 3"
// IWYU pragma: private, include "core/internal/wait_status.h"
#ifndef FANOUT_CORE_INTERNAL_WAIT_STATUS_H_
#define FANOUT_CORE_INTERNAL_WAIT_STATUS_H_

#include <sys/types.h>

#include <string>

namespace fanout::internal {

// "SIGSEGV", or "signal 42" for a signal without a name.
std::string SignalName(int sig);

// "Segmentation fault", or "unknown signal".
std::string SignalDescription(int sig);

// How a wait status ended its process: the signal that killed it (0 when it
// exited) and its exit status (-1 when killed).
struct WaitOutcome {
  int signal = 0;
  int exit_status = -1;
};
WaitOutcome DecodeWaitStatus(int status);

// "killed by SIGSEGV (Segmentation fault)" or "exited with status 3". For
// SIGKILL, which the kernel's OOM killer sends, it adds ", possibly out of
// memory (see the kernel log for the OOM killer)".
std::string DescribeWaitStatus(int status);

// The status as a shell reports it: the exit status, or 128 + the signal.
int ShellExitCode(int status);

// waitpid() retried after EINTR: the pid, 0 (WNOHANG and still running), or
// -1 with errno set (ECHILD: not a child, or already reaped elsewhere).
pid_t WaitPid(pid_t pid, int* status, int options = 0);

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_WAIT_STATUS_H_
