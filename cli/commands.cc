#include "cli/commands.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
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
#include "core/internal/trace.h"
#include "core/trace.h"

namespace fanout::cli {
namespace {

using Clock = std::chrono::steady_clock;

// What a finished command left for the summary.
struct Finished {
  std::size_t seq = 0;
  std::string command;
  Outcome outcome;
  bool ran = false;
  // Why what it did was not all kept (its --joblog row, its --results
  // files); such a command counts as failed.
  std::string lost;
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

  ~Runner() {
    try {
      FinishTrace();  // a run that threw still writes what it has
    } catch (const std::exception& e) {
      std::fprintf(err_, "run: %s\n", e.what());
    }
  }

  int Run() {
    joblog_.Open(o_.joblog, o_.resume || o_.resume_failed);
    if (joblog_.torn_bytes() > 0) {
      std::fprintf(err_,
                   "commands: --joblog=%s ended in a row cut short (%zu "
                   "bytes): cut off, its command runs again\n",
                   o_.joblog.c_str(), joblog_.torn_bytes());
    }
    if (!o_.results.empty()) CheckResultsDir(o_.results);
    for (const Job& job : o_.jobs_list) {
      if (Skipped(job.seq)) continue;
      todo_.push_back(&job);
    }
    known_ = todo_.size();
    const int jobs = resolve_jobs(o_.jobs);
    jobs_ = jobs;
    if (o_.dry_run) return DryRun();
    if (!o_.trace.empty() || o_.trace_summary) {
      trace_ = std::make_unique<internal::CallTrace>(
          o_.trace.empty() ? nullptr
                           : internal::TraceFile::Open(o_.trace, "--trace"),
          "commands");
      trace_->BeginJob("commands", todo_.size(), jobs, 1, false);
    }
    const auto started = Clock::now();
    run_started_ = started;
    {
      ProcessGuard guard;
      guard_ = &guard;
      if (o_.verbose > 0) {
        std::fprintf(err_, "commands: %s\n", guard.containment().c_str());
        std::fflush(err_);
      }
      std::thread reader;
      // This thread is the first worker. Lines of stdin start the others as
      // they come, one a line while none is idle, up to --jobs: threads
      // made for lines that never come would only slow the commands that
      // run (1000 of them left a retry no time to start in --timeout=0.1).
      workers_ = 1;
      if (o_.stream_stdin) {
        // The first chunk before anything runs, so that a file that is not
        // text is refused with nothing started; the rest as it comes.
        feed_closed_ = false;
        ReadStdin(/*first_chunk_only=*/true);
        if (!input_error_.empty()) {
          throw UsageError(o_.stdin_name + ": " + input_error_ +
                           "; valid: a text file with one item a line");
        }
        if (!feed_closed_) reader = std::thread([this] { ReadStdin(false); });
      } else {
        const std::size_t workers =
            std::min<std::size_t>(static_cast<std::size_t>(jobs), todo_.size());
        std::lock_guard<std::mutex> lock(feed_mu_);
        while (static_cast<std::size_t>(workers_) < workers && StartWorker()) {
        }
      }
      if (!todo_.empty() || o_.stream_stdin) Work(1);
      reader_stop_ = true;
      if (reader.joinable()) reader.join();
      std::vector<std::thread> threads;
      {
        std::lock_guard<std::mutex> lock(feed_mu_);
        threads.swap(threads_);
      }
      for (std::thread& t : threads) t.join();
      guard.KillAdopted();
    }
    finished_.resize(std::max(finished_.size(), todo_.size()));
    printer_.Finish();
    if (progress_shown_) std::fputs("\r\033[K", err_);
    FinishTrace();
    return Summarize(
        std::chrono::duration<double>(Clock::now() - started).count());
  }

 private:
  // Whether job `seq` is in the job log being resumed (counted if so).
  bool Skipped(std::size_t seq) {
    if (o_.joblog.empty() || !(o_.resume || o_.resume_failed) ||
        !joblog_.Skip(seq, o_.resume_failed)) {
      return false;
    }
    ++skipped_;
    return true;
  }

