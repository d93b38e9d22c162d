// fanout/core/spawn.h — one task started now and waited for later: Python's
// multiprocessing.Process, in both its styles.
//
//   // A function started at once; join() gives its result or throws its error.
//   fanout::SpawnHandle<long> h =
//       fanout::spawn("process", [] { return fib(30); });
//   long r = h.join();  // 832040
//
//   // Process(target=f).start() / .join()
//   fanout::Process p([] { std::puts("hello from a child process"); });
//   p.start();
//   p.join();  // throws fanout::TaskError on failure
//
//   // A Process subclass overriding run()
//   class Worker : public fanout::Process {
//    protected:
//     void run() override { std::puts("working"); }
//   };
//   Worker w;
//   w.start();
//   w.join();
//
// Backends (by name, or an Executor's name):
//   "process"     fork()s one child that runs the task; its result comes back
//                 through a pipe, encoded with core/codec.h (so R must be
//                 trivially copyable or serializable, and default
//                 constructible; for another R, spawn throws UsageError on
//                 this backend only). The child writes nothing else and ends
//                 with _exit(), after flushing stdio; stdio is also flushed
//                 before the fork so buffered output is not printed twice. It
//                 works whether or not the process backend is linked. As the
//                 process backend's workers, the child starts with default
//                 signal handling and an empty signal mask, and is killed
//                 (PR_SET_PDEATHSIG) when the thread that started it ends,
//                 so a caller killed even by SIGKILL leaves no orphan. Start
//                 it from a thread that lives until the child has ended.
//   "thread"      one std::thread.
//   "sequential"  runs the task inside spawn(); join() reports the outcome.
//
// Errors: join() throws fanout::TaskError (index 0, the backend, the worker:
// "pid 4242" or "thread"). For an exception it names its type and message;
// for a child that died, the signal ("child killed by SIGSEGV (Segmentation
// fault)"; for SIGKILL it adds "possibly out of memory") or the exit status.
// A handle destroyed without join() waits for its task (nothing is left
// running) and drops its outcome. join() may be called once.
#ifndef FANOUT_CORE_SPAWN_H_
#define FANOUT_CORE_SPAWN_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "core/codec.h"
#include "core/errors.h"
#include "core/executor.h"

namespace fanout {
namespace internal {

// Runs one body on a thread, in a fork()ed child, or inline; non-template
// half of SpawnHandle and Process.
class Launch {
 public:
  enum class Kind { kSequential, kThread, kProcess };

  // The kind for a backend name; throws UsageError naming the valid ones.
  static Kind KindOf(std::string_view backend);
  // The kind for an executor: its name when that is one of the above, else
  // thread for an executor that shares memory; UsageError otherwise.
  static Kind KindOf(const Executor& executor);

  // Body: runs the task. In a child process it encodes the result into *out
  // (sent back to the parent); elsewhere it keeps the result itself and `out`
  // is null.
  using Body = std::function<void(std::string* out)>;

  Launch(Kind kind, std::string backend)
      : kind_(kind), backend_(std::move(backend)) {}
  ~Launch();  // waits for a started body; its outcome is dropped
  Launch(const Launch&) = delete;
  Launch& operator=(const Launch&) = delete;

  // Starts the body (once).
  void Start(Body body);
  // Waits for it; returns the bytes a child sent ("" for other kinds).
  // Throws TaskError when the body threw or the child died, UsageError when
  // not started or already waited for.
  std::string Wait();
  // True from Start until the body has ended (it may not be waited for yet).
  bool Running() const;

  Kind kind() const { return kind_; }
  const std::string& backend() const { return backend_; }
  pid_t pid() const { return pid_; }

 private:
  struct ThreadState;
  TaskError MakeError(std::string type, std::string message, int signal,
                      int exit_status, std::exception_ptr original) const;

  const Kind kind_;
  const std::string backend_;
  bool started_ = false;
  bool waited_ = false;
  pid_t pid_ = 0;
  int read_fd_ = -1;
  std::shared_ptr<ThreadState> thread_;
  std::optional<TaskFailure> inline_failure_;
};

// True when a task's result can come back from a child process.
template <class R>
inline constexpr bool kCrossesProcesses =
    std::is_void_v<R> || codec::kCanCross<R>;

}  // namespace internal

// A started task. join() gives its result (R), or throws its TaskError.
template <class R>
class SpawnHandle {
 public:
  SpawnHandle(std::unique_ptr<internal::Launch> launch,
              std::shared_ptr<std::optional<R>> slot)
      : launch_(std::move(launch)), slot_(std::move(slot)) {}

