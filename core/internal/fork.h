// fanout/core/internal/fork.h — forking a worker that cannot outlive its
// caller and starts clean: the one way fanout forks.
//
//   const int keep_out[] = {my_pipe.read, wake.read, wake.write};
//   const pid_t pid = fanout::internal::ForkChild({.close_fds = keep_out});
//   if (pid == 0) RunWorker();  // never returns: ends with _exit()
//   if (pid < 0) Throw(errno);
//
// The child:
//   - dies by SIGKILL when the thread that forked it ends
//     (PR_SET_PDEATHSIG), so killing the caller, even by SIGKILL, leaves no
//     orphan. The caller must therefore keep the forking thread alive until
//     it has waited for the child.
//   - leaves at once with kOrphanExitStatus when its parent died before the
//     death signal was armed (the race the check closes).
//   - starts with every signal disposition at its default and an empty
//     signal mask: the caller's handlers (say, a Ctrl+C handler that only
//     sets a flag) and ignored signals do not leak into it.
//   - holds none of `close_fds` (the caller's ends of pipes, other workers'
//     descriptors): a pipe's reader sees end of file when its writers are
//     gone.
// Everything the child does before ForkChild returns is async-signal-safe,
// so it may go on to exec, even in a program with threads.
// IWYU pragma: private, include "core/internal/fork.h"
#ifndef FANOUT_CORE_INTERNAL_FORK_H_
#define FANOUT_CORE_INTERNAL_FORK_H_

#include <sys/types.h>

#include <span>

namespace fanout::internal {

// The exit status of a child whose parent was gone when it started.
inline constexpr int kOrphanExitStatus = 125;

struct ForkOptions {
  // Descriptors the child closes first thing.
  std::span<const int> close_fds;
  // The child leads a new process group (the parent sets it too, so that a
  // kill of the group right after the fork finds it).
  bool new_process_group = false;
  // Flush C stdio before forking, so that nothing the caller buffered is
  // printed twice; a child that execs at once does not need it.
  bool flush_stdio = true;
};

// fork() with the child set up as above. Returns the child's pid in the
// parent (or -1 with errno set) and 0 in the child.
pid_t ForkChild(const ForkOptions& options = {});

// Every signal disposition back to its default and an empty signal mask.
// Async-signal-safe.
void ResetSignals();

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_FORK_H_
