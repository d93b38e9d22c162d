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
#include <vector>

#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/stop_token.h"

namespace fanout {

struct ProgressEvent {
  std::size_t done = 0;   // tasks finished so far
  std::size_t total = 0;  // tasks in the call
  double elapsed = 0;     // seconds since the call started
  double remaining = -1;  // estimated seconds left, -1 when unknown
  bool finished = false;  // the last event of the call
  // With `finished`: every task ran and none failed. A call that failed, was
  // cancelled or timed out still gets its last event (finished, not
  // succeeded, `done` what really finished), so a bar can be closed.
  bool succeeded = false;
};

// Events come from a monitor thread of the call, about every 50 ms while the
// count changes; the last one (finished) from the calling thread once every
// task of the call has ended, just before the call returns or throws.

using ProgressCallback = std::function<void(const ProgressEvent&)>;

// A call that was stopped while tasks on threads still run (Options::on_stuck).
struct StuckCall {
  StopReason reason = StopReason::kNone;  // kTimedOut or kCancelled
  std::vector<RunningTask> running;       // by task index
  std::string message;  // what the call's TimeoutError/InterruptedError says
};

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

class TaskWatch;

// What a call's monitor watches.
struct MonitorOptions {
  std::size_t total = 0;                               // tasks in the call
  const std::atomic<std::size_t>* done = nullptr;      // finished so far
  ProgressCallback callback;                           // may be empty
  StopToken* stop = nullptr;                           // the call's token
  const std::atomic<bool>* external_cancel = nullptr;  // the user's flag
  // For a call stopped while tasks on threads still run (Options::on_stuck).
  const TaskWatch* watch = nullptr;
  // The watch holds job indices; a call run as several jobs (checkpoint
  // windows) names task k of the current job task_ids[k]. May be null.
  const std::atomic<const std::size_t*>* task_ids = nullptr;
  std::function<void(const StuckCall&)> on_stuck;
  std::string backend;
  // Of the tasks done, those finished before the call (read back from a
  // checkpoint): they count as done, not in the rate the time left is
  // estimated from.
  std::size_t done_before = 0;
};

// Polls a counter on its own thread and reports events; stops the call's
// token at its deadline (kTimedOut) or when the user's cancel flag is raised
// (kCancelled); calls on_stuck once when watched tasks still run 100 ms
// after the stop.
class ProgressMonitor {
 public:
  explicit ProgressMonitor(MonitorOptions options);
  ~ProgressMonitor();
  // Stops the thread and sends the final event (succeeded or not).
  void finish(bool success);

 private:
  void Loop();
  // Calls on_stuck once if tasks still run `kStuckAfter` after the stop.
  void CheckStuck();
  ProgressEvent Event(bool finished, bool succeeded = false) const;

  MonitorOptions options_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point stopped_at_{};
  bool stuck_reported_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
  bool finished_ = false;
  // The thread has reached its loop: the constructor returns only then (see
  // the constructor).
  bool started_ = false;
  std::thread thread_;
};

}  // namespace internal
}  // namespace fanout

#endif  // FANOUT_CORE_PROGRESS_H_
