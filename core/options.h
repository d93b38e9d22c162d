// fanout/core/options.h — the options of a call, shared by fanout::Parallel
// (core/parallel.h, where each is explained with its example) and
// fanout::Pool (core/pool.h):
//
//   fanout::Parallel p({.jobs = -1, .backend = "process", .timeout = std::chrono::seconds(5)});
//   fanout::Pool pool({.jobs = 4, .backend = "thread", .max_in_flight = 64});
#ifndef FANOUT_CORE_OPTIONS_H_
#define FANOUT_CORE_OPTIONS_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/executor.h"
#include "core/progress.h"

namespace fanout {

struct Options {
  int jobs = -1;
  std::string backend = "thread";
  int verbose = 0;
  std::size_t batch_size = 0;
  ErrorPolicy errors = ErrorPolicy::kFailFast;
  std::chrono::milliseconds timeout{0};
  ProgressCallback on_progress = nullptr;
  // Raised by the caller (e.g. from a signal handler) to stop the call between
  // chunks; the call then throws InterruptedError. May be null.
  const std::atomic<bool>* cancel = nullptr;
  // Called once, on the monitor thread, when the call was stopped (timeout
  // or cancel) but tasks that cannot be stopped from outside (on threads:
  // thread, tbb, sequential) are still running 100 ms later. It gets the
  // reason, the tasks still running and the message of the error the call
  // will throw once they return. The call itself keeps waiting: a running
  // thread cannot be killed, and its task may use the caller's memory. A
  // program may report it and end itself (the CLI does); the process
  // backend kills its workers at the deadline instead, so it never calls
  // this.
  std::function<void(const StuckCall&)> on_stuck = nullptr;
  // A task that throws is run again, on the same worker, up to `retries`
  // times (0: never); only for exceptions whose type is in `retry_on`
  // (demangled, e.g. "std::runtime_error"; empty: any). A task that fails
  // every attempt fails the call as usual, its message ending "(failed N
  // attempts)". On process, a task whose worker dies (a signal, an exit, an
  // OOM kill, task_timeout) is run again the same way, in a new worker, up
  // to `retries` times whatever retry_on says (a death has no exception
  // type). map_reduce never retries (a group would run again).
  int retries = 0;
  std::vector<std::string> retry_on = {};
  // process only (a UsageError before any task runs elsewhere: a thread
  // cannot be stopped or limited from outside). A task running longer than
  // task_timeout (0: none) has its worker killed and fails with "timed out
  // after N ms" (or is retried); the call goes on with a new worker.
  std::chrono::milliseconds task_timeout{0};
  // process only. Bytes each worker may allocate beyond what it inherits
  // from the caller at fork (0: none); a task that needs more fails with
  // "exceeded the worker memory limit of 256 MiB" (see
  // backends/process/memory_limit.h). With either limit set, even a call of
  // jobs = 1 or one task runs in a worker, so the limit holds.
  std::size_t worker_memory = 0;
  // Checkpoint and resume (see the top of this file): the journal file,
  // empty for none, and the user's name for the job, recorded in the file
  // so that a file of another job is refused rather than read back.
  std::string checkpoint = {};
  std::string checkpoint_key = {};
  // Where the time goes (core/trace.h): the Chrome trace-event JSON file
  // every call of this Parallel appends to (empty: $FANOUT_TRACE, if set),
  // refused with a UsageError here, before any task runs, when it cannot be
  // written; and whether to keep each call's summary for
  // last_trace_summary() (a trace file keeps one too).
  std::string trace = {};
  bool trace_summary = false;
  // imap and imap_unordered over an input range (of unknown length): at
  // most this many tasks submitted and not yet yielded; -1 (the default)
  // is 4 x jobs. 0 and other negative values are a UsageError. With imap
  // over n tasks, windows are cut to at most this many pending tasks.
  int max_in_flight = -1;
};

}  // namespace fanout

#endif  // FANOUT_CORE_OPTIONS_H_
