// fanout/core/internal/thread_start.h — starting threads, and saying why a
// thread could not start: which one of how many, and the limit that refused
// it, so that "Resource temporarily unavailable" is never the whole story.
//
//   try {
//     helpers.emplace_back(Loop);
//   } catch (const std::system_error& e) {
//     throw fanout::Error(fanout::internal::ThreadStartError(
//         "thread backend", "worker thread", k, n, e.code().value()));
//   }
//   // "thread backend: cannot start worker thread 4 of 7: Resource
//   // temporarily unavailable (RLIMIT_NPROC is 4 for this user, counting
//   // all of its processes and threads; use fewer jobs)"
//
// IWYU pragma: private, include "core/internal/thread_start.h"
#ifndef FANOUT_CORE_INTERNAL_THREAD_START_H_
#define FANOUT_CORE_INTERNAL_THREAD_START_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace fanout::internal {

// "<who>: cannot start <what> <index> of <count>: <strerror(err)> (<the
// limit that most likely refused it>; use fewer jobs)". `index` counts from 1.
std::string ThreadStartError(std::string_view who, std::string_view what,
                             int index, int count, int err);

// The limit behind a failed thread start with errno `err`: RLIMIT_NPROC
// when it applies to this user, else the kernel's threads-max and the
// cgroup's pids.max; for ENOMEM the memory for the thread's stack.
std::string ThreadLimitHint(int err);

// What ProbeThreads found.
struct ThreadProbe {
  int started = 0;       // threads that started before one could not
  int error = 0;         // errno of the one that could not, 0 when all started
  bool stopped = false;  // `stop` said to stop before all had started
};

// Starts `count` threads with `stack_size` bytes of stack (0: the default)
// that all exist at once, then ends and joins them and waits until the
// kernel no longer counts them against this user's limits. For engines
// (TBB) that abort the process when they cannot start a worker: a probe
// before them turns that abort into an error. Another process of the user
// may still take the room between the probe and the engine's own start.
// `stop` (when given) is asked every few threads; once it returns true no
// more start and the probe ends with `stopped` set.
ThreadProbe ProbeThreads(int count, std::size_t stack_size,
                         const std::function<bool()>& stop = nullptr);

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_THREAD_START_H_
