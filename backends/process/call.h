// One call on the process backend, from the caller's side: forks the
// workers, then supervises them from a poll() on a pidfd per worker, the
// result pipes and a signal self-pipe, so that it notices results, failures,
// deaths, Ctrl+C, cancel and the timeout at once, without sleeping or
// spinning. A worker that dies is replaced and the call goes on: what it
// finished is kept, the rest of its chunk goes to the replacement, and the
// task it was running is run again (RunOptions::retries) or fails. Every
// worker is killed and reaped before Run() returns or throws.
// IWYU pragma: private
#ifndef FANOUT_BACKENDS_PROCESS_CALL_H_
#define FANOUT_BACKENDS_PROCESS_CALL_H_

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/process/shared_block.h"
#include "backends/process/worker.h"
#include "core/executor.h"
#include "core/internal/fd.h"
#include "core/internal/trace.h"

namespace fanout::process_internal {

// The caller's record of one worker.
struct Worker {
  pid_t pid = -1;
  // How it ended, once reaped: its wait status, unless someone else reaped
  // it first (SIGCHLD ignored, a wait(-1) elsewhere in the program).
  bool reaped = false;
  bool status_known = false;
  int status = 0;
  // Its pidfd (-1 when there is none, or once it is reaped), the read end of
  // its pipe (-1 once every writer is gone) and the bytes read from it that
  // are not a whole message yet.
  int pidfd = -1;
  int read_fd = -1;
  std::string inbox;
  // Bytes of its pipe handled as whole messages (to tell, after a death,
  // which of its stage's messages the pipe already delivered).
  std::uint64_t handled = 0;
  // Its peak resident memory in KiB (ru_maxrss), once reaped.
  long peak_kib = 0;
  // task_timeout: the slot's `started` count as last seen, and when it was
  // first seen at that value.
  std::uint64_t seen_started = 0;
  std::chrono::steady_clock::time_point seen_at;
  // The task the caller killed it for (task_timeout), or kNoTask.
  std::size_t timed_out = kNoTask;
  // The task the caller killed it for because it was cancelled
  // (Job::cancelled), or kNoTask.
  std::size_t cancelled = kNoTask;
  // Its trace track (a traced call), in shared memory, and whether its
  // death is on it.
  internal::TraceTrack* trace = nullptr;
  bool death_noted = false;
  // The tasks it was handed at its fork (what a dead worker left of its
  // chunk): if it dies before its slot records them, they are still known.
  std::size_t handed_begin = 0;
  std::size_t handed_end = 0;
  // It handed in everything (its slot says finished) and closed its pipe:
  // it is only leaving. The call goes on without waiting for its exit (a
  // process's teardown takes a while) and reaps it before returning.
  bool leaving = false;
};

class Call {
 public:
  // `shared` was Reset for `workers` workers.
  Call(const Job& job, const RunOptions& options, int workers,
       SharedBlock& shared);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  RunReport Run();

 private:
  // Starting.
  void Start();
  WorkerPlan MakePlan() const;
  // Forks worker k; `replaces` is the pid of the dead worker it replaces
  // (a trace names it), -1 for none.
  void Fork(std::size_t k, WorkerPlan plan, pid_t replaces = -1);
  // True when the call's stop token was raised (a signal on the wake pipe,
  // the deadline, a cancel).
  bool StopArrived();
  // Whether worker k (k >= 1) is worth forking: false once every task is
  // claimed by the workers already running.
  bool NeedAnotherWorker(std::size_t k) const;

  // Supervising: the poll loop, one round at a time.
  void Supervise();
  // At the top of each round: true when the call's stop token was raised
  // (a signal, the deadline, a cancel); every worker is then stopped.
  bool StopRequested();
  int PollTimeoutMs() const;
  // Polls the wake pipe and every live worker's pidfd and pipe; the result
  // of poll().
  int Poll();
  // Reads the pipes poll() found ready and notes which workers exited; false
  // when the call must stop (a failure under kFailFast).
  bool DrainReady(int ready);
  // Reaps the workers that exited; throws for one that died. False as above.
  bool ReapExited(std::size_t* running);
  bool FinishedCleanly(int k) const;
  // Worker k died without finishing cleanly: keeps what it delivered,
  // blames the task it was running (or was killed for), and forks a
  // replacement for the rest of its chunk. False when the call must stop
  // (a failure under kFailFast); throws for a death it cannot recover from.
  bool Replace(int k, std::size_t* running);
  // The whole messages a dead worker left in its stage that its pipe did
  // not deliver. False as Drain.
  bool ReadStage(int k);
  // Kills the workers whose task has run past task_timeout.
  void KillOverdue();
  // Kills the workers running a task that was cancelled (Job::cancelled).
  void KillCancelled();

