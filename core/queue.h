// fanout/core/queue.h — a bounded multi-producer multi-consumer queue between
// threads and between forked processes: Python's multiprocessing.Queue.
//
//   fanout::Queue<int> q(64);                  // made before the workers start
//   fanout::SharedValue<int> producers_left(2);
//   fanout::Parallel({.jobs = 4, .backend = "process", .batch_size = 1})
//       .for_each(4, [&](std::size_t i) {
//         if (i < 2) {                           // two producers
//           for (int k = 0; k < 10; ++k) q.push(int(i) * 100 + k);
//           if (producers_left.fetch_sub(1) == 1) q.close();  // the last one
//         } else {                               // two consumers
//           while (std::optional<int> item = q.pop()) use(*item);
//         }
//       });
//
// Operations:
//   push(x)            blocks while the queue is full; throws
//                      QueueClosedError once it is closed
//   push(x, timeout)   ... throws fanout::TimeoutError when the time passes
//   try_push(x)        false when full, at once
//   pop()              blocks while empty; std::nullopt once the queue is
//                      closed and every item has been taken
//   pop(timeout)       ... throws fanout::TimeoutError when the time passes
//   try_pop()          std::nullopt when empty (or closed and drained), at once
//   close()            no more pushes; blocked consumers and producers wake
//
// Items: a trivially copyable T is copied byte for byte into a fixed slot.
// Any other T is encoded with core/codec.h (cereal) into a slot of
// `max_item_bytes` (a constructor argument, default 1024); push throws
// fanout::Error for an item whose encoding is larger.
//
// Memory: one anonymous MAP_SHARED mapping made by the constructor, before
// workers start, so threads and fork()ed children share it; nothing appears in
// /dev/shm, and the memory goes away with the last process using it.
//
// A producer that dies does not leave consumers blocked forever. Waiting is a
// futex on a word of the shared mapping, in slices of at most 100 ms, and the
// state is guarded by a robust process-shared mutex:
//   - a process that dies holding the queue's lock (mid-push or mid-pop) is
//     found by the next process that takes it (EOWNERDEAD): a blocked consumer
//     or producer takes it within a slice. Every push and pop commits with a
//     single 64-bit store after copying its item, so the queue is still whole;
//     the dead process's unfinished push is simply absent.
//   - every process that pushes is recorded (pid and start time). A consumer
//     that waits a whole slice on an empty queue checks them: one that has
//     ended (gone, or a zombie) without ending normally was killed or crashed.
//     Normal ends are exit(), the end of a fanout::spawn / fanout::Process
//     child, and the destruction of the Queue in that process.
// Either way the queue becomes abandoned: consumers take the items still in
// it, then pop() throws QueueClosedError naming the dead pid (push() throws
// too), so a crash is an error, not a silent end of the stream. At most 64
// pushing processes are watched. Consumers are not watched: a consumer killed
// outside the lock can leave producers waiting on a full queue; producers that
// must not wait forever use push(x, timeout).
// A worker of the process backend that pushed and then ends normally (its
// call is over) runs the exit hooks before its _exit(), so it counts as a
// normal end, not a crash; a worker that dies (a signal, a task's _exit())
// abandons the queue like any other process. Consumers learn that producing
// is done only from close(): the last producer closes the queue, or the
// caller after the call, as the example above does.
// On the mpi backend with several ranks a Queue used inside a task throws
// fanout::UsageError (ranks share no memory); inside spawn("sequential") a
// pop() on an empty queue or a push() on a full one throws UsageError too,
// since nothing spawned later can run meanwhile to end the wait.
#ifndef FANOUT_CORE_QUEUE_H_
#define FANOUT_CORE_QUEUE_H_

#include <sys/types.h>

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "core/codec.h"
#include "core/errors.h"
#include "core/shared.h"

namespace fanout {

// A push to a closed queue, or a pop or push on an abandoned one.
class QueueClosedError : public Error {
 public:
  QueueClosedError(const std::string& what, pid_t dead_pid)
      : Error(what), dead_pid_(dead_pid) {}
  // The pid whose death abandoned the queue; 0 when close() closed it.
  pid_t dead_pid() const { return dead_pid_; }

 private:
  pid_t dead_pid_;
};

class QueueTestPeer;

namespace internal {

struct QueueHeader;

// The untyped queue of fixed-size byte slots behind Queue<T>.
class QueueCore {
 public:
  enum class Mode { kBlock, kTry, kDeadline };
  enum class Result { kDone, kClosed, kNotNow };

  QueueCore(std::size_t capacity, std::size_t slot_bytes);
  ~QueueCore();
  QueueCore(QueueCore&& other) noexcept;
  QueueCore& operator=(QueueCore&& other) noexcept;
  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  // Copies n <= slot_bytes bytes in. kDone, or kNotNow when full (kTry) or
  // past the deadline (kDeadline). Throws QueueClosedError.
  Result Push(const void* data, std::size_t n, Mode mode,
              std::chrono::steady_clock::time_point deadline);
  // Copies the oldest item into out (slot_bytes of room) and its size into
  // *n. kDone, kClosed (closed and drained), or kNotNow (as Push). Throws
  // QueueClosedError when the queue was abandoned and is drained.
  Result Pop(void* out, std::size_t* n, Mode mode,
             std::chrono::steady_clock::time_point deadline);
  void Close();
  bool Closed() const;
  std::size_t Size() const;
  std::size_t capacity() const;
  std::size_t slot_bytes() const;

