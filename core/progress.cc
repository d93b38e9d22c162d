#include "core/progress.h"

#include <algorithm>
#include <cmath>
#include <utility>

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

ProgressMonitor::ProgressMonitor(std::size_t total,
                                 const std::atomic<std::size_t>* done,
                                 ProgressCallback callback, StopToken* stop,
                                 const std::atomic<bool>* external_cancel)
    : total_(total),
      done_(done),
      callback_(std::move(callback)),
      start_(std::chrono::steady_clock::now()),
      stop_(stop),
      external_cancel_(external_cancel),
      thread_([this] { Loop(); }) {}

ProgressMonitor::~ProgressMonitor() { finish(false); }

ProgressEvent ProgressMonitor::Event(bool finished) const {
  ProgressEvent e;
  e.total = total_;
  e.done = finished ? total_ : done_->load(std::memory_order_relaxed);
  e.elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  if (e.done > 0 && e.done <= total_) {
    e.remaining = e.elapsed / double(e.done) * double(total_ - e.done);
  }
  e.finished = finished;
  return e;
}

void ProgressMonitor::Loop() {
  std::size_t last = 0;
  const auto tick =
      std::chrono::milliseconds(external_cancel_ != nullptr ? 10 : 50);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_requested_) {
    // Wake at the next tick, or at the deadline if that comes first.
    auto wake = std::chrono::steady_clock::now() + tick;
    if (stop_ != nullptr && stop_->has_deadline()) {
      wake = std::min(wake, stop_->deadline());
    }
    cv_.wait_until(lock, wake);
    if (stop_requested_) break;
    if (stop_ != nullptr) {
      if (external_cancel_ != nullptr && external_cancel_->load()) {
        stop_->RequestStop(StopReason::kCancelled);
      }
      stop_->CheckDeadline();
    }
    if (callback_) {
      ProgressEvent e = Event(false);
      if (e.done != last) {
        last = e.done;
        lock.unlock();
        callback_(e);
        lock.lock();
      }
    }
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
  if (success && callback_) callback_(Event(true));
}

}  // namespace internal
}  // namespace fanout
