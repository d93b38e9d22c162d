// The worker: what a forked child of a call runs, from the fork to its
// _exit(). It takes chunks of tasks off the shared counter, stores trivially
// copyable results in shared pages (mapped over its copy of the caller's
// result array where it can) and sends the other results and failures to the
// caller through its pipe.
// IWYU pragma: private
#ifndef FANOUT_BACKENDS_PROCESS_WORKER_H_
#define FANOUT_BACKENDS_PROCESS_WORKER_H_

#include <cstddef>

#include "backends/process/shared_block.h"
#include "core/executor.h"

namespace fanout::process_internal {

// How a worker leaves when it can no longer send on its result pipe: a write
// failed, or the descriptor is no longer the pipe (a task closed or replaced
// it). Its WorkerSlot::lost_pipe_fd names the descriptor.
inline constexpr int kLostPipeExitStatus = 124;

// How a worker leaves after a task ran into its memory limit (once that
// failure is sent and the task marked done): the caller replaces it without
// blaming a task.
inline constexpr int kRetireExitStatus = 123;

// What a worker needs to know, all of it set up by the caller before fork.
struct WorkerPlan {
  const Job* job;
  const RunOptions* options;
  Control* control;
  WorkerSlot* slot;
  char* results;    // shared result slots, or null
  bool contiguous;  // the caller's result slots form one array
  bool dontfork;    // its whole pages were not copied into the worker
  int write_fd;
  char* stage = nullptr;  // this worker's stage (kStageBytes)
  // Tasks [handed_begin, handed_end) to run before claiming chunks: what a
  // worker that died had not finished of its chunk.
  std::size_t handed_begin = 0;
  std::size_t handed_end = 0;
  // Where the worker records its spans in a traced call (shared memory the
  // caller reads), or null; the task handed to it to run again, and that
  // run's attempt (the trace says which attempt each span is).
  internal::TraceTrack* trace = nullptr;
  std::size_t retry_task = static_cast<std::size_t>(-1);
  int retry_attempt = 1;
};

// Runs the worker's share of the call in the forked child and leaves with
// _exit(0) (or kLostPipeExitStatus). Never returns.
[[noreturn]] void WorkerMain(const WorkerPlan& plan);

}  // namespace fanout::process_internal

#endif  // FANOUT_BACKENDS_PROCESS_WORKER_H_
