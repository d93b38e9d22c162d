// fanout/core/internal/call_scope.h — one call's stop token, progress
// counter and progress monitor, shared by the jobs the call runs.
//
// IWYU pragma: private, include "core/parallel.h"
#ifndef FANOUT_CORE_INTERNAL_CALL_SCOPE_H_
#define FANOUT_CORE_INTERNAL_CALL_SCOPE_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/executor.h"
#include "core/internal/scheduler.h"
#include "core/progress.h"
#include "core/trace.h"

namespace fanout {
struct Options;
}  // namespace fanout

namespace fanout::internal {

class CallTrace;
class TraceFile;

// A Parallel's tracing: its file (null for a summary only, or on an mpi
// rank that is not the primary one) and its last call's summary.
struct TraceState {
  std::shared_ptr<TraceFile> file;
  std::mutex mu;
  std::optional<TraceSummary> last;
};

// One call's stop token, progress counter and progress monitor, shared by
// the jobs it runs (a checkpointed call runs one job per window, and its
// timeout, cancel flag and progress are the whole call's).
class CallScope {
 public:
  // `total` tasks, `done` of them finished before the call (read back from
  // a checkpoint). `count`: keep a progress counter even when nobody
  // watches it (a windowed call's stop message counts the whole call).
  // `trace`: the Parallel's tracing, or null; `label` names the call.
  CallScope(Executor& executor, const Options& options, std::size_t total,
            std::size_t done, bool count, TraceState* trace = nullptr,
            std::string_view label = "call");
  ~CallScope();
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

  // The call's task numbering for the next job (see Job::task_ids).
  void SetTaskIds(const std::size_t* ids) { ids_.store(ids); }
  // Runs one job of the call.
  RunReport Run(const Job& job, RunOptions ro);
  // Sends the last progress event and writes the trace (once; the
  // destructor sends a failed one). Throws when the trace cannot be written.
  void Finish(bool success);
  bool monitored() const { return monitor_ != nullptr; }
  const StopToken& stop() const { return stop_; }
  // The call's trace, or null when it is not traced.
  CallTrace* trace() const { return trace_.get(); }

 private:
  void FinishTrace(bool ok);

  Executor& executor_;
  const std::size_t total_;
  StopToken stop_;
  std::atomic<std::size_t> progress_;
  const bool count_;
  // Read by the monitor's thread when it names tasks still running.
  std::atomic<const std::size_t*> ids_{nullptr};
  std::unique_ptr<TaskWatch> watch_;
  std::unique_ptr<ProgressMonitor> monitor_;
  TraceState* const trace_state_;
  std::unique_ptr<CallTrace> trace_;
};

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_CALL_SCOPE_H_
