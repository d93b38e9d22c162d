// fanout/core/pool.h — work that arrives over time: a pool of workers that
// lives until it is closed, tasks submitted one by one, futures, tasks that
// wait for other tasks' results, and cancellation. The same backends as
// fanout::Parallel, picked by name at run time.
//
//   #include "core/pool.h"
//
//   fanout::Pool pool({.jobs = -1, .backend = "process"});
//   fanout::Future<long long> a = pool.submit(process, 10);
//   fanout::Future<long long> b = pool.submit(process, 20);
//   // A future passed as an argument: the task runs once a and b are done,
//   // and gets their values (no worker waits for them meanwhile).
//   fanout::Future<long long> c =
//       pool.submit([](long long x, long long y) { return x + y; }, a, b);
//   long long total = c.get();  // or throws the TaskError of c, a or b
//
//   std::vector<fanout::Future<int>> fs;
//   for (int n : {38, 37, 36}) fs.push_back(pool.submit(fib, n));
//   for (fanout::Future<int>& f : fanout::as_completed(fs)) use(f.get());
//
//   fanout::Future<void> slow = pool.submit([] {
//     while (!fanout::this_task::stop_requested()) step();
//   });
//   slow.cancel();  // the future reports cancelled at once (see below)
//
// Python → fanout: concurrent.futures' Executor.submit / Future.result /
// as_completed / wait(FIRST_COMPLETED) are Pool::submit / Future::get /
// fanout::as_completed / fanout::wait_any; multiprocessing's
// Pool.apply_async(f, args).get() is pool.submit(f, args...).get(); Dask's
// client.submit(f, future) is pool.submit(f, future); ray.cancel(ref) is
// future.cancel().
//
// Futures. get() waits and returns the value, or throws: the task's
// TaskError (naming the task by its submission number, from 0), a
// CancelledError for a cancelled task, or the error that stopped its
// workers (InterruptedError for Ctrl+C). A future's outcome is taken once:
// a second get() (of it or a copy of it) is a UsageError. wait(),
// wait_for(d) and ready() do not take it. Futures may be copied (they share
// one task) and outlive neither their pool's close() nor its destruction
// usefully: both end every task first.
//
// Dependencies. A Future<T> argument makes the task wait until that task is
// done; the function then receives its value as `const T&` (the value is
// read in place, never copied; a later get() of the input still gets it).
// A task whose input failed or was cancelled never runs: its future fails
// with a TaskError naming that input and its error, and so on down the
// graph. Inputs are futures that exist already, so a cycle cannot be built,
// and no worker ever blocks waiting for one, so any graph runs with
// jobs = 1. A get() or wait() inside a task of the same pool: on thread and
// tbb the waiting worker runs other queued tasks meanwhile (it helps); on
// sequential the queued tasks run there; on process and mpi it is refused
// with a UsageError (a forked worker or another rank cannot see the pool's
// later results): pass the future as an argument instead.
//
// Cancellation. cancel() ends a task that has not ended: the future reports
// CancelledError at once, its dependents fail, and it returns true (false
// when the task had ended). A task not yet started never runs. A running
// task: on process its worker is killed and replaced (the generation's
// other tasks and results are kept); on thread, tbb and sequential it runs
// on, and fanout::this_task::stop_requested() turns true for it so that it
// can return early (its result is dropped); on mpi the same, on the rank
// whose cancel() reached it. Closing or destroying the pool cancels every
// task not yet started, kills running ones on process, lets running ones
// on threads see stop_requested(), and waits until nothing of the pool
// runs.
//
// How each backend runs a pool (see core/internal/pool_core.h):
//   thread, tbb  tasks queue in the pool and up to `jobs` of the backend's
//                own threads (the thread backend's pool, tbb's arena) take
//                them one at a time; a thread that waits for a future runs
//                queued tasks while fewer than `jobs` threads do.
//   process      generations: the tasks queued when the pool is idle are
//                forked as one generation of workers (min(jobs, tasks)) from
//                the caller as it is then, so any closure works, and its
//                results come back through the codec; tasks submitted while
//                a generation runs go to the next one, forked when it ends.
//                Dead workers are replaced as in map().
//   sequential   nothing runs at submit(): the tasks queued run, in
//                submission order, on the thread that waits for one (get,
//                wait, as_completed, wait_all), deterministically.
//   mpi          every rank makes the same submits in the same order (SPMD)
//                and runs the queued tasks as one call when it waits, as
//                sequential does; rank 0 schedules them over every rank and
//                every rank's futures get every value. Ranks that submitted
//                different tasks are refused on every rank (the call's
//                fingerprint differs), never a mix of results.
//
// Options are Parallel's. Submitted tasks use jobs, backend, batch_size (a
// generation's chunks), retries and retry_on (a task is run again on the
// same worker), task_timeout and worker_memory (process). errors applies to
// the pool's map calls: each submitted task has its own outcome. timeout,
// cancel, verbose, on_progress and on_stuck apply to the pool's map, imap
// and map_reduce calls; submit() refuses them (use Future::wait_for), so
// that none is silently ignored.
#ifndef FANOUT_CORE_POOL_H_
#define FANOUT_CORE_POOL_H_

