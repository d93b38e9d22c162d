#include "cli/commands.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cli/command_input.h"
#include "cli/command_output.h"
#include "cli/joblog.h"
#include "cli/process_guard.h"
#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/wait_status.h"
#include "core/parallel.h"

namespace fanout::cli {
namespace {

using Clock = std::chrono::steady_clock;

// How long a command's group has after SIGTERM before SIGKILL.
constexpr auto kKillGrace = std::chrono::milliseconds(500);
// How long its output is read after its shell exits and its group is killed,
// when something outside the group still holds the pipes.
constexpr auto kDrainLimit = std::chrono::seconds(2);

// Why a command was stopped by us rather than ending by itself.
enum class Stopped { kNo, kTimeout, kHalt, kCancel };

struct Outcome {
  int exit_code = 0;  // exit status, or 128 + signal
  int exit_status = 0;
  int signal = 0;
  Stopped stopped = Stopped::kNo;
  double start = 0;  // seconds since the epoch
  double runtime = 0;
  bool ok() const { return exit_code == 0; }
};

// What makes every running command stop: Ctrl+C, --halt=now, the run's
// deadline.
struct StopState {
  const std::atomic<bool>* cancel = nullptr;
  std::atomic<bool> halt_now{false};
  std::atomic<bool> no_new{false};  // --halt=soon (or now)
  std::atomic<bool> run_timed_out{false};
  Clock::time_point run_deadline = Clock::time_point::max();

