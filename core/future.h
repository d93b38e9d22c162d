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
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "core/codec.h"
#include "core/errors.h"
#include "core/internal/checkpoint.h"
#include "core/internal/pool_core.h"

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

namespace internal {

template <class T>
struct IsFuture : std::false_type {};
template <class T>
struct IsFuture<Future<T>> : std::true_type {};

// What a task receives for a stored argument: a Future's value, or the
// argument itself.
template <class A>
struct ArgOf {
  using type = A&;
};
template <class T>
struct ArgOf<Future<T>> {
  using type = const T&;
};

// A node with a result of type R.
template <class R>
struct ValueNode : NodeBase {
  using NodeBase::NodeBase;
  std::optional<R> value;
};
template <>
struct ValueNode<void> : NodeBase {
  using NodeBase::NodeBase;
};

template <class T>
NodeBase* NodeOf(const Future<T>& f);

// Makes the future of a node that was just submitted.
struct FutureAccess {
  template <class R>
  static Future<R> Make(NodeBase* node) {
    return Future<R>(node);
  }
};

template <class R, class F, class... A>
class TaskNode final : public ValueNode<R> {
 public:
  static constexpr int kInputs = (0 + ... + (IsFuture<A>::value ? 1 : 0));

  TaskNode(F f, A... args)
      : ValueNode<R>(&kOps),
        f_(std::move(f)),
        args_(std::in_place, std::move(args)...) {
    int k = 0;
    std::apply([&](auto&... a) { (AddEdge(a, &k), ...); }, *args_);
    this->edges = edges_;
    this->n_edges = kInputs;
  }

  // The inputs, for the checks made before the node is submitted.
  void Inputs(NodeBase** out) const {
    for (int k = 0; k < kInputs; ++k) out[k] = edges_[k].input;
  }

 private:
  template <class X>
  void AddEdge(X& x, int* k) {
    if constexpr (IsFuture<X>::value) edges_[(*k)++].input = NodeOf(x);
  }
  template <class X>
  static decltype(auto) Arg(X& x) {
    if constexpr (IsFuture<X>::value) {
      using T = typename X::value_type;
      return static_cast<const T&>(
          *static_cast<const ValueNode<T>*>(NodeOf(x))->value);
    } else {
      return static_cast<X&>(x);
    }
  }

  static void Run(NodeBase* base) {
    auto* self = static_cast<TaskNode*>(base);
    std::apply(
        [self](auto&... a) {
          if constexpr (std::is_void_v<R>) {
            std::invoke(*self->f_, Arg(a)...);
          } else {
            self->value.emplace(std::invoke(*self->f_, Arg(a)...));
          }
        },
        *self->args_);
  }
  static void Encode(const NodeBase* base, std::string* out) {
    if constexpr (!std::is_void_v<R>) {
      if constexpr (Journalable<R>()) {
        codec::encode(*static_cast<const TaskNode*>(base)->value, *out);
      }
    }
  }
  static void Decode(NodeBase* base, std::string_view bytes) {
    if constexpr (!std::is_void_v<R>) {
      if constexpr (Journalable<R>()) {
        static_cast<TaskNode*>(base)->value.emplace(codec::decode<R>(bytes));
      }
    }
  }
  static void DropTask(NodeBase* base) {
    auto* self = static_cast<TaskNode*>(base);
    self->args_.reset();
    self->f_.reset();
  }
  static void Destroy(NodeBase* base) { delete static_cast<TaskNode*>(base); }

  static inline const NodeOps kOps = {&Run,      &Encode,  &Decode,
                                      &DropTask, &Destroy, typeid(F).name()};

  std::optional<F> f_;
  std::optional<std::tuple<A...>> args_;
  Edge edges_[kInputs > 0 ? kInputs : 1];
};

// Throws the UsageError for Options a submitted task cannot honour.
void RefuseCallOptions(const Options& options);

}  // namespace internal

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

namespace internal {

// Submits f(args...) to `pool` (Pool::submit, and streams over a range).
template <class F, class... Args>
auto SubmitTo(PoolCore& pool, F&& f, Args&&... args) {
  using Fn = std::decay_t<F>;
  using R =
      std::invoke_result_t<Fn&, typename ArgOf<std::decay_t<Args>>::type...>;
  static_assert((... && !std::is_same_v<std::decay_t<Args>, Future<void>>),
                "a Future<void> has no value to pass to a task");
  using Node = TaskNode<R, Fn, std::decay_t<Args>...>;
  auto node = std::make_unique<Node>(
      Fn(std::forward<F>(f)), std::decay_t<Args>(std::forward<Args>(args))...);
  NodeBase* inputs[Node::kInputs > 0 ? Node::kInputs : 1];
  node->Inputs(inputs);
  bool crosses = true;
  if constexpr (!std::is_void_v<R>) {
    crosses = Journalable<R>();
  }
  pool.CheckSubmit(crosses, typeid(R), inputs, Node::kInputs);
  node->refs.store(2, std::memory_order_relaxed);  // the future's, the pool's
  pool.Submit(node.get());  // may refuse; takes the node once it returns
  return FutureAccess::Make<R>(node.release());
}

}  // namespace internal

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
