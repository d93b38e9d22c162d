// fanout/commands/process_guard.h — commands mode's promise that no command
// outlives the run: a cgroup of its own that every command joins before it
// execs (v2 where the machine has it, else v1's freezer), so that it holds
// every descendant, even one that left its process group and session
// (setsid); a watchdog process that kills that cgroup and every command's
// process group when this process dies in any way (SIGKILL, SIGHUP,
// SIGPIPE, a crash) or ends; and this process made a child subreaper
// (PR_SET_CHILD_SUBREAPER) so that a command's orphaned background children
// are adopted by it, not by init, and are killed and reaped when the guard
// ends.
//
//   fanout::commands::ProcessGuard guard;
//   pid_t pid = fork();
//   if (pid == 0) {
//     if (!guard.JoinCgroup()) _exit(126);  // before exec
//     execl(...);
//   }
//   guard.Add(pid);         // a command, leading its own process group
//   ...                     // the command ends, its group is killed
//   guard.Remove(pid);
//   // ~ProcessGuard: adopted children killed and reaped, the cgroup killed
//   // and removed, watchdog gone
//
// Only one guard at a time. PR_SET_PDEATHSIG alone is not enough: it reaches
// the `sh -c` leader, not what the command started in the background. Where
// no cgroup can be made (no write access to the hierarchy, none mounted),
// containment() says why, and a process that leaves its command's process
// group and outlives a SIGKILLed run escapes.
#ifndef FANOUT_COMMANDS_PROCESS_GUARD_H_
#define FANOUT_COMMANDS_PROCESS_GUARD_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace fanout::commands {

// Which cgroup hierarchy a guard may use.
enum class CgroupChoice {
  kAny,  // v2 where mounted, else v1's freezer
  kV1,   // v1's freezer only
  kNone  // none
};

class ProcessGuard {
 public:
  explicit ProcessGuard(CgroupChoice choice = CgroupChoice::kAny);
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

  // Moves the calling process into the run's cgroup; true when it is there
  // or there is none. For a command's child between fork and exec:
  // async-signal-safe.
  bool JoinCgroup() const;

  // The run's cgroup directory; "" when there is none.
  const std::string& cgroup() const { return cgroup_dir_; }
  // What holds the commands, for --verbose: the cgroup, or why there is
  // none and what that means.
  const std::string& containment() const { return containment_; }

 private:
  // Makes the run's cgroup in hierarchy `kind` ("v2" or "freezer"); false,
  // with the reason appended to `why`, when it cannot be made or joined.
  bool MakeCgroup(const std::string& kind, std::string* why);
  void Send(char op, pid_t pgid);
  int pipe_ = -1;  // write end; the watchdog sees end of file when we die
  pid_t watchdog_ = -1;
  bool was_subreaper_ = false;
  std::vector<pid_t> before_;  // children from before the guard: not ours
  // The run's cgroup: its directory and files (the watchdog's copies are
  // made before it forks), and cgroup.procs open for JoinCgroup.
  std::string cgroup_dir_, cgroup_procs_, cgroup_kill_, cgroup_freeze_;
  bool cgroup_v2_ = false;
  int procs_fd_ = -1;
  std::string containment_;
};

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_PROCESS_GUARD_H_
