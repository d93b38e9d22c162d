#include "cli/driver.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands_mode.h"
#include "cli/progress_bar.h"
#include "cli/report.h"
#include "cli/run_workload.h"
#include "cli/signals.h"
#include "core/parallel.h"

namespace fanout::cli {
namespace {

// Under mpirun every rank runs this program and gets the same outcome of
// each call (results, TaskError, TimeoutError, interruption): only the
// primary rank prints it, the others end with the same exit code quietly.
// Set once an executor of this run says this rank is not the primary one.
// Errors a rank may meet alone (out of memory, a thread that cannot start)
// are still printed by whichever rank meets them.
bool g_quiet = false;

// Whether the outcome `e` is the same on every rank (printed once).
bool SameOnEveryRank(const std::exception& e) {
  return dynamic_cast<const TaskError*>(&e) != nullptr ||
         dynamic_cast<const TimeoutError*>(&e) != nullptr ||
         dynamic_cast<const InterruptedError*>(&e) != nullptr ||
         dynamic_cast<const UsageError*>(&e) != nullptr;
}

// A call stopped while tasks on threads still run. At the deadline the run
// ends now, naming them (a thread cannot be stopped, and waiting for a hung
// task would outlive the timeout); after Ctrl+C it says what it waits for.
void ReportStuck(std::FILE* err, const StuckCall& stuck) {
  if (stuck.reason == StopReason::kTimedOut) {
    if (!g_quiet) {
      std::fprintf(err,
                   "run: error: %s (tasks on threads cannot be stopped: "
                   "exiting without waiting for them)\n",
                   stuck.message.c_str());
    }
    std::fflush(nullptr);
    // Not exit(): the stuck threads still run tasks that use this process's
    // memory, which static destructors would free under them.
    std::_Exit(1);
  }
  if (g_quiet) return;
  std::string tasks;
  for (const RunningTask& t : stuck.running) {
    tasks += (tasks.empty() ? "" : ", ") + std::string("task ") +
             std::to_string(t.index) + " on " + t.worker;
  }
  std::fprintf(err,
               "\nrun: interrupted: waiting for %zu running task%s (%s); "
               "Ctrl+C again to stop now\n",
               stuck.running.size(), stuck.running.size() == 1 ? "" : "s",
               tasks.c_str());
  std::fflush(err);
}

// Runs the workload on `backend` and times it; `inject` says whether
// --fail-task applies to this run. Under --errors=collect the failed tasks
// go to `failures` (may be null otherwise).
Timed TimeOn(const std::string& backend, const Request& r, std::FILE* err,
             bool err_is_terminal, bool inject,
             std::vector<TaskError>* failures = nullptr) {
  Options o{.jobs = r.jobs,
            .backend = backend,
            .verbose = r.verbose,
            .batch_size = r.batch_size,
            .timeout = r.timeout,
            .cancel = InterruptScope::flag(),
            .task_timeout = r.task_timeout,
            .worker_memory = r.worker_memory,
            .checkpoint = r.checkpoint,
            .checkpoint_key = CheckpointKey(r),
            .trace = r.trace,
            .trace_summary = r.trace_summary};
  if (r.progress && err_is_terminal) {
    o.on_progress = ProgressBar(err);
  }
  // A stream over --inputs has no call to be stuck in (and refuses it).
  if (r.inputs.empty()) {
    o.on_stuck = [err](const StuckCall& stuck) { ReportStuck(err, stuck); };
  }
  o.retries = r.retries;
  Parallel p(std::move(o));
  Request run = r;
  if (!inject) run.fail_task = -1;
  Timed t;
  t.primary = p.executor().is_primary();
  if (!t.primary) g_quiet = true;
  t.jobs = p.jobs();
  const auto start = std::chrono::steady_clock::now();
  // Said once the call has read the file, whether it then ends or not.
  const auto resumed = [&] {
    const std::size_t done =
        r.workload == "dag" ? LastDagResumed() : p.last_call_resumed();
    if (r.checkpoint.empty() || g_quiet || done == 0) return;
    std::fprintf(err, "run: resumed from %s: %zu of %zu tasks already done\n",
                 r.checkpoint.c_str(), done, r.tasks);
    std::fflush(err);
  };
  // Where the run's time went, however it ended (the trace of a run that
  // threw is written too).
  const auto summary = [&] {
    if (!r.trace_summary || g_quiet) return;
    if (std::optional<TraceSummary> s = p.last_trace_summary()) {
      std::fprintf(err, "%s", to_string(*s).c_str());
      std::fflush(err);
    }
  };
  try {
    t.tasks = r.tasks;
    t.answer = RunWorkload(p, run, failures, &t.tasks);
  } catch (...) {
    resumed();
    summary();
    throw;
  }
  resumed();
  summary();
  if (failures != nullptr) t.failed_tasks = failures->size();
  t.wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return t;
}

void ReportDiffer(std::FILE* err, const std::string& backend, const Timed& got,
                  const Timed& sequential) {
  if (g_quiet) return;  // the same answers on every rank
  std::fprintf(
      err, "run: error: the answers differ: %s gave %s, sequential gave %s\n",
      backend.c_str(), got.answer.c_str(), sequential.answer.c_str());
}

// --compare: sequential first as the baseline, then each backend listed.
int Compare(const Request& r, std::FILE* out, std::FILE* err,
            bool err_is_terminal) {
  std::vector<std::string> backends = {"sequential"};
  for (const auto& b : r.compare) {
    if (b != "sequential") backends.push_back(b);
  }
  std::vector<Timed> rows;
  for (const auto& b : backends) {
    rows.push_back(TimeOn(b, r, err, err_is_terminal, /*inject=*/true));
  }
  bool agree = true;
  bool primary = true;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    primary = primary && rows[k].primary;
    if (rows[k].answer != rows.front().answer) {
      agree = false;
      ReportDiffer(err, backends[k], rows[k], rows.front());
    }
  }
  if (primary) PrintComparison(out, r, backends, rows, agree);
  return agree ? 0 : 1;
}

// One run on r.backend, and one on sequential too for --speedup.
int RunOnce(const Request& r, std::FILE* out, std::FILE* err,
            bool err_is_terminal) {
  std::vector<TaskError> failures;  // under --errors=collect
  const Timed t =
      TimeOn(r.backend, r, err, err_is_terminal, /*inject=*/true, &failures);
  // Every rank has the same failures: the primary one prints them, a line
  // each, in task order.
  for (const TaskError& e : failures) {
    if (!g_quiet) std::fprintf(err, "run: error: %s\n", e.what());
  }
  std::fflush(err);
  Timed seq;
  if (r.speedup) {
    seq = TimeOn("sequential", r, err, err_is_terminal, /*inject=*/false);
  }
  if (t.primary) PrintRun(out, r, t, r.speedup ? &seq : nullptr);
  if (r.speedup && seq.answer != t.answer) {
    ReportDiffer(err, r.backend, t, seq);
    return 1;
  }
  return failures.empty() ? 0 : 1;
}

}  // namespace