 private:
  friend class ::fanout::QueueTestPeer;

  void Lock() const;
  void Unlock() const;
  void RegisterPusher();
  void CheckPushers();
  // Called with the lock held, once an item is copied in or out: commits it
  // with one store to `end` (tail or head), bumps the futex `word` the other
  // side waits on, unlocks, and wakes one of the `waiting` there, if any.
  void CommitAndWake(std::uint64_t& end, std::uint32_t& word,
                     std::uint32_t waiting);
  // Called with the lock held: waits without it until `word` (a futex word
  // of the header) changes, counted in `waiting`, for at most a slice or
  // until the deadline. False, with the lock released, when it must not wait
  // (kTry, or the deadline passed); else true with the lock held again and
  // *whole_slice set when the wait lasted its whole length.
  bool WaitForChange(std::uint32_t& word, std::uint32_t& waiting, Mode mode,
                     std::chrono::steady_clock::time_point deadline,
                     bool* whole_slice);
  void Abandon(pid_t pid, const char* how) const;
  [[noreturn]] void ThrowClosed() const;

  SharedMapping map_;
  QueueHeader* h_ = nullptr;
  std::atomic<pid_t> registered_pid_{0};  // this process is in the pusher table
};

}  // namespace internal

// See the top of this file.
template <class T>
class Queue {
 public:
  static constexpr bool kTrivial = codec::kIsTrivial<T>;

  // A queue holding at most `capacity` items (>= 1). max_item_bytes bounds
  // the encoding of a non-trivially-copyable item; it is unused otherwise.
  explicit Queue(std::size_t capacity, std::size_t max_item_bytes = 1024)
      : core_(capacity, kTrivial ? sizeof(T) : max_item_bytes) {}

  void push(const T& item) { Push(item, Mode::kBlock, {}); }
  template <class Rep, class Period>
  void push(const T& item, std::chrono::duration<Rep, Period> timeout) {
    if (Push(item, Mode::kDeadline, Deadline(timeout)) != Result::kDone) {
      throw TimeoutError("queue: push timed out: the queue stayed full");
    }
  }
  bool try_push(const T& item) {
    return Push(item, Mode::kTry, {}) == Result::kDone;
  }

  std::optional<T> pop() { return Pop(Mode::kBlock, {}).value; }
  template <class Rep, class Period>
  std::optional<T> pop(std::chrono::duration<Rep, Period> timeout) {
    Popped p = Pop(Mode::kDeadline, Deadline(timeout));
    if (p.result == Result::kNotNow) {
      throw TimeoutError("queue: pop timed out: the queue stayed empty");
    }
    return std::move(p.value);
  }
  std::optional<T> try_pop() { return Pop(Mode::kTry, {}).value; }

  // No more pushes; consumers take what is left, then pop() gives nullopt.
  void close() { core_.Close(); }
  bool closed() const { return core_.Closed(); }
  // Items in the queue now.
  std::size_t size() const { return core_.Size(); }
  std::size_t capacity() const { return core_.capacity(); }

 private:
  friend class QueueTestPeer;
  using Mode = internal::QueueCore::Mode;
  using Result = internal::QueueCore::Result;
  struct Popped {
    Result result;
    std::optional<T> value;
  };

  template <class Rep, class Period>
  static std::chrono::steady_clock::time_point Deadline(
      std::chrono::duration<Rep, Period> timeout) {
    return std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(
               timeout);
  }

  Result Push(const T& item, Mode mode,
              std::chrono::steady_clock::time_point deadline) {
    if constexpr (kTrivial) {
      return core_.Push(&item, sizeof(T), mode, deadline);
    } else {
      std::string bytes;
      codec::encode(item, bytes);
      if (bytes.size() > core_.slot_bytes()) {
        throw Error("queue: an item of " + std::to_string(bytes.size()) +
                    " encoded bytes exceeds this queue's max_item_bytes (" +
                    std::to_string(core_.slot_bytes()) + ")");
      }
      return core_.Push(bytes.data(), bytes.size(), mode, deadline);
    }
  }

  Popped Pop(Mode mode, std::chrono::steady_clock::time_point deadline) {
    std::size_t n = 0;
    if constexpr (kTrivial) {
      std::array<unsigned char, sizeof(T)> buf;
      const Result r = core_.Pop(buf.data(), &n, mode, deadline);
      if (r != Result::kDone) return {r, std::nullopt};
      return {r, std::bit_cast<T>(buf)};
    } else {
      std::string bytes(core_.slot_bytes(), '\0');
      const Result r = core_.Pop(bytes.data(), &n, mode, deadline);
      if (r != Result::kDone) return {r, std::nullopt};
      bytes.resize(n);
      return {r, codec::decode<T>(bytes)};
    }
  }

  internal::QueueCore core_;
};

}  // namespace fanout

#endif  // FANOUT_CORE_QUEUE_H_
