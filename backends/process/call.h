// One call on the process backend, from the caller's side: forks the
// workers, then supervises them from a poll() on a pidfd per worker, the
// result pipes and a signal self-pipe, so that it notices results, failures,
// deaths, Ctrl+C, cancel and the timeout at once, without sleeping or
// spinning. Every worker is killed and reaped before Run() returns or throws.
// IWYU pragma: private
#ifndef FANOUT_BACKENDS_PROCESS_CALL_H_
#define FANOUT_BACKENDS_PROCESS_CALL_H_

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/process/shared_block.h"
#include "backends/process/worker.h"
#include "core/executor.h"
#include "core/internal/fd.h"

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
  // Leaves the caller's whole result pages out of forks (see dontfork_*).
  void KeepResultsOutOfFork();
  WorkerPlan MakePlan() const;
  void Fork(std::size_t k, WorkerPlan plan);
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

  // Reads what is in the worker's pipe; false when the caller must stop
  // (a failure under kFailFast).
  bool Drain(int k);
  bool HandleMessages(int k);
  // Adds worker k's failure of task `index` to the report.
  void AddFailure(int k, std::size_t index, std::string type,
                  std::string message);
  void KillAll();
  bool Reap(Worker& w, bool block);
  void MirrorProgress();
  void RestoreFork();
  // Copies shared result slots into the caller's result array.
  void CopyResults(bool kept_out_of_fork);

  [[noreturn]] void ThrowDeath(int k);
  // Records the tasks running, stops every worker and says why in the
  // report; Executor::run throws the error from it.
  void StopFromOutside();
  std::string WorkerName(int k) const {
    return "pid " + std::to_string(workers_[k].pid);
  }

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
  RunReport report_;
};

}  // namespace fanout::process_internal

#endif  // FANOUT_BACKENDS_PROCESS_CALL_H_
