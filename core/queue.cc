#include "core/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/executor.h"
#include "core/internal/futex.h"
#include "core/internal/rank_task.h"

namespace fanout::internal {

namespace {

constexpr int kMaxPushers = 64;
constexpr std::chrono::milliseconds kSlice{100};

enum State : std::uint32_t { kOpen = 0, kClosedState = 1, kAbandoned = 2 };
enum PusherState : std::uint32_t { kFree = 0, kActive = 1, kFinished = 2 };

struct Pusher {
  std::uint32_t pid;
  std::uint32_t state;  // PusherState; written without the lock at exit
  std::uint64_t start_time;
};

}  // namespace

// The shared control block; slots follow it. Fields are guarded by `mutex`
// except the futex words (also read by the kernel; waits and wakes are the
// FutexScope::kShared ones, as waiters and wakers may be different
// processes) and Pusher::state.
struct QueueHeader {
  RobustMutex mutex;
  std::uint64_t capacity;
  std::uint64_t slot_bytes;
  std::uint64_t stride;  // bytes per slot: a 4-byte length, then the item
  std::uint64_t head;    // items popped so far; one store commits a pop
  std::uint64_t tail;    // items pushed so far; one store commits a push
  std::uint32_t items;   // futex word: bumped when an item arrives or on close
  std::uint32_t space;   // futex word: bumped when a slot frees or on close
  std::uint32_t consumers_waiting;
  std::uint32_t producers_waiting;
  std::uint32_t state;  // State
  std::int32_t dead_pid;
  std::int32_t holder_pid;  // who holds the mutex (for EOWNERDEAD reports)
  char dead_how[80];
  Pusher pushers[kMaxPushers];

  char* slot(std::uint64_t i) {
    return reinterpret_cast<char*>(this) + kSlotsOffset +
           (i % capacity) * stride;
  }
  static const std::size_t kSlotsOffset;
};

const std::size_t QueueHeader::kSlotsOffset =
    (sizeof(QueueHeader) + 63) / 64 * 64;

namespace {

std::uint32_t Load(std::uint32_t& w) {
  return std::atomic_ref<std::uint32_t>(w).load(std::memory_order_acquire);
}

void Bump(std::uint32_t& w) {
  std::atomic_ref<std::uint32_t>(w).fetch_add(1, std::memory_order_release);
}

void Commit(std::uint64_t& w, std::uint64_t v) {
  std::atomic_ref<std::uint64_t>(w).store(v, std::memory_order_release);
}

// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), and the
// state letter; false when the process does not exist.
bool ReadStat(pid_t pid, char* state, std::uint64_t* start_time) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');  // the name may hold spaces and ')'
  if (p == nullptr || p[1] == '\0') return false;
  p += 2;
  *state = *p;
  // Fields from the state (field 3) on; the start time is field 22.
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return false;
    ++p;
  }
  *start_time = std::strtoull(p, nullptr, 10);
  return true;
}

bool Alive(pid_t pid, std::uint64_t start_time) {
  char state = 0;
  std::uint64_t now_start = 0;
  if (!ReadStat(pid, &state, &now_start)) return false;
  if (state == 'Z' || state == 'X' || state == 'x') return false;
  return now_start == start_time;  // otherwise the pid was reused
}

// The queues this process has pushed to, so that a normal end of the process
// can mark it finished in each (see the exit hook below).
std::atomic<QueueHeader*> g_pushed_to[kMaxPushers];

void MarkFinished(QueueHeader* h, pid_t pid) {
  for (Pusher& p : h->pushers) {
    std::atomic_ref<std::uint32_t> pid_ref(p.pid);
    if (pid_ref.load(std::memory_order_acquire) ==
        static_cast<std::uint32_t>(pid)) {
      std::atomic_ref<std::uint32_t>(p.state).store(kFinished,
                                                    std::memory_order_release);
    }
  }
}

void MarkThisProcessFinished() {
  const pid_t me = getpid();
  for (auto& slot : g_pushed_to) {
    if (QueueHeader* h = slot.load(std::memory_order_acquire))
      MarkFinished(h, me);
  }
}

void Remember(QueueHeader* h) {
  for (auto& slot : g_pushed_to) {
    if (slot.load(std::memory_order_acquire) == h) return;
  }
  for (auto& slot : g_pushed_to) {
    QueueHeader* expected = nullptr;
    if (slot.compare_exchange_strong(expected, h)) return;
  }
}

void Forget(QueueHeader* h) {
  for (auto& slot : g_pushed_to) {
    QueueHeader* expected = h;
    slot.compare_exchange_strong(expected, nullptr);
  }
}

}  // namespace

