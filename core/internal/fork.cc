#include "core/internal/fork.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace fanout::internal {

void ResetSignals() {
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &dfl, nullptr);  // fails harmlessly for reserved signals
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

pid_t ForkChild(const ForkOptions& options) {
  if (options.flush_stdio) std::fflush(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) {
    if (pid > 0 && options.new_process_group) setpgid(pid, pid);
    return pid;
  }
  // The child. Only async-signal-safe calls from here on.
  if (options.new_process_group) setpgid(0, 0);
  // Die with the caller; if it already died, the parent is now someone else.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(kOrphanExitStatus);
  ResetSignals();
  for (const int fd : options.close_fds) {
    if (fd >= 0) close(fd);
  }
  return 0;
}

}  // namespace fanout::internal
