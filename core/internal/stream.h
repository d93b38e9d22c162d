// fanout/core/internal/stream.h — imap and imap_unordered: the windows a
// stream runs (the next one in the background while the current one is
// consumed) and the input range the caller loops over. Included by
// core/parallel.h after class Parallel, whose privates it uses.
//
// IWYU pragma: private, include "core/parallel.h"
#ifndef FANOUT_CORE_INTERNAL_STREAM_H_
#define FANOUT_CORE_INTERNAL_STREAM_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/internal/checkpoint.h"
#include "core/internal/runner.h"

namespace fanout::internal {

// One window of a stream: tasks [begin, begin + slots.size()), or the
// tasks ids[0 .. slots.size()) of a checkpointed stream.
template <class R>
struct Window {
  std::size_t begin = 0;
  const std::size_t* ids = nullptr;
  double seconds = 0;  // how long it ran
  std::size_t index(std::size_t pos) const {
    return ids != nullptr ? ids[pos] : begin + pos;
  }
  std::vector<Slot<R>> slots;
  std::vector<TaskError> failures;  // by task index
  // Chunks in the order they finished (where tasks share memory), relative
  // to begin; empty where completions are not seen.
  std::vector<std::pair<std::size_t, std::size_t>> order;
  std::exception_ptr error;  // the window's call threw (timeout, cancel)
};

// Runs a stream's windows: the next one in the background while the
// current one is consumed (where calls may come from any thread).
template <class R, class F>
class WindowSource {
 public:
  WindowSource(const Parallel& parallel, std::size_t n, F f, std::size_t window)
      : user_cancel_(parallel.options_.cancel),
        inner_(parallel.executor_, InnerOptions(parallel.options_, &cancel_)),
        n_(n),
        window_(window != 0 ? window : DefaultWindow(parallel, n)),
        f_(std::move(f)),
        prefetch_(parallel.executor_->calls_from_any_thread() && !in_task()),
        // Where a call costs forks (process), a window that ends quickly
        // makes the next one twice as large, up to kGrowBytes of results:
        // the first results still come after one small window, and a long
        // stream of tiny tasks pays for a few forks, not one per 16K
        // tasks. Never on mpi ranks: every rank must cut the same windows.
        grow_(window == 0 && !parallel.executor_->shares_memory() &&
              parallel.executor_->calls_from_any_thread()),
        grow_cap_(std::max(window_, kGrowBytes / sizeof(Slot<R>))) {
    if (!parallel.options_.checkpoint.empty()) {
      OpenCheckpoint(parallel, /*timed=*/window == 0);
    }
    // Options::max_in_flight bounds the tasks pending: two windows at most.
    if (const int most = parallel.options_.max_in_flight; most > 0) {
      cap_ = std::max<std::size_t>(static_cast<std::size_t>(most) / 2, 1);
      window_ = std::min(window_, cap_);
    }
  }

  ~WindowSource() {
    cancel_.store(true);
    if (pending_.valid()) pending_.wait();  // nothing left running
  }
  WindowSource(const WindowSource&) = delete;
  WindowSource& operator=(const WindowSource&) = delete;

  // The next window; false when every window was handed out.
  bool Next(Window<R>* out) {
    if (user_cancel_ != nullptr && user_cancel_->load()) {
      throw InterruptedError("stream cancelled by the caller's cancel flag", 0);
    }
    if (pending_.valid()) {
      *out = pending_.get();
    } else if (next_ < left()) {
      *out = RunWindow(TakeRange());
    } else {
      return false;
    }
    if (sized_) {
      window_ = NextWindow(window_, out->seconds, inner_.jobs(), left() - next_,
                           timed_);
    } else if (grow_ && out->seconds < kGrowBelowSeconds) {
      window_ = std::min(grow_cap_, window_ * 2);
    }
    window_ = std::min(window_, cap_);
    if (prefetch_ && next_ < left() && !out->error && out->failures.empty()) {
      const auto range = TakeRange();
      pending_ = std::async(std::launch::async,
                            [this, range] { return RunWindow(range); });
    }
    return true;
  }

  // A checkpointed stream's results read back from the file, by index: they
  // are yielded first (unordered) or in their place (ordered).
  std::vector<std::pair<std::size_t, Slot<R>>>& loaded() { return loaded_; }
  // The task a checkpointed stream computes `k`-th (its k-th missing task),
  // or n when every one is computed; k itself without a checkpoint.
  std::size_t computed(std::size_t k) const {
    if (file_ == nullptr) return k;
    return k < todo_.size() ? todo_[k] : n_;
  }

 private:
  static Options InnerOptions(Options o, const std::atomic<bool>* cancel) {
    o.verbose = 0;
    o.on_progress = nullptr;
    o.on_stuck = nullptr;
    o.cancel = cancel;
    o.checkpoint.clear();  // this source writes it, window by window
    return o;
  }
  // The tasks computed: every one, or those the checkpoint lacks.
  std::size_t left() const { return file_ != nullptr ? todo_.size() : n_; }

