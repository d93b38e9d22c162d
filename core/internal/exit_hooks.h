// fanout/core/internal/exit_hooks.h — what a process runs when it ends its own
// work normally.
//
// IWYU pragma: private
//
// Queue uses one to tell consumers that a producer finished rather than
// crashed. The hooks run at exit() and in fanout's forked workers and
// children before they _exit(). InProcessCallScope turns an exit() during
// a call on threads into a clear error.
#ifndef FANOUT_CORE_INTERNAL_EXIT_HOOKS_H_
#define FANOUT_CORE_INTERNAL_EXIT_HOOKS_H_

namespace fanout::internal {

// Adds `hook` once (adding it again does nothing). Lock-free; at most 16.
// Throws fanout::Error past that.
void AddExitHook(void (*hook)());
// Runs every hook added, in the order they were added.
void RunExitHooks();

// exit() while a call runs on threads of this process (thread, tbb, mpi
// without mpirun) ends the program under the call's feet: its results are
// lost, and static destructors run while workers still use what they free
// (libtbb crashes in its own). A task that calls exit() used to end the
// program with that status and no word, or with a segfault.
//
// Such a backend holds one of these for the time of each call (mpi under
// mpirun too: a rank's exit() would finalize MPI under its other threads,
// and the job ended with Open MPI's "MPI_ERR_COMM: invalid communicator"
// and no word of the task). An exit() from any thread meanwhile prints one
// line on stderr,
//
//   fanout: task 17 called exit(0) while a call was running on backend
//   'mpi' (rank 1); its results are lost
//
// ("a task called" when the call keeps no record of which task runs, or
// its task numbers are not the caller's, as in a checkpointed call's
// windows; "the program called" when the thread calling exit() is not
// running a task) and ends the process at once with _exit(): the status
// exit() was given, or kExitDuringCallStatus (70, EX_SOFTWARE) for 0, so
// that lost results never look like success. No other atexit handler or
// static destructor runs (under mpirun: no MPI_Finalize; mpirun ends the
// job with that status). quick_exit() and _exit() are not seen.
inline constexpr int kExitDuringCallStatus = 70;

class InProcessCallScope {
 public:
  // `backend` must outlive the process (a string literal). `own_numbers`:
  // the job's indices are its caller's task numbers (Job::indices_are_tasks
  // with no Job::task_ids), so the exiting task can be named. `rank`:
  // the mpi rank, or -1.
  explicit InProcessCallScope(const char* backend, bool own_numbers = true,
                              int rank = -1);
  ~InProcessCallScope();
  InProcessCallScope(const InProcessCallScope&) = delete;
  InProcessCallScope& operator=(const InProcessCallScope&) = delete;

 private:
  const bool own_numbers_;
};

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_EXIT_HOOKS_H_
