#include "cli/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cli/command_input.h"
#include "cli/command_output.h"
#include "cli/commands_mpi.h"
#include "cli/joblog.h"
#include "cli/process_guard.h"
#include "cli/run_command.h"
#include "core/errors.h"
#include "core/executor.h"

namespace fanout::cli {
namespace {

using Clock = std::chrono::steady_clock;

// What a finished command left for the summary.
struct Finished {
  std::size_t seq = 0;
  std::string command;
  Outcome outcome;
  bool ran = false;
};

// The run: workers claim jobs in input order, run them, and report each
// finish under one lock (output, job log, halt rule, progress).
class Runner {
 public:
  Runner(const CommandsOptions& o, std::FILE* out, std::FILE* err,
         const std::atomic<bool>* cancel)
      : o_(o),
        printer_(out, err, o.keep_order, o.line_buffer, o.tag),
        err_(err) {
    stop_.cancel = cancel;
    if (o.run_timeout.count() > 0) {
      stop_.run_deadline = Clock::now() + o.run_timeout;
    }
  }

  int Run() {
    joblog_.Open(o_.joblog, o_.resume || o_.resume_failed);
    if (!o_.results.empty() && mkdir(o_.results.c_str(), 0777) != 0 &&
        errno != EEXIST) {
      throw UsageError("--results=" + o_.results + ": cannot create: " +
                       std::strerror(errno) + "; valid: a directory path");
    }
    for (const Job& job : o_.jobs_list) {
      if (!o_.joblog.empty() && (o_.resume || o_.resume_failed) &&
          joblog_.Skip(job.seq, o_.resume_failed)) {
        ++skipped_;
        continue;
      }
      todo_.push_back(&job);
    }
    printer_.Expect(todo_.size());
    finished_.resize(todo_.size());
    const int jobs = resolve_jobs(o_.jobs);
    jobs_ = jobs;
    if (o_.dry_run) return DryRun();
    const auto started = Clock::now();
    run_started_ = started;
    {
      ProcessGuard guard;
      guard_ = &guard;
      const int workers = static_cast<int>(
          std::min<std::size_t>(static_cast<std::size_t>(jobs), todo_.size()));
      std::vector<std::thread> threads;
      for (int k = 1; k < workers; ++k) {
        threads.emplace_back([this, k] { Work(k + 1); });
      }
      if (workers > 0) Work(1);
      for (std::thread& t : threads) t.join();
      guard.KillAdopted();
    }
    printer_.Finish();
    if (progress_shown_) std::fputs("\r\033[K", err_);
    return Summarize(
        std::chrono::duration<double>(Clock::now() - started).count());
  }

 private:
  int DryRun() {
    for (std::size_t i = 0; i < todo_.size(); ++i) {
      const int slot =
          static_cast<int>(i % static_cast<std::size_t>(jobs_)) + 1;
      printer_.Line(CommandLine(o_.tmpl, *todo_[i], slot) + "\n");
    }
    return 0;
  }

  // Waits for this command's turn to start under --delay: each start takes
  // the next slot, `delay` after the one before.
  void WaitTurn() {
    if (o_.delay_s <= 0) return;
    Clock::time_point mine;
    {
      std::lock_guard<std::mutex> lock(delay_mu_);
      mine = std::max(Clock::now(), next_start_);
      next_start_ = mine + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(o_.delay_s));
    }
    std::this_thread::sleep_until(mine);
  }

