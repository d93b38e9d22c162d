// fanout/core/internal/stop_token.h — the one owner of why a call stopped.
//
// IWYU pragma: private, include "core/executor.h"
//
// Every call has one StopToken. It holds the call's deadline and, once
// something stops the call, the reason: the user's cancel flag, the deadline
// passing, or a signal. The first reason wins and never changes, so a backend
// never has to guess whether a stop "at about the deadline" was the timeout.
// Whoever notices first requests the stop: the front end's monitor thread, a
// backend that waits in poll() until the deadline, or a signal handler's
// reader. Backends poll stop_requested() between chunks (one relaxed load).
#ifndef FANOUT_CORE_INTERNAL_STOP_TOKEN_H_
#define FANOUT_CORE_INTERNAL_STOP_TOKEN_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace fanout {

// Why a call stopped before every task had run.
enum class StopReason : std::uint32_t {
  kNone = 0,
  kFailed = 1,       // a task failed under fail-fast (set by the scheduler)
  kCancelled = 2,    // the caller's cancel flag (Options::cancel)
  kTimedOut = 3,     // the call's deadline passed (Options::timeout)
  kInterrupted = 4,  // SIGINT or SIGTERM reached the caller during the call
};

class StopToken {
 public:
  using Clock = std::chrono::steady_clock;

  StopToken() = default;
  // A token whose deadline is `timeout` from now (none when timeout <= 0).
  explicit StopToken(std::chrono::milliseconds timeout) { SetTimeout(timeout); }
  StopToken(const StopToken&) = delete;
  StopToken& operator=(const StopToken&) = delete;

  // Sets the deadline to `timeout` from now; a timeout <= 0 means none. A
  // timeout too large to add to the clock saturates to "none".
  void SetTimeout(std::chrono::milliseconds timeout) {
    timeout_ = timeout;
    if (timeout.count() <= 0) {
      deadline_ = Clock::time_point::max();
      return;
    }
    const Clock::time_point now = Clock::now();
    const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(
        Clock::time_point::max() - now);
    deadline_ = timeout >= room ? Clock::time_point::max() : now + timeout;
  }

  // Records why the call stops; false when it had already stopped (the first
  // reason stays). `signal` is the signal number for kInterrupted.
  bool RequestStop(StopReason reason, int signal = 0) {
    std::uint32_t expected = 0;
    if (!reason_.compare_exchange_strong(expected,
                                         static_cast<std::uint32_t>(reason),
                                         std::memory_order_acq_rel)) {
      return false;
    }
    signal_.store(signal, std::memory_order_release);
    return true;
  }

  bool stop_requested() const {
    return reason_.load(std::memory_order_relaxed) != 0;
  }
  StopReason reason() const {
    return static_cast<StopReason>(reason_.load(std::memory_order_acquire));
  }
  // The signal of a kInterrupted stop, else 0.
  int signal() const { return signal_.load(std::memory_order_acquire); }

  bool has_deadline() const { return deadline_ != Clock::time_point::max(); }
  Clock::time_point deadline() const { return deadline_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  // Requests kTimedOut when the deadline has passed; true when the call is
  // (now or already) stopped for any reason.
  bool CheckDeadline() {
    if (has_deadline() && Clock::now() >= deadline_) {
      RequestStop(StopReason::kTimedOut);
    }
    return stop_requested();
  }

 private:
  std::atomic<std::uint32_t> reason_{0};
  std::atomic<int> signal_{0};
  Clock::time_point deadline_ = Clock::time_point::max();
  std::chrono::milliseconds timeout_{0};
};

}  // namespace fanout

#endif  // FANOUT_CORE_INTERNAL_STOP_TOKEN_H_