  // A line of stdin: a job, unless it is a comment or blank line of a
  // commands file, or already in the job log.
  void AddLine(std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (o_.stdin_is_commands) {
      const auto first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') return;
    }
    std::lock_guard<std::mutex> lock(feed_mu_);
    const std::size_t seq = ++stdin_seq_;
    if (Skipped(seq)) return;
    streamed_.push_back(Job{.seq = seq, .args = {std::move(line)}});
    todo_.push_back(&streamed_.back());
    known_ = todo_.size();
    if (todo_.size() - next_ > idle_ && workers_ < jobs_) StartWorker();
    feed_cv_.notify_one();
  }

  // Starts worker number workers_ + 1 (under feed_mu_). False, with a note
  // for the summary, when no thread can be started.
  bool StartWorker() {
    const int slot = workers_ + 1;
    try {
      threads_.emplace_back([this, slot] { Work(slot); });
    } catch (const std::system_error& e) {
      if (thread_error_.empty()) {
        thread_error_ = "commands: ran at most " + std::to_string(workers_) +
                        " at a time, not --jobs=" + std::to_string(jobs_) +
                        ": cannot start another thread: " + e.what();
      }
      return false;
    }
    workers_ = slot;
    return true;
  }

  // Reads stdin into jobs, a line each, as it comes: until end of file (or
  // only the first chunk), a NUL byte (input_error_), or the run stopping.
  void ReadStdin(bool first_chunk_only) {
    char buf[65536];
    pollfd p = {0, POLLIN, 0};
    bool eof = false;
    for (;;) {
      if (reader_stop_.load() || stop_.no_new.load() ||
          stop_.Now() != Stopped::kNo) {
        break;
      }
      if (poll(&p, 1, 50) <= 0) continue;
      const ssize_t got = read(0, buf, sizeof(buf));
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        eof = true;
        break;
      }
      const std::size_t n = static_cast<std::size_t>(got);
      if (const void* nul = std::memchr(buf, '\0', n)) {
        input_error_ =
            "is not text (a NUL byte at offset " +
            std::to_string(
                stdin_bytes_ +
                static_cast<std::size_t>(static_cast<const char*>(nul) - buf)) +
            ")";
        break;
      }
      stdin_bytes_ += n;
      pending_.append(buf, n);
      std::size_t from = 0;
      for (std::size_t nl;
           (nl = pending_.find('\n', from)) != std::string::npos;
           from = nl + 1) {
        if (nl - from > kMaxLineBytes) {
          input_error_ = LineTooLong(stdin_lines_ + 1);
          break;
        }
        ++stdin_lines_;
        AddLine(pending_.substr(from, nl - from));
      }
      if (!input_error_.empty()) break;
      pending_.erase(0, from);
      // A line without its end yet that is already too long to run.
      if (pending_.size() > kMaxLineBytes) {
        input_error_ = LineTooLong(stdin_lines_ + 1);
        break;
      }
      if (first_chunk_only) return;
    }
    if (eof && !pending_.empty()) AddLine(std::move(pending_));
    std::lock_guard<std::mutex> lock(feed_mu_);
    feed_closed_ = true;
    feed_cv_.notify_all();
  }

  // The next job to run, in input order; false when there is none left or
  // the run stops.
  bool Next(std::size_t* index, const Job** job) {
    std::unique_lock<std::mutex> lock(feed_mu_);
    for (;;) {
      if (stop_.no_new.load() || stop_.Now() != Stopped::kNo) return false;
      if (next_ < todo_.size()) {
        *index = next_++;
        *job = todo_[*index];
        return true;
      }
      if (feed_closed_) return false;
      ++idle_;
      feed_cv_.wait_for(lock, std::chrono::milliseconds(50));
      --idle_;
    }
  }

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