  void Work(int slot) {
    for (;;) {
      if (stop_.no_new.load() || stop_.Now() != Stopped::kNo) return;
      const std::size_t i = next_.fetch_add(1);
      if (i >= todo_.size()) return;
      WaitTurn();
      if (stop_.no_new.load() || stop_.Now() != Stopped::kNo) return;
      const Job& job = *todo_[i];
      const std::string command = CommandLine(o_.tmpl, job, slot);
      const std::string tag = o_.tag ? TagOf(job.args, command) : "";
      Outcome outcome;
      std::string out, err;
      for (int attempt = 1; attempt <= std::max(1, o_.tries); ++attempt) {
        out.clear();
        err.clear();
        StreamState live;
        std::function<void()> drain;
        if (o_.line_buffer) {
          drain = [&] { printer_.Live(out, err, tag, &live, false); };
        }
        try {
          outcome =
              RunOne(command, o_.timeout_s, stop_, *guard_, out, err, drain);
        } catch (const std::exception& e) {
          err += std::string("run: ") + e.what() + "\n";
          outcome = Outcome{.exit_code = 127, .exit_status = 127};
        }
        if (o_.line_buffer) printer_.Live(out, err, tag, &live, true);
        if (outcome.ok() || outcome.stopped == Stopped::kCancel ||
            outcome.stopped == Stopped::kHalt || stop_.no_new.load()) {
          break;
        }
      }
      Finish(i, job, command, tag, outcome, out, err);
    }
  }

  void Finish(std::size_t i, const Job& job, const std::string& command,
              const std::string& tag, const Outcome& outcome,
              const std::string& out, const std::string& err) {
    const bool by_us = outcome.stopped == Stopped::kCancel ||
                       outcome.stopped == Stopped::kHalt;
    std::lock_guard<std::mutex> lock(mu_);
    finished_[i] = {job.seq, command, outcome, true};
    if (!o_.results.empty()) {
      WriteResults(o_.results, job.seq, command, out, err, outcome.exit_code);
    }
    if (!by_us) {
      joblog_.Write(FormatJoblogRow({.seq = job.seq,
                                     .start = outcome.start,
                                     .runtime = outcome.runtime,
                                     .receive = out.size() + err.size(),
                                     .exitval = outcome.exit_status,
                                     .signal = outcome.signal,
                                     .command = command}));
      (outcome.ok() ? ok_ : failed_) += 1;
    }
    printer_.Done(i, o_.line_buffer ? std::string() : out,
                  o_.line_buffer ? std::string() : err, tag);
    Progress();
    if (!by_us && !halted_ &&
        ShouldHalt(
            o_.halt,
            {.total = todo_.size(), .failed = failed_, .succeeded = ok_})) {
      halted_ = true;
      halt_seq_ = job.seq;
      stop_.no_new = true;
      if (o_.halt.when == HaltRule::When::kNow) stop_.halt_now = true;
    }
  }

  void Progress() {
    if (!o_.progress || !isatty(fileno(err_))) return;
    const auto now = Clock::now();
    const std::size_t done = ok_ + failed_;
    if (done != todo_.size() &&
        now - last_progress_ < std::chrono::milliseconds(100)) {
      return;
    }
    last_progress_ = now;
    progress_shown_ = true;
    // ETA from the rate so far, as GNU parallel's --eta.
    const double elapsed =
        std::chrono::duration<double>(now - run_started_).count();
    const double eta = done == 0 ? 0
                                 : elapsed / static_cast<double>(done) *
                                       static_cast<double>(todo_.size() - done);
    std::fprintf(err_, "\r\033[Kcommands: %zu/%zu done, %zu failed, ETA %.1fs",
                 done, todo_.size(), failed_, eta);
    std::fflush(err_);
  }

