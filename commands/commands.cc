#include "commands/commands.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "commands/input.h"
#include "commands/joblog.h"
#include "commands/mpi.h"
#include "commands/output.h"
#include "commands/pipe.h"
#include "commands/process_guard.h"
#include "commands/run_command.h"
#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/trace.h"
#include "core/pool.h"
#include "core/trace.h"

namespace fanout::commands {
namespace {

using Clock = std::chrono::steady_clock;

// `text` as a message shows it: "\n" for a newline, "\0" for NUL.
std::string Visible(const std::string& text) {
  std::string shown;
  for (const char c : text) {
    if (c == '\n') {
      shown += "\\n";
    } else if (c == '\t') {
      shown += "\\t";
    } else if (c == '\0') {
      shown += "\\0";
    } else {
      shown += c;
    }
  }
  return shown;
}

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
    if (!o.colsep.empty()) colsep_.emplace(o.colsep);
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
    joblog_.Open(o_.joblog, o_.resume || o_.resume_failed || o_.joblog_append);
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
    // sequential is one at a time, whatever --jobs says (the summary says
    // so: "1 at a time").
    const int jobs = o_.backend == "sequential" ? 1 : resolve_jobs(o_.jobs);
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
      // Every command is a task of one pool on --backend: at most --jobs
      // run at a time, on its workers (sequential: one at a time, on this
      // thread when it waits).
      Pool pool({.jobs = jobs, .backend = o_.backend});
      pool_ = &pool;
      inline_pool_ = o_.backend == "sequential";
      for (int slot = jobs; slot >= 1; --slot) free_slots_.push_back(slot);
      if (o_.stream_stdin) {
        // The first chunk before anything runs, so that a file that is not
        // text is refused with nothing started; the rest as it comes.
        feed_closed_ = false;
        if (o_.pipe) {
          ReadBlocks();  // any bytes: blocks are not checked for text
        } else {
          ReadStdin(/*first_chunk_only=*/true);
        }
        if (!input_error_.empty() && !o_.pipe) {
          throw UsageError(o_.stdin_name + ": " + input_error_ +
                           "; valid: a text file with one item a line");
        }
        if (!feed_closed_ && !o_.pipe) ReadStdin(false);
      } else {
        for (std::size_t i = 0; i < todo_.size(); ++i) Submit(i, todo_[i]);
      }
      // Every command's end; an error of the run itself (out of memory)
      // thrown here, once nothing of it runs.
      std::exception_ptr error;
      for (Future<void>& f : futures_) {
        try {
          f.get();
        } catch (...) {
          if (!error) error = std::current_exception();
        }
      }
      futures_.clear();
      pool.close();
      pool_ = nullptr;
      guard.KillAdopted();
      if (error) std::rethrow_exception(error);
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
    if (!o_.null_separated && !line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (o_.stdin_is_commands) {
      const auto first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') return;
    }
    std::size_t index = 0;
    const Job* job = nullptr;
    {
      std::lock_guard<std::mutex> lock(feed_mu_);
      const std::size_t seq = ++stdin_seq_;
      if (Skipped(seq)) return;
      streamed_.push_back(Job{.seq = seq, .args = {std::move(line)}});
      if (colsep_) SplitColumns(*colsep_, &streamed_.back());
      todo_.push_back(&streamed_.back());
      index = todo_.size() - 1;
      job = todo_.back();
      known_ = todo_.size();
    }
    Submit(index, job);
  }

  // --pipe: a block of stdin, the stdin of a job of its own.
  void AddBlock(Block block) {
    std::size_t index = 0;
    const Job* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(feed_mu_);
      const std::size_t seq = ++stdin_seq_;
      if (Skipped(seq)) {
        reader_->Recycle(std::move(block));
        return;
      }
      streamed_.push_back(Job{.seq = seq, .args = {}});
      todo_.push_back(&streamed_.back());
      blocks_.push_back(std::move(block));
      index = todo_.size() - 1;
      job = todo_.back();
      known_ = todo_.size();
      ++blocks_held_;
    }
    Submit(index, job);
  }

