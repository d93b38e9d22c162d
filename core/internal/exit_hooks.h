// fanout/core/internal/exit_hooks.h — what a process runs when it ends its own
// work normally.
//
// IWYU pragma: private
//
// Queue uses one to tell consumers that a producer finished rather than
// crashed. The hooks run at exit() and in fanout's forked workers and
// children before they _exit().
#ifndef FANOUT_CORE_INTERNAL_EXIT_HOOKS_H_
#define FANOUT_CORE_INTERNAL_EXIT_HOOKS_H_

namespace fanout::internal {

// Adds `hook` once (adding it again does nothing). Lock-free; at most 16.
// Throws fanout::Error past that.
void AddExitHook(void (*hook)());
// Runs every hook added, in the order they were added.
void RunExitHooks();

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_EXIT_HOOKS_H_