void ListBackends(std::FILE* out) {
  for (const std::string& name : backend_names()) {
    std::fprintf(out, "%-12s %s\n", name.c_str(),
                 backend_description(name).c_str());
  }
}

int Run(const Request& r, std::FILE* out, std::FILE* err,
        bool err_is_terminal) {
  InterruptScope interrupts;
  g_quiet = false;
  try {
    if (IsCommandsMode(r))
      return RunCommandsMode(r, out, err, InterruptScope::flag());
    if (!r.compare.empty()) return Compare(r, out, err, err_is_terminal);
    return RunOnce(r, out, err, err_is_terminal);
  } catch (const InterruptedError& e) {
    if (!g_quiet) std::fprintf(err, "\nrun: interrupted: %s\n", e.what());
    return 130;
  } catch (const UsageError& e) {
    if (!g_quiet) std::fprintf(err, "run: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    if (IsCommandsMode(r)) {
      std::fprintf(err,
                   "run: error: out of memory in commands mode (the input, "
                   "and each running command's output until it ends, are "
                   "held in memory)\n");
      return 1;
    }
    // ParseRequest refuses results larger than the machine; this is what
    // is left when the memory in use leaves too little for them.
    std::fprintf(err,
                 "run: error: out of memory for the results of %zu tasks "
                 "(%zu bytes each); try fewer --tasks\n",
                 r.tasks, ResultBytes(r.workload));
    return 1;
  } catch (const std::exception& e) {
    // TaskError, TimeoutError and anything else a run throws.
    if (!g_quiet || !SameOnEveryRank(e)) {
      std::fprintf(err, "run: error: %s\n", e.what());
    }
    return 1;
  }
}

}  // namespace fanout::cli
