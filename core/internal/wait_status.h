// fanout/core/internal/wait_status.h — how a child ended, in words: the one
// place that turns a wait status into text.
//
//   int status;
//   fanout::internal::WaitPid(pid, &status);
//   "child " + fanout::internal::DescribeWaitStatus(status)
//   // "child killed by SIGSEGV (Segmentation fault)"
//   // "child killed by SIGKILL (Killed), possibly out of memory (see the
//   //  kernel log for the OOM killer)" (what is known of the OOM killer:
//   //  see DescribeWaitStatus)
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
// SIGKILL, which the kernel's OOM killer sends, it says what is known of
// that killer: `oom_kills` is how many processes it killed while the child
// ran (the rise of OomKillCount()), or -1 when unknown.
//   -1: ", possibly out of memory (see the kernel log for the OOM killer)"
//    0: ", not by the kernel's OOM killer (it killed no process meanwhile)"
//    N: ", possibly out of memory (the kernel's OOM killer killed N
//        processes meanwhile; see the kernel log)"
// A child's peak memory cannot decide it: the OOM killer picks by
// oom_score, and a process with oom_score_adj 1000 (fanout's workers) is
// picked first however small it is.
std::string DescribeWaitStatus(int status, long long oom_kills = -1);

// How many processes the kernel's OOM killer has killed since boot (the
// oom_kill line of `vmstat`, /proc/vmstat; global and cgroup OOM kills
// alike), or -1 when it cannot be read (kernels before 4.13). Userspace
// killers (systemd-oomd, earlyoom) are not counted.
long long OomKillCount(const char* vmstat = "/proc/vmstat");

// The status as a shell reports it: the exit status, or 128 + the signal.
int ShellExitCode(int status);

// waitpid() retried after EINTR: the pid, 0 (WNOHANG and still running), or
// -1 with errno set (ECHILD: not a child, or already reaped elsewhere).
pid_t WaitPid(pid_t pid, int* status, int options = 0);

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_WAIT_STATUS_H_
