// fanout/core/progress.h — progress of a whole call, as events.
//
//   fanout::Parallel p({.jobs = -1, .on_progress = [](const fanout::ProgressEvent& e) {
//     std::fprintf(stderr, "%zu/%zu\n", e.done, e.total);
//   }});
//
// Backends count finished tasks once per chunk in one shared counter; a
// monitor thread of the front end reads it about every 50 ms and turns it into
// events, joblib-style verbose lines (Options::verbose) or both. The monitor
// exists only when someone asked for progress or a timeout.
#ifndef FANOUT_CORE_PROGRESS_H_
#define FANOUT_CORE_PROGRESS_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/internal/stop_token.h"

namespace fanout {

struct ProgressEvent {
  std::size_t done = 0;   // tasks finished so far
  std::size_t total = 0;  // tasks in the call
  double elapsed = 0;     // seconds since the call started
  double remaining = -1;  // estimated seconds left, -1 when unknown
  bool finished = false;  // the last event of the call
};

using ProgressCallback = std::function<void(const ProgressEvent&)>;

// joblib's verbose lines, e.g.
//   [Parallel(n_jobs=2)]: Done  40 tasks      | elapsed:    0.1s
//   [Parallel(n_jobs=2)]: Done 10000 out of 10000 | elapsed:   37.5s finished
// `level` thins the lines as joblib's verbose does (1: few, >10: every event).
class VerbosePrinter {
 public:
  VerbosePrinter(int level, int jobs, std::FILE* out = stderr)
      : level_(level), jobs_(jobs), out_(out) {}
  void operator()(const ProgressEvent& e);
  // joblib's time format: " 12.3s" or " 1.2min".
  static std::string FormatTime(double seconds);

 private:
  int level_;
  int jobs_;
  std::FILE* out_;
  std::size_t last_printed_ = 0;
  int last_scale_ = -1;
};

namespace internal {

// Polls a counter on its own thread and reports events; stops the call's
// token at its deadline (kTimedOut) or when `external_cancel` (the user's
// flag) is raised (kCancelled).
class ProgressMonitor {
 public:
  ProgressMonitor(std::size_t total, const std::atomic<std::size_t>* done,
                  ProgressCallback callback, StopToken* stop,
                  const std::atomic<bool>* external_cancel);
  ~ProgressMonitor();
  // Stops the thread and, when the call succeeded, sends the final event.
  void finish(bool success);

 private:
  void Loop();
  ProgressEvent Event(bool finished) const;

  const std::size_t total_;
  const std::atomic<std::size_t>* done_;
  ProgressCallback callback_;
  const std::chrono::steady_clock::time_point start_;
  StopToken* const stop_;
  const std::atomic<bool>* external_cancel_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
  bool finished_ = false;
  std::thread thread_;
};

}  // namespace internal
}  // namespace fanout

#endif  // FANOUT_CORE_PROGRESS_H_
