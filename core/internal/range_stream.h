// fanout/core/internal/range_stream.h — Parallel::imap and imap_unordered
// over an input range of unknown length: items read as the loop goes,
// batches of them submitted to a pool of the Parallel's backend, at most
// Options::max_in_flight batches pending. Included by core/parallel.h after
// class Parallel.
//
// IWYU pragma: private, include "core/parallel.h"
#ifndef FANOUT_CORE_INTERNAL_RANGE_STREAM_H_
#define FANOUT_CORE_INTERNAL_RANGE_STREAM_H_

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/future.h"
#include "core/internal/checkpoint.h"
#include "core/internal/pool_core.h"

namespace fanout {
namespace internal {

constexpr std::uint64_t kBatchOk = ~std::uint64_t{0};

// What one task of a stream hands back: the results of its items, in
// order, up to the one that threw (if one did).
template <class R>
struct Batch {
  std::vector<R> values;
  std::uint64_t failed_at = kBatchOk;  // the item that threw, in the batch
  std::string type;                    // its exception, as TaskError says it
  std::string message;
  int attempts = 1;
  std::uint64_t nanos = 0;      // how long the task ran
  std::exception_ptr original;  // the exception, where it did not cross
  template <class A>
  requires(Journalable<R>()) void serialize(A& a) {
    a(values, failed_at, type, message, attempts, nanos);
  }
};

// Refuses the Options a stream over a range cannot honour, and a bad
// max_in_flight. Returns the tasks it may keep pending.
std::size_t StreamInFlight(const Options& options, int jobs);
[[noreturn]] void ThrowBadMaxInFlight(int value);

// Sizes the next batch from how long the last one took (about 2 ms of work
// a task), or doubles it (up to 4096) where every rank must cut the same
// batches; never above `most` items.
std::size_t NextBatch(std::size_t batch, std::uint64_t nanos, bool timed,
                      std::size_t most);

template <class R, class View, class F, bool kIndexed>
class RangeStream {
  using Item = std::ranges::range_value_t<View>;

 public:
  using value_type = std::conditional_t<kIndexed, std::pair<std::size_t, R>, R>;

  RangeStream(std::shared_ptr<Executor> executor, const Options& options,
              View view, F f)
      : state_(std::make_unique<State>(std::move(executor), options,
                                       std::move(view), std::move(f))) {}

  class iterator {
   public:
    using value_type = RangeStream::value_type;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(RangeStream* range) : range_(range) {}
    value_type& operator*() const { return *range_->state_->current; }
    value_type* operator->() const { return &*range_->state_->current; }
    iterator& operator++() {
      range_->state_->Advance();
      return *this;
    }
    void operator++(int) { range_->state_->Advance(); }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.done();
    }

   private:
    bool done() const { return range_ == nullptr || range_->state_->done; }
    RangeStream* range_ = nullptr;
  };

  iterator begin() {
    if (!state_->started) {
      state_->started = true;
      state_->Advance();
    }
    return iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }

 private:
  struct Pending {
    Future<Batch<R>> future;
    std::size_t first = 0;  // the position of its first item in the input
  };

  // A batch holds at most about 256 KiB of items and results, so that what
  // is in flight stays small whatever the input.
  static constexpr std::size_t kMostItems = std::max<std::size_t>(
      (std::size_t{256} << 10) / (sizeof(Item) + sizeof(R)), 1);

  struct State {
    State(std::shared_ptr<Executor> ex, const Options& options, View v, F fn)
        : in_flight(StreamInFlight(options, ex->jobs())),
          fixed_batch(options.batch_size),
          timed(ex->calls_from_any_thread()),
          retries(options.retries),
          retry_on(options.retry_on),
          cancel(options.cancel),
          backend(ex->name()),
          pool(std::move(ex), options),
          view(std::move(v)),
          it(std::ranges::begin(view)),
          f(std::move(fn)) {
      if (fixed_batch != 0) batch = fixed_batch;
    }
    ~State() { pool.Close(); }  // nothing left running

    // Runs f over a batch of items, in order, each with its retries.
    static Batch<R> RunBatch(State* self, std::vector<Item>& items) {
      const auto start = std::chrono::steady_clock::now();
      Batch<R> out;
      out.values.reserve(items.size());
      for (std::size_t k = 0; k < items.size(); ++k) {
        for (int attempt = 1;; ++attempt) {
          try {
            out.values.push_back(std::invoke(self->f, items[k]));
            break;
          } catch (...) {
            TaskFailure failure = describe_current_exception();
            bool again = attempt <= self->retries;
            if (again && !self->retry_on.empty()) {
              again = std::find(self->retry_on.begin(), self->retry_on.end(),
                                failure.type) != self->retry_on.end();
            }
            if (again) continue;
            out.failed_at = k;
            out.type = std::move(failure.type);
            out.message = std::move(failure.message);
            out.attempts = attempt;
            out.original = failure.exception;
            break;
          }
        }
        if (out.failed_at != kBatchOk) break;
      }
      out.nanos = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(
              std::chrono::steady_clock::now() - start)
              .count());
      return out;
    }

