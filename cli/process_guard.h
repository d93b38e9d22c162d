// fanout/cli/process_guard.h — commands mode's promise that no command
// outlives the run: a watchdog process that kills every command's process
// group when this process dies in any way (SIGKILL, SIGHUP, SIGPIPE, a
// crash), and this process made a child subreaper (PR_SET_CHILD_SUBREAPER)
// so that a command's orphaned background children are adopted by it, not
// by init, and are killed and reaped when the guard ends.
//
//   fanout::cli::ProcessGuard guard;
//   pid_t pid = ...;        // a command, leading its own process group
//   guard.Add(pid);         // killed with its group should we die
//   ...                     // the command ends, its group is killed
//   guard.Remove(pid);
//   // ~ProcessGuard: adopted children killed and reaped, watchdog gone
//
// Only one guard at a time. PR_SET_PDEATHSIG alone is not enough: it reaches
// the `sh -c` leader, not what the command started in the background.
#ifndef FANOUT_CLI_PROCESS_GUARD_H_
#define FANOUT_CLI_PROCESS_GUARD_H_

#include <sys/types.h>

#include <vector>

namespace fanout::cli {

class ProcessGuard {
 public:
  ProcessGuard();
  ~ProcessGuard();
  ProcessGuard(const ProcessGuard&) = delete;
  ProcessGuard& operator=(const ProcessGuard&) = delete;

  // Process group `pgid` is to be SIGKILLed if this process dies first.
  void Add(pid_t pgid);
  // It is gone (or killed by us): forget it. Thread-safe, as Add is.
  void Remove(pid_t pgid);

  // Kills (SIGKILL) and reaps every child of this process except the
  // watchdog and those it had before the guard: what commands left behind
  // and this process adopted. Call it once no command runs.
  void KillAdopted();

 private:
  void Send(char op, pid_t pgid);
  int pipe_ = -1;  // write end; the watchdog sees end of file when we die
  pid_t watchdog_ = -1;
  bool was_subreaper_ = false;
  std::vector<pid_t> before_;  // children from before the guard: not ours
};

}  // namespace fanout::cli

#endif  // FANOUT_CLI_PROCESS_GUARD_H_