  // Reads the checkpoint back. `timed`: windows are then sized by time, as
  // a checkpointed map's (the caller did not fix their size).
  void OpenCheckpoint(const Parallel& parallel, bool timed) {
    const std::string& path = parallel.options_.checkpoint;
    RefuseCheckpoint<R>(path);
    if constexpr (Journalable<R>()) {
      std::vector<unsigned char> done(n_, 0);
      primary_ = parallel.executor_->is_primary();
      file_ = internal::OpenCheckpoint<R>(
          path,
          JournalIdentity{.tasks = n_,
                          .type = TypeName(typeid(R)),
                          .kind = "imap",
                          .key = parallel.options_.checkpoint_key},
          primary_, &done, [&](std::size_t i) {
            loaded_.emplace_back(i, Slot<R>{});
            return &loaded_.back().second;
          });
      std::stable_sort(
          loaded_.begin(), loaded_.end(),
          [](const auto& a, const auto& b) { return a.first < b.first; });
      parallel.last_resumed_ = loaded_.size();
      todo_.reserve(n_ - loaded_.size());
      for (std::size_t i = 0; i < n_; ++i) {
        if (!done[i]) todo_.push_back(i);
      }
      sized_ = timed;
      if (timed) {
        timed_ = parallel.executor_->calls_from_any_thread();
        window_ = FirstWindow(inner_.jobs(), todo_.size(), timed_);
      }
    }
  }

  // Appends a window's results to the checkpoint (none when a task of it
  // failed: under fail-fast the tasks it never started hold no result).
  void Record(const Window<R>& w) {
    if constexpr (Journalable<R>()) {
      if (!primary_ || !w.failures.empty()) return;
      std::string batch;
      AppendWindow<R>(
          *file_, &batch, w.ids, w.slots.size(), w.slots.data(),
          [](std::size_t) { return false; }, nullptr);
    }
  }
  static std::size_t DefaultWindow(const Parallel& p, std::size_t n) {
    const int jobs = p.jobs();
    const std::size_t batch =
        resolve_batch_size(n, jobs, p.options().batch_size);
    const std::size_t w =
        std::max<std::size_t>(1024, 4 * static_cast<std::size_t>(jobs) *
                                        std::min<std::size_t>(batch, 1 << 16));
    return std::max<std::size_t>(std::min(w, n), 1);
  }
  // Takes the next window's tasks: [begin, begin + count) of the tasks
  // computed. The size is fixed here, on the consumer's thread.
  std::pair<std::size_t, std::size_t> TakeRange() {
    const std::size_t begin = next_;
    const std::size_t count = std::min(window_, left() - begin);
    next_ += count;
    return {begin, count};
  }

  Window<R> RunWindow(std::pair<std::size_t, std::size_t> range) {
    const auto [begin, count] = range;
    Window<R> w;
    w.begin = begin;
    if (file_ != nullptr) w.ids = todo_.data() + begin;
    auto task = [this, &w](std::size_t k) -> R {
      try {
        return std::invoke(f_, w.index(k));
      } catch (...) {  // named by its own index, not the window's
        throw GroupTaskFailure{w.index(k), std::current_exception()};
      }
    };
    Runner<R, decltype(task)> runner(count, task);
    std::mutex order_mu;
    if (inner_.executor().shares_memory()) {
      runner.RecordChunks(&w.order, &order_mu);
    }
    const Job job = runner.MakeJob(count);
    const auto start = std::chrono::steady_clock::now();
    try {
      RunReport report;
      try {
        // Every task of the window runs, even after one fails: under
        // fail-fast a task before the failed one might never start (tbb
        // and process run chunks in any order), and the stream, which
        // yields every result before the failure, would yield its empty
        // slot. At most one window's work runs past a failure.
        report = inner_.Run(job, ErrorPolicy::kCollectAll, true, nullptr,
                            "imap window " + std::to_string(w.index(0)) + "-" +
                                std::to_string(w.index(count - 1)));
      } catch (const TaskError& e) {
        // A worker died: the backend named the window's task.
        TaskError::Details d = e.details();
        if (d.index < count) d.index = w.index(d.index);
        throw TaskError(std::move(d)).with_failed_tasks(e.failed_tasks());
      }
      RenameWindowFailures(&report.failures, w.ids, w.begin, count,
                           /*all=*/false);
      w.failures = std::move(report.failures);
      w.slots = std::move(runner.slots());
      if (file_ != nullptr) Record(w);
    } catch (...) {
      w.error = std::current_exception();
    }
    w.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (w.slots.empty()) w.slots = std::move(runner.slots());
    return w;
  }

  static constexpr std::size_t kGrowBytes = std::size_t{4} << 20;
  static constexpr double kGrowBelowSeconds = 0.02;