  // The reason to stop every command now, if any.
  Stopped Now() {
    if (cancel != nullptr && cancel->load()) return Stopped::kCancel;
    if (run_deadline != Clock::time_point::max() &&
        Clock::now() >= run_deadline) {
      run_timed_out = true;
      return Stopped::kCancel;
    }
    if (halt_now.load()) return Stopped::kHalt;
    return Stopped::kNo;
  }
};

double EpochNow() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Runs one command, collecting its output into out / err (calling `drain`
// after each read when set); kills its process group at its deadline or
// when `stop` says so; kills what it left in the background once its shell
// exits.
Outcome RunOne(const std::string& command, double timeout_s, StopState& stop,
               ProcessGuard& guard, std::string& out, std::string& err,
               const std::function<void()>& drain) {
  Outcome outcome;
  outcome.start = EpochNow();
  const auto started = Clock::now();
  internal::Pipe po, pe;
  if (!internal::MakePipe(&po) || !internal::MakePipe(&pe)) {
    const int e = errno;
    for (int* fd : {&po.read, &po.write, &pe.read, &pe.write}) {
      internal::CloseFd(fd);
    }
    throw Error(std::string("cannot create a pipe: ") + std::strerror(e));
  }
  // The command leads its own process group (so a kill reaches what it
  // starts) and dies with this thread.
  const pid_t pid =
      internal::ForkChild({.new_process_group = true, .flush_stdio = false});
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    dup2(po.write, 1);
    dup2(pe.write, 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const int fork_errno = errno;
  internal::CloseFd(&po.write);
  internal::CloseFd(&pe.write);
  if (pid < 0) {
    internal::CloseFd(&po.read);
    internal::CloseFd(&pe.read);
    throw Error(std::string("cannot fork: ") + std::strerror(fork_errno));
  }
  guard.Add(pid);
  int pidfd = internal::PidfdOpen(pid);
  internal::SetNonBlocking(po.read);
  internal::SetNonBlocking(pe.read);
  pollfd fds[3] = {
      {po.read, POLLIN, 0}, {pe.read, POLLIN, 0}, {pidfd, POLLIN, 0}};
  const auto deadline =
      timeout_s > 0 ? started + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(timeout_s))
                    : Clock::time_point::max();
  bool reaped = false;
  int status = 0;
  bool termed = false;  // SIGTERM sent to the group
  bool killed = false;  // SIGKILL sent
  auto kill_at = Clock::time_point::max();
  auto give_up_at = Clock::time_point::max();
  auto terminate = [&](Stopped why) {
    if (termed) return;
    if (outcome.stopped == Stopped::kNo) outcome.stopped = why;
    kill(-pid, SIGTERM);
    termed = true;
    kill_at = Clock::now() + kKillGrace;
  };
  while (fds[0].fd >= 0 || fds[1].fd >= 0 || !reaped) {
    int wait_ms = 50;
    const auto now = Clock::now();
    for (const auto t : {deadline, kill_at, give_up_at}) {
      if (t == Clock::time_point::max()) continue;
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(t - now)
              .count() +
          1;
      wait_ms = static_cast<int>(std::clamp<long long>(ms, 0, wait_ms));
    }
    if (reaped || pidfd < 0) fds[2].fd = -1;
    const int ready = poll(fds, 3, wait_ms);
    if (ready > 0) {
      for (int k = 0; k < 2; ++k) {
        if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
          continue;
        if (!internal::ReadAvailable(fds[k].fd, k == 0 ? &out : &err)) {
          internal::CloseFd(&fds[k].fd);
        }
      }
      if (drain) drain();
    }
    if (!reaped && internal::WaitPid(pid, &status, WNOHANG) == pid) {
      reaped = true;
      outcome.runtime =
          std::chrono::duration<double>(Clock::now() - started).count();
      // The command is done; what it left in the background goes with it.
      if (!termed) {
        kill(-pid, SIGTERM);
        termed = true;
        kill_at = Clock::now() + std::chrono::milliseconds(100);
      }
    }
    if (!reaped) {
      const Stopped why = stop.Now();
      if (why != Stopped::kNo) terminate(why);
      if (Clock::now() >= deadline) terminate(Stopped::kTimeout);
    }
    if (termed && !killed && Clock::now() >= kill_at) {
      kill(-pid, SIGKILL);
      killed = true;
      if (reaped) give_up_at = Clock::now() + kDrainLimit;
    }
    if (reaped && killed && give_up_at == Clock::time_point::max()) {
      give_up_at = Clock::now() + kDrainLimit;
    }
    if (Clock::now() >= give_up_at) break;  // held open outside the group
  }
  internal::CloseFd(&fds[0].fd);
  internal::CloseFd(&fds[1].fd);
  if (pidfd >= 0) close(pidfd);
  kill(-pid, SIGKILL);  // anything of its group still around
  // Adopted members of the group (we are their subreaper) that are gone.
  while (internal::WaitPid(-pid, nullptr, WNOHANG) > 0) {
  }
  guard.Remove(pid);
  const internal::WaitOutcome w = internal::DecodeWaitStatus(status);
  outcome.exit_code = internal::ShellExitCode(status);
  outcome.signal = w.signal;
  outcome.exit_status = w.signal != 0 ? 0 : w.exit_status;
  return outcome;
}

// The job log: open, resumed, appended to as commands finish.
class Joblog {
 public:
  // Reads what an earlier run logged when resuming; truncates otherwise.
  void Open(const CommandsOptions& o) {
    if (o.joblog.empty()) return;
    std::string old;
    if (o.resume || o.resume_failed) {
      std::ifstream in(o.joblog, std::ios::binary);
      old.assign(std::istreambuf_iterator<char>(in),
                 std::istreambuf_iterator<char>());
      done_ = ParseJoblog(old);
    }
    const bool append = !old.empty();
    file_ = std::fopen(o.joblog.c_str(), append ? "a" : "w");
    if (file_ == nullptr) {
      throw UsageError("--joblog=" + o.joblog + ": cannot open for writing: " +
                       std::strerror(errno) + "; valid: a file path");
    }
    if (!append) Write(JoblogHeader());
  }
  ~Joblog() {
    if (file_ != nullptr) std::fclose(file_);
  }
  // Whether job `seq` is to be skipped: in the log (--resume), or in it
  // and successful (--resume-failed).
  bool Skip(std::size_t seq, bool resume_failed) const {
    const auto it = done_.find(seq);
    if (it == done_.end()) return false;
    return !resume_failed || it->second.ok();
  }
  void Write(const std::string& text) {
    if (file_ == nullptr) return;
    std::fwrite(text.data(), 1, text.size(), file_);
    std::fflush(file_);
  }

 private:
  std::FILE* file_ = nullptr;
  std::map<std::size_t, JoblogRow> done_;
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(text.data(), static_cast<std::streamsize>(text.size()));
}

// --results=DIR: DIR/<seq>/ holds cmd, stdout, stderr and exitval.
void WriteResults(const std::string& dir, std::size_t seq,
                  const std::string& command, const std::string& out,
                  const std::string& err, const Outcome& o) {
  const std::string d = dir + "/" + std::to_string(seq);
  mkdir(d.c_str(), 0777);
  WriteFile(d + "/cmd", command + "\n");
  WriteFile(d + "/stdout", out);
  WriteFile(d + "/stderr", err);
  WriteFile(d + "/exitval", std::to_string(o.exit_code) + "\n");
}

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

  // The --tag prefix of `job`: its arguments (or, without any, its
  // command) and a tab.
  static std::string TagOf(const Job& job, const std::string& command) {
    std::string tag;
    for (const std::string& a : job.args) tag += (tag.empty() ? "" : " ") + a;
    return (job.args.empty() ? command : tag) + "\t";
  }

  int Run() {
    joblog_.Open(o_);
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
      const std::string tag = o_.tag ? TagOf(job, command) : "";
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
      WriteResults(o_.results, job.seq, command, out, err, outcome);
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
      if (f.outcome.stopped == Stopped::kTimeout) {
        std::fprintf(err_, "  [%zu] timed out after %gs (--timeout): %s\n",
                     f.seq, o_.timeout_s, f.command.c_str());
      } else if (f.outcome.signal != 0) {
        std::fprintf(err_, "  [%zu] killed by signal %d (%s): %s\n", f.seq,
                     f.outcome.signal,
                     internal::SignalDescription(f.outcome.signal).c_str(),
                     f.command.c_str());
      } else {
        std::fprintf(err_, "  [%zu] exit %d: %s\n", f.seq, f.outcome.exit_code,
                     f.command.c_str());
      }
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
  Joblog joblog_;
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

// One command's outcome as it crosses ranks (--backend=mpi): the fields of
// Outcome, its output and the host it ran on.
using RemoteOutcome = std::tuple<int, int, int, int, double, double,
                                 std::string, std::string, std::string>;

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "?";
  return name;
}

// --backend=mpi: every rank runs commands on its `jobs` slots; rank 0 alone
// prints their output (in input order), the summary and the job log, whose
// Host column names the host each command ran on.
int RunJobsOnMpi(const CommandsOptions& o, std::FILE* out, std::FILE* err,
                 const std::atomic<bool>* cancel) {
  Joblog joblog;
  Parallel parallel(
      {.jobs = o.jobs, .backend = "mpi", .batch_size = 1, .cancel = cancel});
  const bool primary = parallel.executor().is_primary();
  if (primary) joblog.Open(o);
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
  std::vector<Finished> finished;
  std::size_t failed = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& [code, status, sig, stopped, start, runtime, o_text, e_text,
                 ran_on] = results[i];
    const Job& job = o.jobs_list[i];
    const std::string command = CommandLine(o.tmpl, job, 1);
    Outcome outcome{.exit_code = code,
                    .exit_status = status,
                    .signal = sig,
                    .stopped = static_cast<Stopped>(stopped),
                    .start = start,
                    .runtime = runtime};
    printer.Done(i, o_text, e_text, o.tag ? Runner::TagOf(job, command) : "");
    if (!o.results.empty()) {
      mkdir(o.results.c_str(), 0777);
      WriteResults(o.results, job.seq, command, o_text, e_text, outcome);
    }
    joblog.Write(FormatJoblogRow({.seq = job.seq,
                                  .host = ran_on,
                                  .start = start,
                                  .runtime = runtime,
                                  .receive = o_text.size() + e_text.size(),
                                  .exitval = status,
                                  .signal = sig,
                                  .command = command}));
    failed += !outcome.ok();
    finished.push_back({job.seq, command, outcome, true});
  }
  const double wall =
      std::chrono::duration<double>(Clock::now() - started).count();
  std::fprintf(
      err, "commands: %zu run, %zu ok, %zu failed, %d at a time, %.2f s\n",
      results.size(), results.size() - failed, failed, parallel.jobs(), wall);
  for (const Finished& f : finished) {
    if (f.outcome.ok()) continue;
    if (f.outcome.signal != 0) {
      std::fprintf(err, "  [%zu] killed by signal %d (%s): %s\n", f.seq,
                   f.outcome.signal,
                   internal::SignalDescription(f.outcome.signal).c_str(),
                   f.command.c_str());
    } else {
      std::fprintf(err, "  [%zu] exit %d: %s\n", f.seq, f.outcome.exit_code,
                   f.command.c_str());
    }
  }
  std::fflush(err);
  if (cancel != nullptr && cancel->load()) return 130;
  return failed == 0 ? 0 : 1;
}

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