QueueCore::QueueCore(std::size_t capacity, std::size_t slot_bytes) {
  if (capacity == 0) throw UsageError("queue: capacity must be at least 1");
  if (slot_bytes == 0)
    throw UsageError("queue: max_item_bytes must be at least 1");
  const std::size_t stride = (sizeof(std::uint32_t) + slot_bytes + 7) / 8 * 8;
  map_ = SharedMapping(QueueHeader::kSlotsOffset + capacity * stride);
  h_ = static_cast<QueueHeader*>(map_.data());
  h_->mutex.Init();
  h_->capacity = capacity;
  h_->slot_bytes = slot_bytes;
  h_->stride = stride;
}

QueueCore::~QueueCore() {
  if (h_ == nullptr) return;
  if (registered_pid_.load() == getpid()) MarkFinished(h_, getpid());
  Forget(h_);
}

QueueCore::QueueCore(QueueCore&& other) noexcept
    : map_(std::move(other.map_)),
      h_(std::exchange(other.h_, nullptr)),
      registered_pid_(other.registered_pid_.exchange(0)) {}

QueueCore& QueueCore::operator=(QueueCore&& other) noexcept {
  if (this != &other) {
    if (h_ != nullptr) {
      if (registered_pid_.load() == getpid()) MarkFinished(h_, getpid());
      Forget(h_);
    }
    map_ = std::move(other.map_);
    h_ = std::exchange(other.h_, nullptr);
    registered_pid_ = other.registered_pid_.exchange(0);
  }
  return *this;
}

void QueueCore::Lock() const {
  if (h_->mutex.Lock()) {
    Abandon(h_->holder_pid, "died holding the queue's lock");
  }
  h_->holder_pid = getpid();
}

void QueueCore::Unlock() const { h_->mutex.Unlock(); }

void QueueCore::Abandon(pid_t pid, const char* how) const {
  if (h_->state != kOpen) return;
  h_->state = kAbandoned;
  h_->dead_pid = pid;
  std::snprintf(h_->dead_how, sizeof(h_->dead_how), "%s", how);
  Bump(h_->items);
  Bump(h_->space);
  FutexWake(&h_->items, INT_MAX, FutexScope::kShared);
  FutexWake(&h_->space, INT_MAX, FutexScope::kShared);
}

void QueueCore::ThrowClosed() const {
  if (h_->state == kAbandoned) {
    const pid_t pid = h_->dead_pid;
    const std::string how = h_->dead_how;
    Unlock();
    throw QueueClosedError(
        "queue abandoned: process " + std::to_string(pid) + " " + how, pid);
  }
  Unlock();
  throw QueueClosedError("queue: push to a closed queue", 0);
}

// Called with the lock held.
void QueueCore::RegisterPusher() {
  const pid_t me = getpid();
  if (registered_pid_.load(std::memory_order_relaxed) == me) return;
  Pusher* free_slot = nullptr;
  for (Pusher& p : h_->pushers) {
    const std::uint32_t state =
        std::atomic_ref<std::uint32_t>(p.state).load(std::memory_order_acquire);
    if (p.pid == static_cast<std::uint32_t>(me) && state == kActive) {
      registered_pid_.store(me, std::memory_order_relaxed);
      Remember(h_);
      ::fanout::internal::AddExitHook(&MarkThisProcessFinished);
      return;
    }
    // A free entry, or one of a process that ended normally.
    if (state != kActive && free_slot == nullptr) free_slot = &p;
  }
  char proc_state = 0;
  std::uint64_t start_time = 0;
  if (free_slot != nullptr && ReadStat(me, &proc_state, &start_time)) {
    free_slot->start_time = start_time;
    std::atomic_ref<std::uint32_t>(free_slot->pid)
        .store(static_cast<std::uint32_t>(me), std::memory_order_release);
    std::atomic_ref<std::uint32_t>(free_slot->state)
        .store(kActive, std::memory_order_release);
  }
  registered_pid_.store(me, std::memory_order_relaxed);
  Remember(h_);
  ::fanout::internal::AddExitHook(&MarkThisProcessFinished);
}

// Called with the lock held, by a consumer that waited a whole slice.
void QueueCore::CheckPushers() {
  const pid_t me = getpid();
  for (const Pusher& p : h_->pushers) {
    if (std::atomic_ref<const std::uint32_t>(p.state).load(
            std::memory_order_acquire) != kActive) {
      continue;
    }
    const pid_t pid = static_cast<pid_t>(p.pid);
    if (pid == me) continue;
    if (!Alive(pid, p.start_time)) {
      Abandon(pid, "pushed to the queue and died (killed or crashed)");
      return;
    }
  }
}

