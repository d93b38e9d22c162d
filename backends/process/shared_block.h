// The memory a call shares with its workers: a control block (the chunk
// counter, progress and the stop flag), one slot per worker (the chunk and
// task it runs, how far it got, whether it finished cleanly, why it left),
// one stage per worker (the messages it has not sent yet, so that a worker
// that dies leaves them behind for the caller), and for trivially copyable
// results n result slots. One MAP_SHARED anonymous mapping, kept
// from one call to the next by a BlockCache.
// IWYU pragma: private
#ifndef FANOUT_BACKENDS_PROCESS_SHARED_BLOCK_H_
#define FANOUT_BACKENDS_PROCESS_SHARED_BLOCK_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "core/internal/scheduler.h"

namespace fanout::process_internal {

// WorkerSlot::current when the worker runs no task.
inline constexpr std::size_t kNoTask = internal::TaskWatch::kIdle;
inline constexpr std::size_t kPage = 4096;
// Bytes of messages a worker gathers in its stage before it writes them to
// its pipe (and at the end of every chunk).
inline constexpr std::size_t kStageBytes = std::size_t{1} << 16;

// The call's chunk counter, progress and stop flag: core's scheduler state,
// placed here so every worker claims off the same counter.
using Control = internal::CallControl;

// What the caller reads after a worker died, to know which of its tasks
// finished (their outcomes are in shared result slots, the pipe or the
// stage), which one it was running and which it had not started. The worker
// writes each field with a release store after what it describes.
struct alignas(64) WorkerSlot {
  // The task the worker is running: kNoTask before its first, and between
  // chunks that ran whole (see WorkerSink::RunsWhole). A chunk run task by
  // task leaves its last task here until the next one starts.
  std::atomic<std::size_t> current{kNoTask};
  // Raised once per task started in a chunk run task by task: the caller
  // samples it with `current` to time tasks (task_timeout) without a clock
  // read in the worker (with a task_timeout no chunk runs whole).
  std::atomic<std::uint64_t> started{0};
  // The chunk [chunk_begin, chunk_end) the worker runs; tasks of it before
  // `done` have finished and their outcomes are delivered. Task by task,
  // `done` equal to `current` means that task is running. In a chunk that
  // runs whole (`whole`), results land in shared pages as tasks return and
  // only failures move `done`: the tasks before `current` have finished.
  std::atomic<std::size_t> chunk_begin{kNoTask};
  std::atomic<std::size_t> chunk_end{kNoTask};
  std::atomic<std::size_t> done{kNoTask};
  std::atomic<std::uint32_t> whole{0};
  // The first task of the last chunk whose tasks the worker added to the
  // call's progress (so the caller adds a dead worker's chunk only once).
  std::atomic<std::size_t> counted{kNoTask};
  // Set while the worker takes a chunk off the counter and has not yet
  // recorded which: a death then cannot say which tasks it took.
  std::atomic<std::uint32_t> claiming{0};
  // The stage: its first `staged` bytes are whole messages not yet written
  // to the pipe; they follow the first `stage_base` bytes the worker wrote
  // to its pipe (so the caller can tell what a partial write delivered).
  std::atomic<std::uint32_t> staged{0};
  std::atomic<std::uint64_t> stage_base{0};
  // Set just before a clean _exit(0): an exit(0) from a task leaves it clear.
  std::atomic<std::uint32_t> finished{0};
  // The descriptor of the result pipe when a write to it failed or it was
  // no longer the pipe (a task closed or replaced it); -1 otherwise.
  std::atomic<std::int32_t> lost_pipe_fd{-1};
};

// The task `slot`'s worker is running, or kNoTask between tasks. Task by
// task, a task runs while `done` has not passed it; in a chunk that runs
// whole, `done` moves only for failures, and `current` is the task running.
inline std::size_t TaskRunningIn(const WorkerSlot& slot) {
  const std::size_t current = slot.current.load(std::memory_order_relaxed);
  const std::size_t begin = slot.chunk_begin.load(std::memory_order_relaxed);
  const std::size_t end = slot.chunk_end.load(std::memory_order_relaxed);
  const std::size_t done = slot.done.load(std::memory_order_acquire);
  if (current == kNoTask || begin == kNoTask || current < begin ||
      current >= end) {
    return kNoTask;
  }
  const bool whole = slot.whole.load(std::memory_order_relaxed) != 0;
  return (whole ? current >= done : current == done) ? current : kNoTask;
}

// Layout: Control, then one WorkerSlot per worker, then one stage of
// kStageBytes per worker (from a page boundary), then (from the next page
// on, at the offset within a page of the caller's result array) the result
// slots. Stages that are never used are never touched (no memory).
class SharedBlock {
 public:
  // Room for the control block, `workers` slots and `result_bytes` of
  // result slots (plus a page of slack: see Reset). Throws std::bad_alloc.
  SharedBlock(int workers, std::size_t result_bytes);
  ~SharedBlock();
  SharedBlock(const SharedBlock&) = delete;
  SharedBlock& operator=(const SharedBlock&) = delete;

  bool Fits(int workers, std::size_t result_bytes) const;
  std::size_t bytes() const { return bytes_; }

  // Readies the block for a call. The result slots start at the same offset
  // within a page as `mirror` (the caller's result array), so that a worker
  // can map the shared pages straight over its copy of that array (see
  // AliasResults in worker.cc). Results of an earlier call may remain: every
  // task of the new call overwrites its own slot.
  void Reset(int workers, const void* mirror);

  Control& control() const { return *reinterpret_cast<Control*>(base_); }
  WorkerSlot& slot(int w) const {
    return reinterpret_cast<WorkerSlot*>(base_ + sizeof(Control))[w];
  }
  char* stage(int w) const {
    return base_ + SlotBytes(workers_) + kStageBytes * w;
  }
  char* results() const { return results_; }

  // Whether a BlockCache keeps this block for the next call (it is small
  // enough): its pages then stay allocated and mapped in the caller.
  bool kept() const;
  // Frees the shared pages that lie wholly inside result bytes
  // [offset, offset + len) (MADV_REMOVE); they read as zeros afterwards.
  // For a block that is not kept, once those results are copied out.
  void ReleaseResults(std::size_t offset, std::size_t len) const;

 private:
  static std::size_t SlotBytes(int workers);
  static std::size_t HeaderBytes(int workers);

  int workers_ = 0;
  const std::size_t header_;
  const std::size_t bytes_;
  char* base_ = nullptr;
  char* results_ = nullptr;
};

// Blocks up to this size are kept from one call to the next. The caller's
// resident memory holds a kept block's result pages besides the results
// themselves; a larger block is freed as its results are copied out, so a
// call with many results needs little more memory than the results.
inline constexpr std::size_t kMaxCachedBytes = std::size_t{16} << 20;

// The shared block of the last call, kept for the next one (up to
// kMaxCachedBytes): its pages are then already allocated, zeroed and mapped
// in the caller, which for a million results saves more than the rest of the
// call's overhead together. Concurrent calls get their own.
class BlockCache {
 public:
  // A block that fits, the cached one when it does.
  std::unique_ptr<SharedBlock> Take(int workers, std::size_t result_bytes);
  // Keeps `block` (every worker that used it is reaped) when it is small
  // enough and larger than the one kept.
  void GiveBack(std::unique_ptr<SharedBlock> block);

 private:
  std::mutex mu_;
  std::unique_ptr<SharedBlock> cached_;
};

}  // namespace fanout::process_internal

#endif  // FANOUT_BACKENDS_PROCESS_SHARED_BLOCK_H_
