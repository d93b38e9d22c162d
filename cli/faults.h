// fanout/cli/faults.h — the CLI's fault injection: --fail-task=N makes task N
// fail in the way --fail-mode names, to show how each backend reports it;
// --fail-attempts=K fails only its first K attempts, to show retries.
//
//   FailMode mode = ParseFailMode("segv");  // throws UsageError if unknown
//   FaultInjector inject(/*task=*/17, FailMode::kThrow, /*attempts=*/1);
//   parallel.map(n, [&](std::size_t i) { inject.MaybeFail(i); ... });
#ifndef FANOUT_CLI_FAULTS_H_
#define FANOUT_CLI_FAULTS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace fanout::cli {

enum class FailMode { kNone, kThrow, kSegv, kAbort, kExit, kHang, kOom };

// The mode named `name` (throw, segv, abort, exit, hang, oom); throws
// fanout::UsageError naming the valid ones otherwise.
FailMode ParseFailMode(const std::string& name);

// Fails task `task` as `mode` says: throws, raises SIGSEGV, aborts, calls
// exit(3), sleeps for ever, or allocates and touches memory until an
// allocation fails (std::bad_alloc; the CLI allows it only with
// --worker-memory, whose limit then stops it). On in-process backends all but kThrow end the
// whole program, as they would in the user's own code; exit(3) there ends
// it with status 3 and "fanout: a task called exit(3) while a call was
// running on backend 'thread'; its results are lost" (on process, the
// worker exits with status 3 and the call names it).
[[noreturn]] void Fail(FailMode mode, std::size_t task);

// --fail-task, --fail-mode and --fail-attempts for one run: task `task`
// fails as `mode` says on its first `attempts` attempts (0: on every one).
// Make one per run, before the call: the attempts are counted from 0.
class FaultInjector {
 public:
  // `task` < 0 injects nothing. Throws std::system_error when the counter's
  // shared page cannot be mapped.
  FaultInjector(long long task, FailMode mode, long long attempts);
  ~FaultInjector();
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  // Called at the start of task `i`, from any worker of any backend.
  void MaybeFail(std::size_t i) const {
    if (static_cast<long long>(i) != task_) return;
    if (attempts_ != nullptr &&
        attempts_->fetch_add(1, std::memory_order_relaxed) >=
            static_cast<std::uint64_t>(fail_attempts_)) {
      return;  // a later attempt than the ones that fail: it succeeds
    }
    Fail(mode_, i);
  }

 private:
  const long long task_;
  const FailMode mode_;
  const long long fail_attempts_;
  // The task's attempts so far, in a MAP_SHARED page mapped before the
  // call; null when every attempt fails (nothing to count).
  std::atomic<std::uint64_t>* attempts_ = nullptr;
};

}  // namespace fanout::cli

#endif  // FANOUT_CLI_FAULTS_H_
