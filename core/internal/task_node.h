// fanout/core/internal/task_node.h — a submitted task as the pool holds it:
// the node that stores f, its arguments and its value (TaskNode), what a
// task receives for a Future argument (ArgOf), a checkpointed pool's
// fingerprint of a task, and SubmitTo, which builds the node and hands it to
// the pool (core/internal/pool_core.h schedules it). core/future.h is the
// public face.
// IWYU pragma: private, include "core/future.h"
#ifndef FANOUT_CORE_INTERNAL_TASK_NODE_H_
#define FANOUT_CORE_INTERNAL_TASK_NODE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "core/codec.h"
#include "core/internal/checkpoint.h"
#include "core/internal/pool_core.h"

namespace fanout {

template <class R>
class Future;
struct Options;

namespace internal {

template <class T>
struct IsFuture : std::false_type {};
template <class T>
struct IsFuture<Future<T>> : std::true_type {};

// A checkpointed pool's fingerprint of a task: its function's and result's
// types, the submission numbers of its inputs, and the codec bytes of its
// plain arguments that have them (the type's name for others).
inline std::uint64_t FingerprintMix(std::uint64_t h, std::string_view bytes) {
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;  // FNV-1a
  return h;
}

template <class R, class F, class... A>
std::uint64_t TaskFingerprint(const std::tuple<A...>& args) {
  std::uint64_t h = FingerprintMix(0xcbf29ce484222325ULL, typeid(F).name());
  h = FingerprintMix(h, typeid(R).name());
  std::string bytes;
  std::apply(
      [&](const auto&... a) {
        const auto one = [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          bytes.clear();
          if constexpr (IsFuture<X>::value) {
            bytes = "future " + std::to_string(x.id());
          } else if constexpr (Journalable<X>()) {
            codec::encode(x, bytes);
          } else {
            bytes = typeid(X).name();
          }
          h = FingerprintMix(h, std::to_string(bytes.size()));
          h = FingerprintMix(h, bytes);
        };
        (one(a), ...);
        (void)one;  // a task of no arguments
      },
      args);
  return h;
}

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

  explicit TaskNode(F f, A... args)
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
  // For a checkpointed pool: see TaskFingerprint.
  std::uint64_t Fingerprint() const { return TaskFingerprint<R, F>(*args_); }

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
// Throws the UsageError for a bulk call on a pool with a checkpoint.
void RefuseBulkCheckpoint(const Options& options);

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
  if (pool.journaling()) node->fingerprint = node->Fingerprint();
  node->refs.store(2, std::memory_order_relaxed);  // the future's, the pool's
  pool.Submit(node.get());  // may refuse; takes the node once it returns
  return FutureAccess::Make<R>(node.release());
}

}  // namespace internal
}  // namespace fanout

#endif  // FANOUT_CORE_INTERNAL_TASK_NODE_H_
