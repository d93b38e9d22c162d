// fanout/core/future.h — the result of a task submitted to a fanout::Pool
// (core/pool.h, where the whole story is told): Future<R>, as_completed,
// wait_any, wait_all and this_task::stop_requested().
//
//   fanout::Future<int> f = pool.submit(fib, 30);
//   if (f.wait_for(std::chrono::seconds(1))) use(f.get());
//   else f.cancel();
#ifndef FANOUT_CORE_FUTURE_H_
#define FANOUT_CORE_FUTURE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/internal/pool_core.h"
#include "core/internal/task_node.h"

namespace fanout {

namespace this_task {
// True when the task running on this thread was cancelled (Future::cancel)
// or its pool is closing: a long task may check it and return early. False
// outside a pool's task.
bool stop_requested();
}  // namespace this_task

template <class R>
class Future;
class Pool;

// The result of one submitted task (see the top of this file).
template <class R>
class Future {
 public:
  using value_type = R;

  Future() = default;
  Future(const Future& other) : node_(other.node_) {
    if (node_ != nullptr) internal::Retain(node_);
  }
  Future(Future&& other) noexcept
      : node_(std::exchange(other.node_, nullptr)) {}
  Future& operator=(Future other) noexcept {
    std::swap(node_, other.node_);
    return *this;
  }
  ~Future() {
    if (node_ != nullptr) internal::Release(node_);
  }

  // False for a default-constructed or moved-from future.
  bool valid() const { return node_ != nullptr; }
  // The task's submission number in its pool (0, 1, ...), as errors name it.
  std::uint64_t id() const { return Node()->id; }

  // Waits until the task ended, then returns its value or throws its error
  // (TaskError, CancelledError, ...). Once per future.
  R get() {
    internal::NodeBase* node = Node();
    node->pool->Wait(node);
    if (node->retrieved.exchange(true, std::memory_order_seq_cst)) {
      throw UsageError("Future::get() called twice for task " +
                       std::to_string(node->id) +
                       " (a future's outcome is taken once, by one of its "
                       "copies); valid: keep the value get() returned");
    }
    if (node->state() != internal::NodeState::kDone) {
      std::rethrow_exception(node->error);
    }
    if constexpr (!std::is_void_v<R>) {
      auto* v = static_cast<internal::ValueNode<R>*>(node);
      // Dependents not yet run read the value in place: copy it for them,
      // or (a type that cannot be copied) wait until they have read it.
      if (node->readers.load(std::memory_order_seq_cst) != 0) {
        if constexpr (std::is_copy_constructible_v<R>) {
          return *v->value;
        } else {
          node->pool->Block(
              [node] {
                return node->readers.load(std::memory_order_acquire) == 0;
              },
              node->pool->ended_event(),
              std::chrono::steady_clock::time_point::max());
        }
      }
      return std::move(*v->value);
    }
  }

  // Waits until the task ended; does not take its outcome.
  void wait() const { Node()->pool->Wait(Node()); }
  // Waits at most `d`; true when the task ended.
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& d) const {
    const auto now = std::chrono::steady_clock::now();
    const auto left =
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
    const auto until =
        left >= std::chrono::steady_clock::time_point::max() - now
            ? std::chrono::steady_clock::time_point::max()
            : now + left;
    return Node()->pool->WaitUntil(Node(), until);
  }
  // True once the task ended (done, failed or cancelled).
  bool ready() const { return Node()->ended(); }
  // Cancels the task unless it ended (see the top of this file); true when
  // this call cancelled it.
  bool cancel() { return Node()->pool->Cancel(Node()); }
  bool cancelled() const {
    return Node()->state() == internal::NodeState::kCancelled;
  }

 private:
  friend class Pool;
  template <class T>
  friend internal::NodeBase* internal::NodeOf(const Future<T>& f);
  friend struct internal::FutureAccess;

  explicit Future(internal::NodeBase* node) : node_(node) {}
  internal::NodeBase* Node() const {
    if (node_ == nullptr) {
      throw UsageError(
          "use of an empty Future (default-constructed or moved from); "
          "valid: a Future returned by Pool::submit()");
    }
    return node_;
  }

  internal::NodeBase* node_ = nullptr;
};

template <class T>
internal::NodeBase* internal::NodeOf(const Future<T>& f) {
  return f.node_;
}

// The futures, each once, in the order their tasks end: a range.
//
//   for (fanout::Future<int>& f : fanout::as_completed(futures)) f.get();
//
// Every future must be of one pool and valid. Leaving the loop early is
// fine (the tasks go on).
template <class R>
class AsCompleted {
 public:
  explicit AsCompleted(std::vector<Future<R>>& futures) : futures_(futures) {
    std::vector<internal::NodeBase*> nodes;
    nodes.reserve(futures.size());
    internal::PoolCore* pool = nullptr;
    for (const Future<R>& f : futures) {
      if (!f.valid()) {
        throw UsageError(
            "as_completed/wait_any: an empty Future (default-constructed or "
            "moved from); valid: futures returned by Pool::submit()");
      }
      internal::NodeBase* node = internal::NodeOf(f);
      if (pool != nullptr && node->pool != pool) {
        throw UsageError(
            "as_completed/wait_any: futures of different pools; valid: the "
            "futures of one pool");
      }
      pool = node->pool;
      nodes.push_back(node);
    }
    if (!nodes.empty()) {
      queue_ = new internal::CompletionQueue(pool, nodes.data(), nodes.size());
    }
  }
  ~AsCompleted() {
    if (queue_ != nullptr) queue_->Drop();
  }
  AsCompleted(const AsCompleted&) = delete;
  AsCompleted& operator=(const AsCompleted&) = delete;

  class iterator {
   public:
    using value_type = Future<R>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(AsCompleted* range) : range_(range) {}
    Future<R>& operator*() const { return range_->futures_[range_->current_]; }
    Future<R>* operator->() const { return &**this; }
    iterator& operator++() {
      range_->Advance();
      return *this;
    }
    void operator++(int) { range_->Advance(); }
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.done();
    }

   private:
    bool done() const {
      return range_ == nullptr || range_->current_ >= range_->futures_.size();
    }
    AsCompleted* range_ = nullptr;
  };

  iterator begin() {
    if (!started_) {
      started_ = true;
      Advance();
    }
    return iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }

  // The index of the next future to end (futures.size() when none is left).
  std::size_t Next() {
    Advance();
    return current_;
  }

 private:
  void Advance() {
    current_ = queue_ == nullptr ? futures_.size() : queue_->Next();
  }

  std::vector<Future<R>>& futures_;
  internal::CompletionQueue* queue_ = nullptr;
  std::size_t current_ = 0;
  bool started_ = false;
};

template <class R>
AsCompleted<R> as_completed(std::vector<Future<R>>& futures) {
  return AsCompleted<R>(futures);
}

// concurrent.futures.wait(FIRST_COMPLETED): the index of a future that
// ended (the lowest of those that already had), waiting for one. UsageError
// for an empty list.
template <class R>
std::size_t wait_any(std::vector<Future<R>>& futures) {
  if (futures.empty()) {
    throw UsageError(
        "wait_any() of no futures would wait forever; valid: at least one");
  }
  AsCompleted<R> range(futures);
  return range.Next();
}

// Waits until every future ended (their outcomes are not taken).
template <class R>
void wait_all(const std::vector<Future<R>>& futures) {
  for (const Future<R>& f : futures) f.wait();
}

}  // namespace fanout

#endif  // FANOUT_CORE_FUTURE_H_