  // --pipe: reads stdin into blocks of whole records, each a job, as it
  // comes; while twice --jobs blocks wait or run, reading waits, so memory
  // stays flat however long the input.
  void ReadBlocks() {
    reader_ = std::make_unique<BlockReader>(0, o_.block);
    BlockReader& reader = *reader_;
    pollfd p = {0, POLLIN, 0};
    bool eof = false;
    const std::size_t most_held = 2 * static_cast<std::size_t>(jobs_);
    while (!eof) {
      if (stop_.no_new.load() || stop_.Now() != Stopped::kNo) break;
      {
        std::unique_lock<std::mutex> lock(feed_mu_);
        if (blocks_held_ >= most_held) {
          blocks_cv_.wait_for(lock, std::chrono::milliseconds(50));
          continue;
        }
      }
      if (poll(&p, 1, 50) <= 0) continue;
      const ssize_t got = reader.Read();
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) eof = true;
      while (std::optional<Block> block = reader.Next(eof)) {
        AddBlock(*std::move(block));
      }
      if (reader.TooLong()) {
        input_error_ = o_.block.records > 0
                           ? std::to_string(o_.block.records) +
                                 " records (-N) make more than " +
                                 std::to_string(kMaxRecordBytes) + " bytes"
                           : "a record of more than " +
                                 std::to_string(kMaxRecordBytes) +
                                 " bytes has no --recend (" +
                                 Visible(o_.block.recend) + ") in it";
        break;
      }
    }
    reader.Finish();
    feed_closed_ = true;
  }

  // A job's block, taken out of the run's memory once its command ran.
  Block TakeBlock(std::size_t i) {
    std::lock_guard<std::mutex> lock(feed_mu_);
    return std::move(blocks_[i]);
  }

  // A job's block is done with: its memory goes back to the reader, and
  // reading may go on.
  void BlockDone(Block block) {
    {
      std::lock_guard<std::mutex> lock(feed_mu_);
      reader_->Recycle(std::move(block));
      --blocks_held_;
    }
    blocks_cv_.notify_all();
  }

  // Job `i` of the input, submitted to the pool. On sequential it runs now
  // (this thread is its only worker): one at a time, the input read between
  // them as it comes.
  void Submit(std::size_t i, const Job* job) {
    futures_.push_back(pool_->submit([this, i, job] { RunJob(i, *job); }));
    if (inline_pool_) futures_.back().wait();
  }

  // Reads stdin into jobs, a line each, as it comes: until end of file (or
  // only the first chunk), a NUL byte (input_error_), or the run stopping.
  void ReadStdin(bool first_chunk_only) {
    char buf[65536];
    pollfd p = {0, POLLIN, 0};
    bool eof = false;
    for (;;) {
      if (stop_.no_new.load() || stop_.Now() != Stopped::kNo) {
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
      const char end = o_.null_separated ? '\0' : '\n';
      if (const void* nul =
              o_.null_separated ? nullptr : std::memchr(buf, '\0', n)) {
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
      for (std::size_t nl; (nl = pending_.find(end, from)) != std::string::npos;
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
    feed_closed_ = true;
  }

  int DryRun() {
    for (std::size_t i = 0; i < todo_.size(); ++i) {
      const int slot =
          static_cast<int>(i % static_cast<std::size_t>(jobs_)) + 1;
      printer_.Line(CommandLine(o_.tmpl, *todo_[i], slot) + "\n");
    }
    return 0;
  }

  // Waits for job `i`'s turn to start under --delay: jobs take the slots
  // in input order (two workers that took jobs 2 and 3 off the pool's queue
  // reach here in either order), each `delay` after the one before. A job
  // not run (the run stopping) passes its turn on. The pool's queue is
  // FIFO, so job i - 1 is on a worker already when job i waits for it.
  void WaitTurn(std::size_t i) {
    if (o_.delay_s <= 0) return;
    Clock::time_point mine;
    {
      std::unique_lock<std::mutex> lock(delay_mu_);
      while (turn_ < i && !stop_.no_new.load() && stop_.Now() == Stopped::kNo) {
        delay_cv_.wait_for(lock, std::chrono::milliseconds(50));
      }
      turn_ = std::max(turn_, i + 1);
      delay_cv_.notify_all();
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

  // A task of the pool: job `i` run to its end (with its retries) in a
  // slot ({%}) of its own, and reported.
  void RunJob(std::size_t i, const Job& job) {
    struct Done {
      Runner* r;
      Block block;
      ~Done() {
        if (r != nullptr) r->BlockDone(std::move(block));
      }
    } done{o_.pipe ? this : nullptr, o_.pipe ? TakeBlock(i) : Block()};
    const CommandStdin input{.bytes = done.block.bytes.view(),
                             .fd = done.block.in_file ? 0 : -1,
                             .offset = done.block.offset,
                             .length = done.block.length};
    WaitTurn(i);
    if (stop_.no_new.load() || stop_.Now() != Stopped::kNo) return;
    int slot = 1;
    {
      std::lock_guard<std::mutex> lock(slot_mu_);
      if (!free_slots_.empty()) {
        slot = free_slots_.back();
        free_slots_.pop_back();
      }
    }
    const std::string command = CommandLine(o_.tmpl, job, slot);
    const std::string tag = o_.tag ? TagOf(job.args, command) : "";
    // A traced run: the slot's row, a span per run of a command.
    internal::TraceTrack* track =
        trace_ != nullptr
            ? trace_->Worker(slot - 1,
                             [slot] { return "slot " + std::to_string(slot); })
            : nullptr;
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
        outcome = RunOne(command, o_.timeout_s, stop_, *guard_, out, err, drain,
                         o_.pipe ? &input : nullptr);
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
    {
      std::lock_guard<std::mutex> lock(slot_mu_);
      free_slots_.push_back(slot);
    }
    Finish(i, job, command, tag, outcome, out, err);
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
    if (o_.collect != nullptr) {
      if (i >= o_.collect->size()) o_.collect->resize(i + 1);
      (*o_.collect)[i] = {.command = command,
                          .out = out,
                          .err = err,
                          .exit_code = outcome.exit_code,
                          .ran = true};
    }
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
    const bool print = !o_.line_buffer && o_.collect == nullptr;
    printer_.Done(i, print ? out : std::string(), print ? err : std::string(),
                  tag);
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
    if (o_.collect != nullptr) {
      o_.collect->resize(std::max(o_.collect->size(), finished_.size()));
      if (stop_.cancel != nullptr && stop_.cancel->load()) return 130;
      return static_cast<int>(std::min<std::size_t>(failed_, 101));
    }
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
  std::vector<const Job*> todo_;
  std::deque<Job> streamed_;  // the stdin jobs (a deque: stable addresses)
  // --pipe: the reader of stdin's blocks, which takes back their memory.
  std::unique_ptr<BlockReader> reader_;
  std::deque<Block> blocks_;     // --pipe: job i's block, until it runs
  std::size_t blocks_held_ = 0;  // blocks read and not yet run
  std::condition_variable blocks_cv_;
  bool feed_closed_ = true;
  // The pool the commands run on, and one future per submitted job.
  Pool* pool_ = nullptr;
  std::unique_ptr<internal::CallTrace> trace_;  // --trace, --trace-summary
  bool inline_pool_ = false;  // sequential: a task runs when waited for
  std::vector<Future<void>> futures_;
  // The {%} slots not taken by a running command.
  std::optional<std::regex> colsep_;  // --colsep, compiled
  std::mutex slot_mu_;
  std::vector<int> free_slots_;
  std::atomic<std::size_t> known_{0};
  std::size_t stdin_seq_ = 0;
  std::size_t stdin_bytes_ = 0;
  std::size_t stdin_lines_ = 0;  // lines of stdin read to their end
  std::string pending_;          // a line not ended yet
  std::string input_error_;
  std::vector<Finished> finished_;
  std::mutex mu_;
  std::mutex delay_mu_;
  std::condition_variable delay_cv_;
  std::size_t turn_ = 0;  // --delay: the first job whose turn has not come
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

std::vector<CommandResult> RunAll(const std::vector<std::string>& commands,
                                  const RunAllOptions& options) {
  std::vector<CommandResult> results;
  CommandsOptions o{.jobs = options.jobs,
                    .backend = options.backend,
                    .tries = options.tries,
                    .timeout_s = options.timeout_s,
                    .collect = &results};
  CommandInput input;
  input.groups.push_back(commands);
  o.jobs_list = BuildJobs(input);
  RunJobs(o, stdout, stderr, options.cancel);
  results.resize(commands.size());
  return results;
}

int RunJobs(const CommandsOptions& options, std::FILE* out, std::FILE* err,
            const std::atomic<bool>* cancel) {
  if (options.backend == "mpi") {
    return RunJobsOnMpi(options, out, err, cancel);
  }
  if (options.backend != "sequential" && options.backend != "thread" &&
      options.backend != "tbb") {
    throw UsageError("backend '" + options.backend +
                     "' cannot run commands; valid: "
                     "sequential, thread, tbb, mpi");
  }
  Runner runner(options, out, err, cancel);
  return runner.Run();
}

}  // namespace fanout::commands