  // Reads what is in the worker's pipe; false when the caller must stop
  // (a failure under kFailFast).
  bool Drain(int k);
  bool HandleMessages(int k);
  // Adds worker k's failure of task `index` to the report.
  void AddFailure(int k, std::size_t index, std::string type,
                  std::string message);
  void KillAll();
  // A worker of the call is done for good (it finished, or will not be
  // replaced): one place fewer in use; tells RunOptions::place_freed.
  void WorkerGone(std::size_t* running);
  bool Reap(Worker& w, bool block);
  // Waits for the workers that were only leaving (Worker::leaving).
  void ReapLeaving();
  void MirrorProgress();

  // The caller's result array (call_results.cc).
  // Leaves the caller's whole result pages out of forks (see dontfork_*).
  void KeepResultsOutOfFork();
  void RestoreFork();
  // Copies shared result slots into the caller's result array.
  void CopyResults(bool kept_out_of_fork);

  // Ends the call for worker k's death; `task` is the task to blame, or
  // kNoTask for a death between tasks.
  [[noreturn]] void ThrowDeath(int k, std::size_t task);
  // How many processes the kernel's OOM killer killed since the call
  // started (-1: unknown), for a death by SIGKILL.
  long long OomKillsSinceStart(int k) const;
  // The TaskError of worker k's death while running `task`, its `attempts`
  // th death.
  TaskError DeathError(int k, std::size_t task, int attempts) const;
  // Records the tasks running, stops every worker and says why in the
  // report; Executor::run throws the error from it.
  void StopFromOutside();
  std::string WorkerName(int k) const {
    return "pid " + std::to_string(workers_[k].pid);
  }
  // A traced call's event on worker k's row (k < 0: the call's row).
  void Note(int k, std::string name, const char* cat, std::uint64_t t0,
            std::uint64_t t1, std::string args = {}) const;

  const Job& job_;
  const RunOptions& options_;
  StopToken& stop_;
  SharedBlock& shared_;
  std::vector<Worker> workers_;
  internal::Pipe wake_;
  bool contiguous_ = false;
  // True when every worker has a pidfd; otherwise exits are found by
  // polling waitpid every tick.
  bool pidfds_ = true;
  // The caller's whole result pages, kept out of the workers' copies of
  // memory (MADV_DONTFORK) while the call runs: forks copy fewer page-table
  // entries and the caller's pages stay writable (no copy-on-write faults
  // when the results are copied in). Workers map shared pages there.
  std::uintptr_t dontfork_begin_ = 0;
  std::size_t dontfork_bytes_ = 0;
  std::size_t progress_seen_ = 0;
  // The poll set of the current round: the wake pipe first, then each
  // worker's pidfd and pipe; owner_ says whose (-1 for the wake pipe).
  std::vector<pollfd> fds_;
  std::vector<int> owner_;
  std::vector<bool> exited_;  // pidfd readable (every worker without pidfds)
  // How many workers died running each task (only tasks that killed one).
  // A task is run again while its deaths are at most RunOptions::retries,
  // so no task kills more than retries + 1 workers: that bounds the
  // replacements a call forks, even when every task crashes.
  std::unordered_map<std::size_t, int> deaths_;
  // Deaths between tasks (a kill from outside), for which no task is to
  // blame: at most kMaxUnblamedDeaths are replaced, then the call fails.
  int unblamed_deaths_ = 0;
  // The kernel's OOM kill count when the call started (-1: unknown): a
  // SIGKILL is said to be possibly out of memory only if it rose.
  long long oom_kills_at_start_ = -1;
  RunReport report_;
};

}  // namespace fanout::process_internal

#endif  // FANOUT_BACKENDS_PROCESS_CALL_H_
