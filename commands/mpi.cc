#include "commands/mpi.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "commands/input.h"
#include "commands/joblog.h"
#include "commands/output.h"
#include "commands/process_guard.h"
#include "commands/run_command.h"
#include "core/parallel.h"

namespace fanout::commands {
namespace {

// One command's outcome as it crosses ranks (--backend=mpi): the fields of
// Outcome, its output and the host it ran on.
using RemoteOutcome = std::tuple<int, int, int, int, double, double,
                                 std::string, std::string, std::string>;

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "?";
  return name;
}

}  // namespace

// --backend=mpi: every rank runs commands on its `jobs` slots; rank 0 alone
// prints their output (in input order), the summary and the job log, whose
// Host column names the host each command ran on.
int RunJobsOnMpi(const CommandsOptions& o, std::FILE* out, std::FILE* err,
                 const std::atomic<bool>* cancel) {
  JoblogFile joblog;
  Parallel parallel({.jobs = o.jobs,
                     .backend = "mpi",
                     .batch_size = 1,
                     .cancel = cancel,
                     .trace = o.trace,
                     .trace_summary = o.trace_summary});
  const bool primary = parallel.executor().is_primary();
  if (primary) {
    joblog.Open(o.joblog, o.joblog_append);
    if (!o.results.empty()) CheckResultsDir(o.results);
  }
  const std::string host = HostName();
  StopState stop;
  stop.cancel = cancel;
  if (o.run_timeout.count() > 0) {
    stop.run_deadline = Clock::now() + o.run_timeout;
  }
  const auto started = Clock::now();
  std::vector<RemoteOutcome> results;
  {
    ProcessGuard guard;
    if (primary && o.verbose > 0) {
      std::fprintf(err, "commands: %s\n", guard.containment().c_str());
      std::fflush(err);
    }
    results = parallel.map(o.jobs_list.size(), [&](std::size_t i) {
      const Job& job = o.jobs_list[i];
      const std::string command = CommandLine(o.tmpl, job, 1);
      Outcome outcome;
      std::string o_text, e_text;
      for (int attempt = 1; attempt <= std::max(1, o.tries); ++attempt) {
        o_text.clear();
        e_text.clear();
        outcome =
            RunOne(command, o.timeout_s, stop, guard, o_text, e_text, nullptr);
        if (outcome.ok() || outcome.stopped == Stopped::kCancel) break;
      }
      return RemoteOutcome{outcome.exit_code,
                           outcome.exit_status,
                           outcome.signal,
                           static_cast<int>(outcome.stopped),
                           outcome.start,
                           outcome.runtime,
                           std::move(o_text),
                           std::move(e_text),
                           host};
    });
    guard.KillAdopted();
  }
  if (!primary) return 0;
  Printer printer(out, err, false, false, o.tag);
  // Indices of the failed commands, and what of each was not kept.
  std::vector<std::pair<std::size_t, std::string>> failures;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& [code, status, sig, stopped, start, runtime, o_text, e_text,
                 ran_on] = results[i];
    const Job& job = o.jobs_list[i];
    const std::string command = CommandLine(o.tmpl, job, 1);
    printer.Done(i, o_text, e_text, o.tag ? TagOf(job.args, command) : "");
    std::string lost;
    if (!o.results.empty()) {
      const std::string error =
          WriteResults(o.results, job.seq, command, o_text, e_text, code);
      if (!error.empty()) lost = "--results not kept (" + error + ")";
    }
    const std::string error =
        joblog.Append(FormatJoblogRow({.seq = job.seq,
                                       .host = ran_on,
                                       .start = start,
                                       .runtime = runtime,
                                       .receive = o_text.size() + e_text.size(),
                                       .exitval = status,
                                       .signal = sig,
                                       .command = command}));
    if (!error.empty()) {
      lost += (lost.empty() ? "" : " and ") +
              std::string("its --joblog row was not written (") + error + ")";
    }
    if (code != 0 || !lost.empty()) failures.push_back({i, lost});
  }
  const double wall =
      std::chrono::duration<double>(Clock::now() - started).count();
  const std::size_t failed = failures.size();
  std::fprintf(
      err, "commands: %zu run, %zu ok, %zu failed, %d at a time, %.2f s\n",
      results.size(), results.size() - failed, failed, parallel.jobs(), wall);
  for (const auto& [i, lost] : failures) {
    const auto& [code, status, sig, stopped, start, runtime, o_text, e_text,
                 ran_on] = results[i];
    const Job& job = o.jobs_list[i];
    PrintFailure(
        err, job.seq, CommandLine(o.tmpl, job, 1), code, sig,
        static_cast<Stopped>(stopped) == Stopped::kTimeout ? o.timeout_s : 0,
        lost);
  }
  std::fflush(err);
  if (cancel != nullptr && cancel->load()) return 130;
  return static_cast<int>(
      std::min<std::size_t>(failed, 101));  // as GNU parallel
}

}  // namespace fanout::commands
