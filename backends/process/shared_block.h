// The memory a call shares with its workers: a control block (the chunk
// counter, progress and the stop flag), one slot per worker (the task it
// runs, whether it finished cleanly, why it left), and for trivially
// copyable results n result slots. One MAP_SHARED anonymous mapping, kept
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

// The call's chunk counter, progress and stop flag: core's scheduler state,
// placed here so every worker claims off the same counter.
using Control = internal::CallControl;

struct alignas(64) WorkerSlot {
  // The task the worker is running: kNoTask before its first, and between
  // chunks that ran whole (see WorkerSink::RunsWhole). A chunk run task by
  // task leaves its last task here until the next one starts.
  std::atomic<std::size_t> current{kNoTask};
  // Set just before a clean _exit(0): an exit(0) from a task leaves it clear.
  std::atomic<std::uint32_t> finished{0};
  // The descriptor of the result pipe when a write to it failed or it was
  // no longer the pipe (a task closed or replaced it); -1 otherwise.
  std::atomic<std::int32_t> lost_pipe_fd{-1};
};

// Layout: Control, then one WorkerSlot per worker, then (from the next page
// on, at the offset within a page of the caller's result array) the result
// slots.
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
  char* results() const { return results_; }

  // Whether a BlockCache keeps this block for the next call (it is small
  // enough): its pages then stay allocated and mapped in the caller.
  bool kept() const;
  // Frees the shared pages that lie wholly inside result bytes
  // [offset, offset + len) (MADV_REMOVE); they read as zeros afterwards.
  // For a block that is not kept, once those results are copied out.
  void ReleaseResults(std::size_t offset, std::size_t len) const;

 private:
  static std::size_t HeaderBytes(int workers);

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