  int Summarize(double wall) {
    std::size_t ran = 0, stopped = 0, not_started = 0;
    for (const Finished& f : finished_) {
      if (!f.ran) {
        ++not_started;
      } else if (f.outcome.stopped == Stopped::kCancel ||
                 f.outcome.stopped == Stopped::kHalt) {
        ++stopped;
      } else {
        ++ran;
      }
    }
    const std::size_t failed = failed_;
    std::fprintf(
        err_, "commands: %zu run, %zu ok, %zu failed, %d at a time, %.2f s\n",
        ran, ran - failed, failed, jobs_, wall);
    for (const Finished& f : finished_) {
      if (!f.ran || f.outcome.ok() || f.outcome.stopped == Stopped::kCancel ||
          f.outcome.stopped == Stopped::kHalt) {
        continue;
      }
      PrintFailure(err_, f.seq, f.command, f.outcome.exit_code,
                   f.outcome.signal,
                   f.outcome.stopped == Stopped::kTimeout ? o_.timeout_s : 0);
    }
    if (skipped_ > 0) {
      std::fprintf(err_, "commands: %zu skipped, already in --joblog=%s\n",
                   skipped_, o_.joblog.c_str());
    }
    if (halted_) {
      std::fprintf(err_,
                   "commands: halted after [%zu] (--halt=%s): %zu stopped, "
                   "%zu not started\n",
                   halt_seq_, o_.halt_text.c_str(), stopped, not_started);
    }
    std::fflush(err_);
    if (stop_.run_timed_out.load()) {
      std::fprintf(err_,
                   "run: error: commands timed out after %lld ms "
                   "(--timeout-ms): %zu stopped, %zu not started\n",
                   static_cast<long long>(o_.run_timeout.count()), stopped,
                   not_started);
      return 1;
    }
    if (stop_.cancel != nullptr && stop_.cancel->load()) return 130;
    if (halted_ && o_.halt.on == HaltRule::On::kSuccess) return 0;
    return failed == 0 ? 0 : 1;
  }

  const CommandsOptions& o_;
  Printer printer_;
  std::FILE* err_;
  StopState stop_;
  JoblogFile joblog_;
  ProcessGuard* guard_ = nullptr;
  std::vector<const Job*> todo_;
  std::vector<Finished> finished_;
  std::atomic<std::size_t> next_{0};
  std::mutex mu_;
  std::mutex delay_mu_;
  Clock::time_point next_start_{};
  Clock::time_point last_progress_{};
  Clock::time_point run_started_{};
  bool progress_shown_ = false;
  std::size_t ok_ = 0, failed_ = 0, skipped_ = 0;
  bool halted_ = false;
  std::size_t halt_seq_ = 0;
  int jobs_ = 1;
};

}  // namespace

std::vector<std::string> ParseCommands(const std::string& text) {
  return SplitLines(text, /*skip_comments=*/true);
}

int RunCommands(const std::vector<std::string>& commands, int jobs,
                std::FILE* out, std::FILE* err,
                const std::atomic<bool>* cancel) {
  CommandsOptions o{.jobs = jobs};
  CommandInput input;
  input.groups.push_back(commands);
  o.jobs_list = BuildJobs(input);
  return RunJobs(o, out, err, cancel);
}

int RunJobs(const CommandsOptions& options, std::FILE* out, std::FILE* err,
            const std::atomic<bool>* cancel) {
  Runner runner(options, out, err, cancel);
  return runner.Run();
}

bool IsCommandsMode(const Request& r) {
  return !r.commands.empty() || !r.command_template.empty() ||
         !r.arg_groups.empty();
}

int RunCommandsMode(const Request& r, std::FILE* out, std::FILE* err,
                    const std::atomic<bool>* cancel) {
  CommandInput input;
  input.tmpl = r.command_template;
  if (!r.commands.empty()) {
    input.groups.push_back(
        ParseCommands(ReadTextInput(r.commands, "--commands=" + r.commands)));
  } else if (r.arg_groups.empty()) {
    // A template and no ::: or ::::: the lines of stdin are its arguments.
    input.groups.push_back(SplitLines(ReadTextInput("-", "stdin"), false));
  }
  for (const ArgGroup& g : r.arg_groups) {
    if (!g.from_file) {
      input.groups.push_back(g.words);
      continue;
    }
    for (const std::string& path : g.words) {
      input.groups.push_back(
          SplitLines(ReadTextInput(path, ":::: " + path), false));
    }
  }
  CommandsOptions o = r.commands_options;
  o.jobs = r.jobs;
  o.tmpl = input.tmpl_text();
  o.run_timeout = r.timeout;
  o.progress = r.progress;
  o.jobs_list = BuildJobs(input);
  if (r.backend == "mpi") return RunJobsOnMpi(o, out, err, cancel);
  return RunJobs(o, out, err, cancel);
}

}  // namespace fanout::cli