#include <chrono>
#include <concepts>
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

#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/checkpoint.h"
#include "core/internal/pool_core.h"
#include "core/parallel.h"

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
      if constexpr (Journalable<R>() && std::is_default_constructible_v<R>) {
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

// A pool of workers on one backend, alive until close() or destruction.
class Pool {
 public:
  // Makes the executor named by options.backend (UsageError for an unknown
  // one or jobs == 0).
  explicit Pool(Options options = {})
      : parallel_(std::move(options)),
        core_(std::make_unique<internal::PoolCore>(
            std::shared_ptr<Executor>(&parallel_.executor(), [](Executor*) {}),
            parallel_.options())) {}
  // Cancels what has not started and waits until nothing of it runs.
  ~Pool() { close(); }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs f(args...) on a worker (see the top of this file); a Future<T>
  // argument is waited for and passed as its value. Arguments are copied
  // into the task (as joblib's delayed does).
  template <class F, class... Args>
  requires std::invocable < std::decay_t<F>
  &, typename internal::ArgOf<std::decay_t<Args>>::type... >
         auto submit(F&& f, Args&&... args) {
    using Fn = std::decay_t<F>;
    using R = std::invoke_result_t<
        Fn&, typename internal::ArgOf<std::decay_t<Args>>::type...>;
    static_assert((... && !std::is_same_v<std::decay_t<Args>, Future<void>>),
                  "a Future<void> has no value to pass to a task");
    using Node = internal::TaskNode<R, Fn, std::decay_t<Args>...>;
    internal::RefuseCallOptions(parallel_.options());
    auto node =
        std::make_unique<Node>(Fn(std::forward<F>(f)),
                               std::decay_t<Args>(std::forward<Args>(args))...);
    internal::NodeBase* inputs[Node::kInputs > 0 ? Node::kInputs : 1];
    node->Inputs(inputs);
    bool crosses = true;
    if constexpr (!std::is_void_v<R>) {
      crosses =
          internal::Journalable<R>() && std::is_default_constructible_v<R>;
    }
    core_->CheckSubmit(crosses, internal::TypeName(typeid(R)).c_str(), inputs,
                       Node::kInputs);
    node->refs.store(2, std::memory_order_relaxed);  // the future's, the pool's
    core_->Submit(node.get());  // may refuse; takes the node once it returns
    return Future<R>(node.release());
  }

  // Waits until every task submitted so far ended.
  void wait_all() { core_->WaitAll(); }
  // Refuses further submits, cancels every task not yet started, and waits
  // until nothing of the pool runs (see the top of this file). Idempotent.
  void close() { core_->Close(); }

  // Bulk calls on the pool's backend, as Parallel's (see core/parallel.h).
  template <class... A>
  auto map(A&&... a)
      -> decltype(std::declval<Parallel&>().map(std::forward<A>(a)...)) {
    return parallel_.map(std::forward<A>(a)...);
  }
  template <class... A>
  auto try_map(A&&... a)
      -> decltype(std::declval<Parallel&>().try_map(std::forward<A>(a)...)) {
    return parallel_.try_map(std::forward<A>(a)...);
  }
  template <class... A>
  void for_each(A&&... a) {
    parallel_.for_each(std::forward<A>(a)...);
  }
  template <class... A>
  auto map_reduce(A&&... a)
      -> decltype(std::declval<Parallel&>().map_reduce(std::forward<A>(a)...)) {
    return parallel_.map_reduce(std::forward<A>(a)...);
  }
  template <class... A>
  auto imap(A&&... a)
      -> decltype(std::declval<Parallel&>().imap(std::forward<A>(a)...)) {
    return parallel_.imap(std::forward<A>(a)...);
  }
  template <class... A>
  auto imap_unordered(A&&... a)
      -> decltype(std::declval<Parallel&>().imap_unordered(
          std::forward<A>(a)...)) {
    return parallel_.imap_unordered(std::forward<A>(a)...);
  }

  Parallel& parallel() { return parallel_; }
  Executor& executor() const { return parallel_.executor(); }
  int jobs() const { return parallel_.jobs(); }

 private:
  Parallel parallel_;
  std::unique_ptr<internal::PoolCore> core_;
};

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

#endif  // FANOUT_CORE_POOL_H_