  // Writes the trace (and prints its summary) once the commands ended.
  void FinishTrace() {
    if (trace_ == nullptr) return;
    trace_->EndJob();
    const TraceSummary s = trace_->Finish(true);
    trace_.reset();
    if (o_.trace_summary) {
      std::fprintf(err_, "%s", to_string(s).c_str());
      std::fflush(err_);
    }
  }

  void Work(int slot) {
    // A traced run: this slot's row, a span per run of a command.
    internal::TraceTrack* track =
        trace_ != nullptr
            ? trace_->Worker(slot - 1,
                             [slot] { return "slot " + std::to_string(slot); })
            : nullptr;
    for (;;) {
      std::size_t i = 0;
      const Job* next = nullptr;
      if (!Next(&i, &next)) return;
      WaitTurn();
      const Job& job = *next;
      if (stop_.no_new.load() || stop_.Now() != Stopped::kNo) return;
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
        internal::TraceRecord* span =
            track != nullptr ? track->Begin(job.seq - 1, job.seq,
                                            static_cast<std::uint32_t>(attempt))
                             : nullptr;
        try {
          outcome =
              RunOne(command, o_.timeout_s, stop_, *guard_, out, err, drain);
        } catch (const std::exception& e) {
          err += std::string("run: ") + e.what() + "\n";
          outcome = Outcome{.exit_code = 127, .exit_status = 127};
        }
        if (span != nullptr) {
          const std::uint64_t t0 = span->t0;
          track->End(span, job.seq);
          trace_->Note(track, command, "command", t0, t0,
                       "\"seq\":" + std::to_string(job.seq) +
                           ",\"exit\":" + std::to_string(outcome.exit_code));
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
    if (i >= finished_.size()) finished_.resize(i + 1);
    Finished& f = finished_[i];
    f = {job.seq, command, outcome, true, ""};
    if (!o_.results.empty()) {
      const std::string error = WriteResults(o_.results, job.seq, command, out,
                                             err, outcome.exit_code);
      if (!error.empty()) f.lost = "--results not kept (" + error + ")";
    }
    if (!by_us) {
      const std::string error =
          joblog_.Append(FormatJoblogRow({.seq = job.seq,
                                          .start = outcome.start,
                                          .runtime = outcome.runtime,
                                          .receive = out.size() + err.size(),
                                          .exitval = outcome.exit_status,
                                          .signal = outcome.signal,
                                          .command = command}));
      if (!error.empty()) {
        // Without its row --resume would run it again, as every command
        // after it: none starts.
        f.lost += (f.lost.empty() ? "" : " and ") +
                  std::string("its --joblog row was not written (") + error +
                  ")";
        ++rows_lost_;
        if (joblog_error_.empty()) {
          joblog_error_ = "cannot write the row of [" +
                          std::to_string(job.seq) + "]: " + error;
          stop_.no_new = true;
        }
      }
      (outcome.ok() && f.lost.empty() ? ok_ : failed_) += 1;
    }
    printer_.Done(i, o_.line_buffer ? std::string() : out,
                  o_.line_buffer ? std::string() : err, tag);
    Progress();
    if (!by_us && !halted_ &&
        ShouldHalt(
            o_.halt,
            {.total = known_.load(), .failed = failed_, .succeeded = ok_})) {
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
    if (done != known_.load() &&
        now - last_progress_ < std::chrono::milliseconds(100)) {
      return;
    }
    last_progress_ = now;
    progress_shown_ = true;
    // ETA from the rate so far, as GNU parallel's --eta.
    const double elapsed =
        std::chrono::duration<double>(now - run_started_).count();
    const double eta = done == 0
                           ? 0
                           : elapsed / static_cast<double>(done) *
                                 static_cast<double>(known_.load() - done);
    std::fprintf(err_, "\r\033[Kcommands: %zu/%zu done, %zu failed, ETA %.1fs",
                 done, known_.load(), failed_, eta);
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
      if (!f.ran || (f.outcome.ok() && f.lost.empty()) ||
          f.outcome.stopped == Stopped::kCancel ||
          f.outcome.stopped == Stopped::kHalt) {
        continue;
      }
      PrintFailure(
          err_, f.seq, f.command, f.outcome.exit_code, f.outcome.signal,
          f.outcome.stopped == Stopped::kTimeout ? o_.timeout_s : 0, f.lost);
    }
    if (!thread_error_.empty())
      std::fprintf(err_, "%s\n", thread_error_.c_str());
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
    if (!joblog_error_.empty()) {
      std::fprintf(err_,
                   "run: error: --joblog=%s: %s; no command started after it "
                   "(%zu not started); --resume runs them and the %zu whose "
                   "rows are missing\n",
                   o_.joblog.c_str(), joblog_error_.c_str(), not_started,
                   rows_lost_);
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
    if (!input_error_.empty()) {
      std::fprintf(err_, "run: %s: %s; the rest of it was not read\n",
                   o_.stdin_name.c_str(), input_error_.c_str());
      return 2;
    }
    if (halted_ && o_.halt.on == HaltRule::On::kSuccess) return 0;
    // GNU parallel's rule: the number of failed commands, 101 for more
    // than 100.
    return static_cast<int>(std::min<std::size_t>(failed, 101));
  }

  const CommandsOptions& o_;
  Printer printer_;
  std::FILE* err_;
  StopState stop_;
  JoblogFile joblog_;
  ProcessGuard* guard_ = nullptr;
  // The jobs in input order: all there at the start, or appended by the
  // stdin reader as lines come (under feed_mu_).
  std::mutex feed_mu_;
  std::condition_variable feed_cv_;
  std::vector<const Job*> todo_;
  std::deque<Job> streamed_;  // the stdin jobs (a deque: stable addresses)
  bool feed_closed_ = true;
  std::size_t next_ = 0;
  std::vector<std::thread> threads_;            // the workers but this thread's
  std::unique_ptr<internal::CallTrace> trace_;  // --trace, --trace-summary
  int workers_ = 0;           // how many there are, this one too
  std::size_t idle_ = 0;      // workers waiting for a line
  std::string thread_error_;  // why fewer than --jobs started
  std::atomic<std::size_t> known_{0};
  std::size_t stdin_seq_ = 0;
  std::size_t stdin_bytes_ = 0;
  std::size_t stdin_lines_ = 0;  // lines of stdin read to their end
  std::string pending_;          // a line not ended yet
  std::string input_error_;
  std::atomic<bool> reader_stop_{false};
  std::vector<Finished> finished_;
  std::mutex mu_;
  std::mutex delay_mu_;
  Clock::time_point next_start_{};
  Clock::time_point last_progress_{};
  Clock::time_point run_started_{};
  bool progress_shown_ = false;
  std::size_t ok_ = 0, failed_ = 0, skipped_ = 0;
  std::string joblog_error_;  // the first row that could not be written
  std::size_t rows_lost_ = 0;
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
  CommandsOptions o = r.commands_options;
  const bool from_stdin =
      r.commands == "-" || (r.commands.empty() && r.arg_groups.empty());
  if (from_stdin && !o.dry_run && r.backend != "mpi") {
    // Lines of stdin, run as they come (find ... | run, tail -f ... | run).
    o.stream_stdin = true;
    o.stdin_is_commands = r.commands == "-";
    o.stdin_name = o.stdin_is_commands ? "--commands=-" : "stdin";
  } else if (!r.commands.empty()) {
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
  o.jobs = r.jobs;
  o.tmpl = input.tmpl_text();
  o.run_timeout = r.timeout;
  o.progress = r.progress;
  o.verbose = r.verbose;
  o.jobs_list = BuildJobs(input);
  if (r.backend == "mpi") return RunJobsOnMpi(o, out, err, cancel);
  return RunJobs(o, out, err, cancel);
}

}  // namespace fanout::cli
