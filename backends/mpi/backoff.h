// fanout/backends/mpi/backoff.h — how often a calling thread polls MPI.
// IWYU pragma: private, include "backends/mpi/mpi.h"
//
// Right after something happened, a few dozen polls back to back (a reply or
// the next request is often microseconds away), then sleeps growing from
// 20 µs to 500 µs while nothing happens. Local events (a thread idle,
// finished or failed) wake the sleeper at once through comm_cv:
//
//   for (Backoff backoff;;) {
//     if (PollOnce()) backoff.Reset(); else backoff.Wait(run);
//   }
#ifndef FANOUT_BACKENDS_MPI_BACKOFF_H_
#define FANOUT_BACKENDS_MPI_BACKOFF_H_

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "backends/mpi/rank_run.h"

namespace fanout::mpi::internal {

class Backoff {
 public:
  // After one round of the calling thread's loop: polls again at once when
  // something happened (`activity`), else waits a little longer each time.
  void Pace(bool activity, RankRun& run) {
    if (activity) {
      Reset();
    } else {
      Wait(run);
    }
  }

  void Reset() {
    spins_ = 0;
    delay_ = kMin;
  }
  void Wait(RankRun& run) {
    if (spins_ < kSpins) {
      ++spins_;
      std::this_thread::yield();
      return;
    }
    std::unique_lock<std::mutex> lock(run.mu);
    run.comm_cv.wait_for(lock, delay_);
    delay_ = std::min(delay_ * 2, kMax);
  }

 private:
  static constexpr int kSpins = 50;
  static constexpr std::chrono::microseconds kMin{20};
  static constexpr std::chrono::microseconds kMax{500};
  int spins_ = 0;
  std::chrono::microseconds delay_{kMin};
};

}  // namespace fanout::mpi::internal

#endif  // FANOUT_BACKENDS_MPI_BACKOFF_H_
