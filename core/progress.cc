#include "core/progress.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/executor.h"
#include "core/internal/scheduler.h"

namespace fanout {

std::string VerbosePrinter::FormatTime(double t) {
  char buf[32];
  if (t > 60) {
    std::snprintf(buf, sizeof(buf), "%4.1fmin", t / 60.0);
  } else {
    std::snprintf(buf, sizeof(buf), " %5.1fs", t);
  }
  return buf;
}

void VerbosePrinter::operator()(const ProgressEvent& e) {
  if (level_ <= 0) return;
  if (e.finished && !e.succeeded) return;  // the call's error says the rest
  if (e.finished) {
    std::fprintf(
        out_,
        "[Parallel(n_jobs=%d)]: Done %3zu out of %3zu | elapsed: %s finished\n",
        jobs_, e.done, e.total, FormatTime(e.elapsed).c_str());
    std::fflush(out_);
    return;
  }
  if (e.done == 0 || e.done == last_printed_) return;
  if (level_ <= 10) {
    // joblib's _verbosity_filter: print when sqrt(done / k) crosses an
    // integer, k = (11 - verbose)^2 / 2, so higher levels print more often.
    const double k = 0.5 * (11 - level_) * (11 - level_);
    const int scale = static_cast<int>(std::sqrt(double(e.done) / k));
    if (scale == last_scale_) return;
    last_scale_ = scale;
  }
  last_printed_ = e.done;
  if (e.remaining >= 0) {
    std::fprintf(out_,
                 "[Parallel(n_jobs=%d)]: Done %3zu tasks      | elapsed: %s "
                 "remaining: %s\n",
                 jobs_, e.done, FormatTime(e.elapsed).c_str(),
                 FormatTime(e.remaining).c_str());
  } else {
    std::fprintf(out_,
                 "[Parallel(n_jobs=%d)]: Done %3zu tasks      | elapsed: %s\n",
                 jobs_, e.done, FormatTime(e.elapsed).c_str());
  }
  std::fflush(out_);
}

namespace internal {

ProgressMonitor::ProgressMonitor(MonitorOptions options)
    : options_(std::move(options)),
      start_(std::chrono::steady_clock::now()),
      thread_([this] { Loop(); }) {
  // The call forks its workers next (process backend). A thread still
  // starting may hold a lock of the allocator; glibc's malloc is reset in a
  // fork's child, but not every allocator is (ASan's in GCC 12 is not: a
  // worker forked then hung in its first malloc). Waiting here costs one
  // handshake per call and leaves the thread parked on its condition
  // variable, holding no lock, when the first fork comes.
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return started_; });
}

ProgressMonitor::~ProgressMonitor() { finish(false); }

ProgressEvent ProgressMonitor::Event(bool finished, bool succeeded) const {
  ProgressEvent e;
  e.total = options_.total;
  e.done = finished && succeeded
               ? options_.total
               : std::min(options_.total,
                          options_.done->load(std::memory_order_relaxed));
  e.succeeded = finished && succeeded;
  e.elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  const std::size_t before = std::min(options_.done_before, e.done);
  if (e.done > before && e.done <= e.total) {
    e.remaining =
        e.elapsed / double(e.done - before) * double(e.total - e.done);
  }
  e.finished = finished;
  return e;
}

namespace {
constexpr std::chrono::milliseconds kStuckAfter{100};
}  // namespace

void ProgressMonitor::CheckStuck() {
  StopToken* stop = options_.stop;
  if (stuck_reported_ || stop == nullptr || !stop->stop_requested() ||
      options_.watch == nullptr || !options_.on_stuck) {
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (stopped_at_ == std::chrono::steady_clock::time_point{}) {
    stopped_at_ = now;
    return;
  }
  if (now - stopped_at_ < kStuckAfter) return;
  std::vector<RunningTask> running = options_.watch->Running();
  if (running.empty()) return;
  if (options_.task_ids != nullptr) {
    if (const std::size_t* ids = options_.task_ids->load()) {
      for (RunningTask& t : running) t.index = ids[t.index];
    }
  }
  stuck_reported_ = true;
  StuckCall stuck;
  stuck.reason = stop->reason();
  stuck.message = stop_message(stuck.reason, options_.backend, *stop,
                               options_.done->load(std::memory_order_relaxed),
                               options_.total, running,
                               /*workers_stopped=*/false);
  stuck.running = running;
  options_.on_stuck(stuck);
}

void ProgressMonitor::Loop() {
  std::size_t last = 0;
  const bool watching_stop = options_.external_cancel != nullptr ||
                             (options_.on_stuck && options_.watch != nullptr);
  const auto tick = std::chrono::milliseconds(watching_stop ? 10 : 50);
  StopToken* stop = options_.stop;
  std::unique_lock<std::mutex> lock(mu_);
  started_ = true;
  cv_.notify_all();
  while (!stop_requested_) {
    // Wake at the next tick, or at the deadline if that comes first.
    auto wake = std::chrono::steady_clock::now() + tick;
    if (stop != nullptr && stop->has_deadline() && !stop->stop_requested()) {
      wake = std::min(wake, stop->deadline());
    }
    cv_.wait_until(lock, wake);
    if (stop_requested_) break;
    if (stop != nullptr) {
      if (options_.external_cancel != nullptr &&
          options_.external_cancel->load()) {
        stop->RequestStop(StopReason::kCancelled);
      }
      stop->CheckDeadline();
    }
    lock.unlock();
    CheckStuck();
    if (options_.callback) {
      ProgressEvent e = Event(false);
      if (e.done != last) {
        last = e.done;
        options_.callback(e);
      }
    }
    lock.lock();
  }
}

void ProgressMonitor::finish(bool success) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    stop_requested_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (options_.callback) options_.callback(Event(true, success));
}

}  // namespace internal
}  // namespace fanout
