// fanout/core/internal/rank_task.h — whether the calling thread runs a task
// on one of several MPI ranks, where no memory is shared between ranks.
//
// IWYU pragma: private, include "core/shared.h"
//
// SharedValue, SharedArray and Queue are shared between threads and forked
// processes of one machine. On the mpi backend with several ranks each rank
// is its own process, possibly on another host: a SharedValue changed in a
// task would change that rank's copy only, and the caller would silently see
// a different answer than on any other backend. So they refuse to be used
// inside such a task, with an error that says why and what to do instead.
#ifndef FANOUT_CORE_INTERNAL_RANK_TASK_H_
#define FANOUT_CORE_INTERNAL_RANK_TASK_H_

namespace fanout::internal {

// True while the calling thread runs tasks for the mpi backend in a world of
// more than one rank.
bool in_rank_task();

// Marks the calling thread as running such tasks for its lifetime (set by the
// mpi backend's compute threads).
class RankTaskScope {
 public:
  RankTaskScope();
  ~RankTaskScope();
  RankTaskScope(const RankTaskScope&) = delete;
  RankTaskScope& operator=(const RankTaskScope&) = delete;

 private:
  bool previous_;
};

// True while the calling thread runs a task of spawn("sequential"), which
// runs inside spawn() itself: nothing spawned later runs meanwhile, so a
// Queue wait there would never end.
bool in_sequential_spawn();
class SequentialSpawnScope {
 public:
  SequentialSpawnScope();
  ~SequentialSpawnScope();
  SequentialSpawnScope(const SequentialSpawnScope&) = delete;
  SequentialSpawnScope& operator=(const SequentialSpawnScope&) = delete;

 private:
  bool previous_;
};

// Throws UsageError: `what` ("SharedValue", "Queue") was used inside a task
// on several MPI ranks.
[[noreturn]] void ThrowSharedAcrossRanks(const char* what);

// Throws that error when the calling thread runs a task on several ranks.
inline void CheckNotAcrossRanks(const char* what) {
  if (in_rank_task()) [[unlikely]] {
    ThrowSharedAcrossRanks(what);
  }
}

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_RANK_TASK_H_