namespace {

// How long the next wait may last: a slice, or less near the deadline.
// False when the caller must not wait (try mode, or the deadline passed).
bool NextWait(QueueCore::Mode mode,
              std::chrono::steady_clock::time_point deadline,
              std::chrono::nanoseconds* wait) {
  if (mode == QueueCore::Mode::kTry) return false;
  *wait = kSlice;
  if (mode == QueueCore::Mode::kDeadline) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= left.zero()) return false;
    *wait = std::min<std::chrono::nanoseconds>(*wait, left);
  }
  return true;
}

}  // namespace

void QueueCore::CommitAndWake(std::uint64_t& end, std::uint32_t& word,
                              std::uint32_t waiting) {
  Commit(end, end + 1);
  Bump(word);
  const bool wake = waiting > 0;
  Unlock();
  if (wake) FutexWake(&word, 1, FutexScope::kShared);
}

bool QueueCore::WaitForChange(std::uint32_t& word, std::uint32_t& waiting,
                              Mode mode,
                              std::chrono::steady_clock::time_point deadline,
                              bool* whole_slice) {
  std::chrono::nanoseconds wait;
  if (!NextWait(mode, deadline, &wait)) {
    Unlock();
    return false;
  }
  if (mode == Mode::kBlock && in_sequential_spawn()) {
    Unlock();
    throw UsageError(
        std::string(&word == &h_->items ? "Queue::pop() on an empty queue"
                                        : "Queue::push() on a full queue") +
        " inside spawn(\"sequential\") would wait forever: that backend "
        "runs each task to its end inside spawn(), so nothing spawned later "
        "runs meanwhile; spawn the producers first, or use \"thread\" or "
        "\"process\"");
  }
  const std::uint32_t seen = Load(word);
  ++waiting;
  Unlock();
  const auto start = std::chrono::steady_clock::now();
  FutexWaitFor(&word, seen, FutexScope::kShared, wait);
  *whole_slice = std::chrono::steady_clock::now() - start >= wait;
  Lock();
  --waiting;
  return true;
}

QueueCore::Result QueueCore::Push(
    const void* data, std::size_t n, Mode mode,
    std::chrono::steady_clock::time_point deadline) {
  internal::CheckNotAcrossRanks("Queue");
  Lock();
  for (;;) {
    if (h_->state != kOpen) ThrowClosed();
    RegisterPusher();
    if (h_->tail - h_->head < h_->capacity) {
      char* slot = h_->slot(h_->tail);
      const std::uint32_t size = static_cast<std::uint32_t>(n);
      std::memcpy(slot, &size, sizeof(size));
      std::memcpy(slot + sizeof(size), data, n);
      CommitAndWake(h_->tail, h_->items, h_->consumers_waiting);
      return Result::kDone;
    }
    bool whole_slice = false;
    if (!WaitForChange(h_->space, h_->producers_waiting, mode, deadline,
                       &whole_slice)) {
      return Result::kNotNow;
    }
  }
}

QueueCore::Result QueueCore::Pop(
    void* out, std::size_t* n, Mode mode,
    std::chrono::steady_clock::time_point deadline) {
  internal::CheckNotAcrossRanks("Queue");
  Lock();
  for (;;) {
    if (h_->tail != h_->head) {
      const char* slot = h_->slot(h_->head);
      std::uint32_t size = 0;
      std::memcpy(&size, slot, sizeof(size));
      std::memcpy(out, slot + sizeof(size), size);
      *n = size;
      CommitAndWake(h_->head, h_->space, h_->producers_waiting);
      return Result::kDone;
    }
    if (h_->state == kClosedState) {
      Unlock();
      return Result::kClosed;
    }
    if (h_->state == kAbandoned) ThrowClosed();
    bool whole_slice = false;
    if (!WaitForChange(h_->items, h_->consumers_waiting, mode, deadline,
                       &whole_slice)) {
      return Result::kNotNow;
    }
    if (whole_slice && h_->state == kOpen && h_->tail == h_->head) {
      CheckPushers();
    }
  }
}

void QueueCore::Close() {
  Lock();
  if (h_->state == kOpen) {
    h_->state = kClosedState;
    Bump(h_->items);
    Bump(h_->space);
  }
  Unlock();
  FutexWake(&h_->items, INT_MAX, FutexScope::kShared);
  FutexWake(&h_->space, INT_MAX, FutexScope::kShared);
}

bool QueueCore::Closed() const {
  Lock();
  const bool closed = h_->state != kOpen;
  Unlock();
  return closed;
}

std::size_t QueueCore::Size() const {
  Lock();
  const std::size_t size = h_->tail - h_->head;
  Unlock();
  return size;
}

std::size_t QueueCore::capacity() const { return h_->capacity; }
std::size_t QueueCore::slot_bytes() const { return h_->slot_bytes; }

}  // namespace fanout::internal