    // Submits batches while fewer than in_flight are pending.
    void Refill() {
      while (!exhausted && pending.size() < in_flight) {
        if (cancel != nullptr && cancel->load()) {
          throw InterruptedError(
              "stream cancelled by the caller's cancel flag after " +
                  std::to_string(read) + " items were read",
              0);
        }
        std::vector<Item> items;
        items.reserve(batch);
        while (items.size() < batch && it != std::ranges::end(view)) {
          items.push_back(*it);
          ++it;
        }
        if (items.empty()) {
          exhausted = true;
          break;
        }
        const std::size_t first = read;
        read += items.size();
        if (it == std::ranges::end(view)) exhausted = true;
        State* self = this;
        pending.push_back({SubmitTo(
                               pool,
                               [self](std::vector<Item>& batch_items) {
                                 return RunBatch(self, batch_items);
                               },
                               std::move(items)),
                           first});
        if (fixed_batch == 0 && !timed) {
          batch = NextBatch(batch, 0, false, kMostItems);
        }
      }
    }

    // The next batch to yield: the oldest (ordered) or the first to end.
    bool TakeBatch() {
      Refill();
      if (pending.empty()) return false;
      std::size_t k = 0;
      if constexpr (kIndexed) {
        std::vector<Future<Batch<R>>> futures;
        futures.reserve(pending.size());
        for (Pending& p : pending) futures.push_back(p.future);
        k = wait_any(futures);
      }
      Pending taken = std::move(pending[k]);
      pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(k));
      try {
        current_batch = taken.future.get();
      } catch (const TaskError& e) {
        // The task itself failed (its worker died): name its first item.
        TaskError::Details d = e.details();
        d.index = taken.first;
        throw TaskError(std::move(d));
      }
      first = taken.first;
      pos = 0;
      if (fixed_batch == 0 && timed) {
        batch = NextBatch(batch, current_batch.nanos, true, kMostItems);
      }
      Refill();  // keep the workers busy while the loop consumes
      return true;
    }

    void Advance() {
      current.reset();
      for (;;) {
        if (pos < current_batch.values.size()) {
          const std::size_t index = first + pos;
          if constexpr (kIndexed) {
            current.emplace(index, std::move(current_batch.values[pos]));
          } else {
            current.emplace(std::move(current_batch.values[pos]));
          }
          ++pos;
          return;
        }
        if (current_batch.failed_at != kBatchOk) {
          Batch<R> failed = std::move(current_batch);
          current_batch = Batch<R>();
          std::string message = failed.message;
          if (failed.attempts > 1) {
            message +=
                " (failed " + std::to_string(failed.attempts) + " attempts)";
          }
          throw TaskError(TaskError::Details{
              first + static_cast<std::size_t>(failed.failed_at), backend, "",
              std::move(failed.type), std::move(message), 0, -1,
              failed.original});
        }
        if (!TakeBatch()) {
          done = true;
          return;
        }
      }
    }

    const std::size_t in_flight;
    const std::size_t fixed_batch;
    const bool timed;
    const int retries;
    const std::vector<std::string> retry_on;
    const std::atomic<bool>* const cancel;
    const std::string backend;
    PoolCore pool;
    View view;
    std::ranges::iterator_t<View> it;
    F f;
    std::size_t batch = 1;
    std::size_t read = 0;  // items read from the input
    bool exhausted = false;
    std::deque<Pending> pending;
    Batch<R> current_batch;
    std::size_t first = 0;
    std::size_t pos = 0;
    std::optional<value_type> current;
    bool started = false;
    bool done = false;
  };

  std::unique_ptr<State> state_;
};

}  // namespace internal

template <std::ranges::input_range In, class F>
requires std::invocable<F&, std::ranges::range_reference_t<In>>
auto Parallel::imap(In&& input, F f) {
  using View = decltype(std::views::all(std::forward<In>(input)));
  using Item = std::ranges::range_value_t<View>;
  using R = std::invoke_result_t<F&, Item&>;
  static_assert(!std::is_void_v<R>, "imap needs a value; use for_each");
  return internal::RangeStream<R, View, F, false>(
      executor_, options_, std::views::all(std::forward<In>(input)),
      std::move(f));
}

template <std::ranges::input_range In, class F>
requires std::invocable<F&, std::ranges::range_reference_t<In>>
auto Parallel::imap_unordered(In&& input, F f) {
  using View = decltype(std::views::all(std::forward<In>(input)));
  using Item = std::ranges::range_value_t<View>;
  using R = std::invoke_result_t<F&, Item&>;
  static_assert(!std::is_void_v<R>, "imap_unordered needs a value");
  return internal::RangeStream<R, View, F, true>(
      executor_, options_, std::views::all(std::forward<In>(input)),
      std::move(f));
}

}  // namespace fanout

#endif  // FANOUT_CORE_INTERNAL_RANGE_STREAM_H_