  // Waits for the task; its value, or throws fanout::TaskError.
  R join() {
    std::string bytes = launch_->Wait();
    if constexpr (internal::kCrossesProcesses<R>) {
      if (launch_->kind() == internal::Launch::Kind::kProcess) {
        return codec::decode<R>(bytes);
      }
    }
    return std::move(**slot_);
  }
  // True while the task runs.
  bool running() const { return launch_->Running(); }
  // The child's pid on the process backend, else 0.
  pid_t pid() const { return launch_->pid(); }
  const std::string& backend() const { return launch_->backend(); }

 private:
  std::unique_ptr<internal::Launch> launch_;
  std::shared_ptr<std::optional<R>> slot_;  // thread and sequential results
};

template <>
class SpawnHandle<void>;

namespace internal {

template <class R, class F>
SpawnHandle<R> SpawnAs(Launch::Kind kind, std::string backend, F f) {
  if constexpr (!kCrossesProcesses<R>) {
    if (kind == Launch::Kind::kProcess) {
      throw UsageError(
          "spawn: the task's result type cannot come back from a child "
          "process: make it trivially copyable or give it a serialize() "
          "(core/codec.h), or use the thread backend");
    }
  }
  auto launch = std::make_unique<Launch>(kind, std::move(backend));
  using Stored = std::conditional_t<std::is_void_v<R>, char, R>;
  auto slot = std::make_shared<std::optional<Stored>>();
  launch->Start([f = std::move(f), slot, kind](std::string* out) mutable {
    if constexpr (std::is_void_v<R>) {
      std::invoke(f);
    } else if (kind == Launch::Kind::kProcess) {
      if constexpr (kCrossesProcesses<R>) codec::encode(std::invoke(f), *out);
    } else {
      slot->emplace(std::invoke(f));
    }
  });
  if constexpr (std::is_void_v<R>) {
    return SpawnHandle<R>(std::move(launch), nullptr);
  } else {
    return SpawnHandle<R>(std::move(launch), std::move(slot));
  }
}

}  // namespace internal

// The void handle: join() returns nothing but still throws the task's error.
template <>
class SpawnHandle<void> {
 public:
  SpawnHandle(std::unique_ptr<internal::Launch> launch, std::nullptr_t)
      : launch_(std::move(launch)) {}
  void join() { launch_->Wait(); }
  bool running() const { return launch_->Running(); }
  pid_t pid() const { return launch_->pid(); }
  const std::string& backend() const { return launch_->backend(); }

 private:
  std::unique_ptr<internal::Launch> launch_;
};

// Starts f() at once on the named backend ("process", "thread",
// "sequential"); throws UsageError for another name.
template <class F>
requires std::invocable<F&> SpawnHandle<std::invoke_result_t<F&>> spawn(
    std::string_view backend, F f) {
  return internal::SpawnAs<std::invoke_result_t<F&>>(
      internal::Launch::KindOf(backend), std::string(backend), std::move(f));
}

// Starts f() at once the way `executor` runs tasks: in a child process for
// the process backend, on a thread for one that shares memory.
template <class F>
requires std::invocable<F&> SpawnHandle<std::invoke_result_t<F&>> spawn(
    const Executor& executor, F f) {
  return internal::SpawnAs<std::invoke_result_t<F&>>(
      internal::Launch::KindOf(executor), std::string(executor.name()),
      std::move(f));
}

// Python's multiprocessing.Process: a target, or a subclass's run(), started
// by start() and waited for by join(). A subclass must join() before its own
// members are destroyed (~Process joins too, but on the thread backend that
// is after the subclass is gone).
class Process {
 public:
  // Runs target() when started.
  explicit Process(std::function<void()> target,
                   const std::string& backend = "process");
  // For subclasses: runs run() when started.
  explicit Process(const std::string& backend = "process");
  virtual ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts the task; throws UsageError when already started.
  void start();
  // Waits for it; throws fanout::TaskError when run() threw or the child
  // died, UsageError when not started or already joined.
  void join();
  // True from start() until run() has ended.
  bool is_alive() const;
  // The child's pid on the process backend once started, else 0.
  pid_t pid() const;

 protected:
  // The task: calls the target given to the constructor.
  virtual void run();

 private:
  std::function<void()> target_;
  internal::Launch launch_;
};

}  // namespace fanout

#endif  // FANOUT_CORE_SPAWN_H_