  std::atomic<bool> cancel_{false};
  const std::atomic<bool>* const user_cancel_;
  Parallel inner_;
  const std::size_t n_;
  std::size_t window_;
  F f_;
  const bool prefetch_;
  const bool grow_;
  const std::size_t grow_cap_;
  std::size_t next_ = 0;
  std::size_t cap_ = static_cast<std::size_t>(-1);  // max_in_flight / 2
  std::future<Window<R>> pending_;
  // With a checkpoint: the file, the tasks it lacks (computed, in index
  // order) and the results it held.
  std::unique_ptr<Checkpoint> file_;
  bool primary_ = true;
  bool sized_ = false;  // windows sized by time (see NextWindow)
  bool timed_ = true;
  std::vector<std::size_t> todo_;
  std::vector<std::pair<std::size_t, Slot<R>>> loaded_;
};

// The range imap and imap_unordered return: an input range, read once.
template <class R, class F, bool kIndexed>
class StreamRange {
 public:
  using value_type = std::conditional_t<kIndexed, std::pair<std::size_t, R>, R>;

  StreamRange(const Parallel& parallel, std::size_t n, F f, std::size_t window)
      : source_(std::make_unique<WindowSource<R, F>>(parallel, n, std::move(f),
                                                     window)) {}

  class iterator {
   public:
    using value_type = StreamRange::value_type;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(StreamRange* range) : range_(range) {}
    value_type& operator*() const { return *range_->current_; }
    value_type* operator->() const { return &*range_->current_; }
    iterator& operator++() {
      range_->Advance();
      return *this;
    }
    void operator++(int) { range_->Advance(); }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.range_ == nullptr || it.range_->done();
    }

   private:
    StreamRange* range_ = nullptr;
  };

  iterator begin() {
    if (!started_) {
      started_ = true;
      Advance();
    }
    return iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }
  // True once every result was yielded.
  bool done() const { return done_; }

 private:
  // The next task's position in the window, in the order it is yielded.
  bool NextPosition(std::size_t* pos) {
    if constexpr (kIndexed) {
      if (!window_.order.empty()) {
        while (chunk_ < window_.order.size()) {
          auto& [b, e] = window_.order[chunk_];
          if (b < e) {
            *pos = b++;
            return true;
          }
          ++chunk_;
        }
        return false;
      }
    }
    if (pos_ >= window_.slots.size()) return false;
    *pos = pos_++;
    return true;
  }

  // A result read back from a checkpoint, when it comes next: all of them
  // first (unordered), or each before the first computed task after it.
  bool NextLoaded() {
    auto& loaded = source_->loaded();
    if (loaded_pos_ >= loaded.size()) return false;
    auto& [index, slot] = loaded[loaded_pos_];
    if (!kIndexed && index > source_->computed(computed_)) return false;
    ++loaded_pos_;
    if constexpr (kIndexed) {
      current_.emplace(index, TakeSlot<R>(slot));
    } else {
      current_.emplace(TakeSlot<R>(slot));
    }
    return true;
  }

  void Advance() {
    current_.reset();
    if (NextLoaded()) return;
    for (;;) {
      std::size_t pos = 0;
      if (NextPosition(&pos)) {
        ++computed_;
        const std::size_t index = window_.index(pos);
        for (const TaskError& e : window_.failures) {
          if (e.index() == index)
            throw e.with_failed_tasks(window_.failures.size());
        }
        if constexpr (kIndexed) {
          current_.emplace(index, TakeSlot<R>(window_.slots[pos]));
        } else {
          current_.emplace(TakeSlot<R>(window_.slots[pos]));
        }
        return;
      }
      Window<R> next;
      if (!source_->Next(&next)) {
        done_ = true;
        return;
      }
      if (next.error) std::rethrow_exception(next.error);
      window_ = std::move(next);
      pos_ = 0;
      chunk_ = 0;
    }
  }

  std::unique_ptr<WindowSource<R, F>> source_;
  Window<R> window_;
  std::size_t pos_ = 0;
  std::size_t chunk_ = 0;
  std::size_t loaded_pos_ = 0;  // results read back, yielded so far
  std::size_t computed_ = 0;    // results computed, yielded so far
  std::optional<value_type> current_;
  bool started_ = false;
  bool done_ = false;
};

}  // namespace fanout::internal

namespace fanout {

template <class F>
requires std::invocable<F&, std::size_t>
auto Parallel::imap(std::size_t n, F f, std::size_t window) {
  using R = std::invoke_result_t<F&, std::size_t>;
  static_assert(!std::is_void_v<R>, "imap needs a value; use for_each");
  return internal::StreamRange<R, F, false>(*this, n, std::move(f), window);
}

template <class F>
requires std::invocable<F&, std::size_t>
auto Parallel::imap_unordered(std::size_t n, F f, std::size_t window) {
  using R = std::invoke_result_t<F&, std::size_t>;
  static_assert(!std::is_void_v<R>, "imap_unordered needs a value");
  return internal::StreamRange<R, F, true>(*this, n, std::move(f), window);
}

}  // namespace fanout

#endif  // FANOUT_CORE_INTERNAL_STREAM_H_
