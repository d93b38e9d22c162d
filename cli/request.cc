#include "cli/request.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands_mode.h"
#include "cli/memory_room.h"
#include "cli/run_workload.h"
#include "commands/halt.h"
#include "commands/pipe.h"
#include "core/errors.h"
#include "core/executor.h"
#include "workloads/workloads.h"

namespace fanout::cli {
namespace {

constexpr const char* kWorkloads[] = {"dag", "fib",   "noop",
                                      "pi",  "sleep", "sum"};
constexpr long long kIntMax = std::numeric_limits<int>::max();
constexpr long long kLongMax = std::numeric_limits<long long>::max();
// Milliseconds fit an int, so a deadline (now + timeout, in nanoseconds)
// cannot overflow and poll()'s int timeout holds any of them.
constexpr char kMaxMillis[] = "2147483647 (about 24.8 days)";
// --retries in workload mode and --fail-attempts: a million attempts of one
// task is more than a flaky task needs (a larger count is likelier a typo),
// and attempts counted in an int cannot overflow.
constexpr long long kMaxRetries = 1000000;

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// `text` as an integer from `min` to `max`, or a UsageError naming `valid`.
long long ParseInRange(const std::string& flag, const std::string& text,
                       long long min, long long max, const std::string& valid) {
  long long value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  const bool too_big = ec == std::errc::result_out_of_range;
  if (text.empty() || ptr != end || (ec != std::errc() && !too_big)) {
    throw UsageError("--" + flag + "='" + text +
                     "' is not a number; valid: " + valid);
  }
  if (too_big || value < min || value > max) {
    throw UsageError("--" + flag + "=" + text + " is invalid; valid: " + valid);
  }
  return value;
}

// Refuses a task count whose results alone would not fit in the memory this
// process may use (its cgroup's limit, ulimit -v, the machine's available
// memory: a count over a cgroup's limit used to be OOM-killed later without
// a word), before anything is allocated.
void CheckResultsFit(const std::string& typed, std::size_t tasks,
                     const std::string& workload) {
  const std::size_t each = ResultBytes(workload);
  const unsigned __int128 need = static_cast<unsigned __int128>(tasks) * each;
  const MemoryRoom room = MemoryThisProcessMayUse();
  if (!room.known || need <= room.bytes) return;
  throw UsageError("--tasks=" + typed + " is too many: their results need " +
                   ToDecimal(need) + " bytes (" + HumanBytes(need) +
                   ") and this process may use " + ToDecimal(room.bytes) +
                   " bytes (" + HumanBytes(room.bytes) +
                   ") more: " + room.source + "; valid: a count from 0 to " +
                   ToDecimal(room.bytes / each) +
                   " for --workload=" + workload);
}

std::size_t ParseTasks(const RawFlags& f) {
  if (f.tasks.empty()) {
    return f.workload == "sum"     ? workloads::kSumTasks
           : f.workload == "dag"   ? 2000
           : f.workload == "fib"   ? 6
           : f.workload == "sleep" ? 100
           : f.workload == "pi"    ? 1000
                                   : 1000000;
  }
  const auto tasks = static_cast<std::size_t>(
      ParseInRange("tasks", f.tasks, 0, kLongMax, "a count >= 0"));
  if (f.commands.empty()) CheckResultsFit(f.tasks, tasks, f.workload);
  return tasks;
}

void CheckBackend(const std::string& name) {
  const auto names = backend_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    make_executor(name, {.jobs = 1});  // throws, with its "did you mean"
  }
}

// --compare: "all", or a comma-separated list of backends.
std::vector<std::string> ParseCompare(const std::string& text) {
  if (text.empty()) return {};
  if (text == "all") return backend_names();
  std::vector<std::string> backends;
  std::string::size_type start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string name = text.substr(start, end - start);
    start = end + 1;
    if (name.empty()) continue;
    CheckBackend(name);
    backends.push_back(name);
  }
  if (backends.empty()) {
    throw UsageError(
        "--compare needs backends; valid: all, or a list such as "
        "sequential,thread");
  }
  return backends;
}

// --fail-task and --fail-mode, once the number of tasks is known.
void ParseFailure(const RawFlags& f, Request* r) {
  if (f.fail_task.empty()) {
    if (f.fail_mode != RawFlags().fail_mode || f.given.count("fail_mode")) {
      throw UsageError("--fail-mode=" + f.fail_mode +
                       " says how --fail-task fails, and no task is to "
                       "fail; valid: with --fail-task=N, as in --fail-task=3 "
                       "--fail-mode=" +
                       f.fail_mode);
    }
    return;
  }
  r->fail_task = ParseInRange("fail-task", f.fail_task,
                              std::numeric_limits<long long>::min(), kLongMax,
                              "a task index");
  if (r->fail_task < 0 || static_cast<std::size_t>(r->fail_task) >= r->tasks) {
    throw UsageError("--fail-task=" + f.fail_task +
                     " is not a task of this run; valid: 0 to " +
                     std::to_string(static_cast<long long>(r->tasks) - 1));
  }
  r->fail_mode = ParseFailMode(f.fail_mode);
  if (r->fail_mode == FailMode::kOom && f.worker_memory == "0") {
    // Unbounded on purpose: without a limit it would take the machine's
    // memory, and with it other programs.
    throw UsageError(
        "--fail-mode=oom allocates without bound and needs a limit; valid: "
        "with --backend=process --worker-memory=SIZE, e.g. "
        "--worker-memory=256M");
  }
}

// --retries (workload mode), --errors and --fail-attempts.
void ParseRetriesAndErrors(const RawFlags& f, Request* r) {
  const RawFlags defaults;
  const bool commands = IsCommandsMode(*r);
  if (!commands) {
    r->retries = static_cast<int>(ParseInRange(
        "retries", f.retries, 0, kMaxRetries,
        "how many times to run a failed task again, 0 to " +
            std::to_string(kMaxRetries) +
            " (in commands mode: runs of a failing command in all, 0 to "
            "1000)"));
  }
  if (r->retries > 0 && r->reduce) {
    throw UsageError(
        "--retries and --reduce cannot be combined: map_reduce does not "
        "retry (a whole group of tasks would run again); valid: one of them");
  }
  if (f.errors != "fail-fast" && f.errors != "collect") {
    throw UsageError("unknown --errors '" + f.errors +
                     "'; valid: fail-fast, collect");
  }
  r->collect_errors = f.errors == "collect";
  if (commands && f.errors != defaults.errors) {
    throw UsageError(
        "--errors is for workload mode: commands mode runs every command and "
        "exits with the number that failed; valid: --halt to stop early");
  }
  if (r->collect_errors) {
    // Each of these needs every task's result, or compares answers that a
    // run with failed tasks does not have.
    const char* other = r->reduce             ? "--reduce"
                        : !r->stream.empty()  ? "--stream"
                        : !r->compare.empty() ? "--compare"
                        : r->speedup          ? "--speedup"
                                              : nullptr;
    if (other != nullptr) {
      throw UsageError(std::string("--errors=collect and ") + other +
                       " cannot be combined: the answer of a run with failed "
                       "tasks leaves them out; valid: one of them");
    }
  }
  r->fail_attempts = ParseInRange(
      "fail-attempts", f.fail_attempts, 0, kMaxRetries,
      "how many first attempts of --fail-task fail, 0 (every one) to " +
          std::to_string(kMaxRetries));
  if (r->fail_attempts != 0 && r->fail_task < 0) {
    throw UsageError("--fail-attempts=" + f.fail_attempts +
                     " says how many attempts of --fail-task fail; valid: "
                     "with --fail-task=N");
  }
}

// Seconds as a decimal number >= 0 for `flag`.
double ParseSeconds(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double value = text.empty() ? -1 : std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value >= 0) || value > 2147483.0) {
    throw UsageError("--" + flag + "=" + text +
                     " is invalid; valid: seconds from 0 to 2147483, such as "
                     "2.5 (0 for none)");
  }
  return value;
}

// The arguments after the flags: [template...] {::: words... | :::: files...}.
void ParsePositional(const RawFlags& f, Request* r) {
  const auto& p = f.positional;
  std::size_t i = 0;
  const auto is_separator = [](const std::string& w) {
    return w == ":::" || w == "::::" || w == ":::+" || w == "::::+";
  };
  for (; i < p.size() && !is_separator(p[i]); ++i) {
    r->command_template.push_back(p[i]);
  }
  for (; i < p.size(); ++i) {
    if (is_separator(p[i])) {
      const bool linked = p[i].back() == '+';
      if (linked && r->arg_groups.empty()) {
        throw UsageError("'" + p[i] +
                         "' links its arguments to the group before it, "
                         "and there is none; valid: ::: a b :::+ 1 2");
      }
      r->arg_groups.push_back(
          {.from_file = p[i].rfind("::::", 0) == 0, .linked = linked});
    } else {
      r->arg_groups.back().words.push_back(p[i]);
    }
  }
  if (!p.empty() && r->arg_groups.empty() && !f.dashes) {
    // GNU parallel's rule: a command with no ::: or :::: takes its
    // arguments from the lines of stdin (seq 3 | run echo). Not from a
    // terminal, where it would wait for typing that never comes.
    if (p[0] == "-") {
      throw UsageError("unexpected argument '" + p[0] +
                       "'; flags look like --backend=thread");
    }
    if (f.stdin_is_terminal) {
      throw UsageError("'" + p[0] +
                       "' has no ::: or :::: arguments, and stdin is a "
                       "terminal; valid: pipe its input (seq 3 | run " +
                       p[0] + "), or give them (run " + p[0] +
                       " ::: a b), or a flag (flags look like "
                       "--backend=thread)");
    }
  }
  if (!f.commands.empty() && !p.empty()) {
    throw UsageError("--commands=" + f.commands + " and the arguments '" +
                     p[0] + "' both say what to run; valid: one of them");
  }
}

// --recend's text with its escapes read: \n, \t, \r, \0 and \\.
std::string Unescaped(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    const char c = text[++i];
    if (c == 'n') {
      out += '\n';
    } else if (c == 't') {
      out += '\t';
    } else if (c == 'r') {
      out += '\r';
    } else if (c == '0') {
      out += '\0';
    } else if (c == '\\') {
      out += '\\';
    } else {
      throw UsageError("--recend=" + text + ": '\\" + std::string(1, c) +
                       "' is not an escape; valid: \\n, \\t, \\r, \\0, "
                       "\\\\ or plain text, as --recend='\\n\\n'");
    }
  }
  return out;
}

// --pipe and what shapes its blocks (--block, --recend, -N): checked
// together, so that none of them is given where it would do nothing.
void ParsePipe(const RawFlags& f, const Request& r, CommandsOptions* o) {
  const RawFlags d;
  if (!f.pipe) {
    for (const auto& [name, given] :
         {std::pair<const char*, bool>{"block", f.block != d.block},
          {"recend", f.recend != d.recend},
          {"records", f.records != d.records}}) {
      if (given || f.given.count(name) > 0) {
        throw UsageError(std::string("--") + name +
                         " shapes --pipe's blocks and does nothing without "
                         "it; valid: with --pipe, as in cat big.log | run "
                         "--pipe --block=10M grep -c ERROR");
      }
    }
    return;
  }
  const auto refuse = [](const std::string& what) {
    throw UsageError("--pipe feeds blocks of stdin to the commands, " + what +
                     "; valid: cat big.log | run --pipe [--block=SIZE] "
                     "[--recend=TEXT] [-N RECORDS] COMMAND");
  };
  if (r.command_template.empty()) refuse("and no command was given");
  if (!r.arg_groups.empty() || !r.commands.empty()) {
    refuse("so it takes no ::: or :::: arguments and no --commands");
  }
  if (f.null) {
    refuse(
        "so --null has no items to split (for NUL-ended records: "
        "--recend='\\0')");
  }
  if (!f.colsep.empty()) refuse("so --colsep has no items to split");
  if (f.dry_run) refuse("which --dry-run would have to run to show");
  if (r.backend == "mpi") refuse("on this host only, not over mpi's ranks");
  o->pipe = true;
  o->block.block_bytes = ParseByteSize("block", f.block, "from 1 byte to 1G");
  if (o->block.block_bytes == 0 ||
      o->block.block_bytes > commands::kMaxRecordBytes) {
    throw UsageError("--block=" + f.block +
                     " is out of range; valid: 1 byte to 1G, as "
                     "--block=10M (GNU parallel's default: 1M)");
  }
  o->block.recend = Unescaped(f.recend);
  if (o->block.recend.empty()) {
    throw UsageError(
        "--recend is empty, so no record would ever end; valid: the text "
        "that ends a record, as --recend='\\n' (a line, the default) or "
        "--recend='\\0'");
  }
  o->block.records = static_cast<std::size_t>(
      ParseInRange("records", f.records, 0, 1LL << 30,
                   "records a block, 0 (blocks by --block) to 1073741824"));
}

// The commands-mode flags.
void ParseCommandsOptions(const RawFlags& f, Request* r) {
  CommandsOptions& o = r->commands_options;
  o.keep_order = f.keep_order;
  o.line_buffer = f.line_buffer;
  if (o.keep_order && o.line_buffer) {
    throw UsageError(
        "--keep-order and --line-buffer cannot be combined; valid: one of "
        "them");
  }
  o.tag = f.tag;
  o.results = f.results;
  o.joblog = f.joblog;
  // GNU parallel's --joblog +FILE: rows appended to what FILE holds.
  if (o.joblog.size() > 1 && o.joblog[0] == '+') {
    o.joblog.erase(0, 1);
    o.joblog_append = true;
  }
  o.resume = f.resume;
  o.resume_failed = f.resume_failed;
  if ((o.resume || o.resume_failed) && o.joblog.empty()) {
    throw UsageError(std::string("--") +
                     (o.resume ? "resume" : "resume-failed") +
                     " needs the log of the run to resume; valid: with "
                     "--joblog=FILE");
  }
  if (IsCommandsMode(*r)) {
    o.tries = static_cast<int>(ParseInRange("retries", f.retries, 0, 1000,
                                            "runs of a failing command in "
                                            "all, 0 to 1000 (0 and 1: once)"));
  }
  o.halt = commands::ParseHalt(f.halt);
  o.halt_text = f.halt;
  o.timeout_s = ParseSeconds("timeout", f.timeout);
  o.delay_s = ParseSeconds("delay", f.delay);
  o.dry_run = f.dry_run;
  o.colsep = f.colsep;
  if (!o.colsep.empty()) {
    try {
      const std::regex check(o.colsep);
    } catch (const std::regex_error& e) {
      throw UsageError("--colsep=" + o.colsep +
                       " is not a regular expression (" + e.what() +
                       "); valid: an ECMAScript regex, as --colsep=, or "
                       "--colsep='\\t'");
    }
  }
  o.null_separated = f.null;
  ParsePipe(f, *r, &o);
  const RawFlags defaults;
  const bool from_stdin = f.commands == "-" ||
                          (f.commands.empty() && !r->command_template.empty() &&
                           r->arg_groups.empty());
  if (r->backend == "mpi" &&
      (from_stdin || o.line_buffer || o.resume || o.resume_failed ||
       f.halt != defaults.halt || f.delay != defaults.delay || o.dry_run)) {
    throw UsageError(
        "--backend=mpi runs commands on every rank from the same input and "
        "prints them on rank 0 in input order; valid with it: ::: and :::: "
        "arguments or --commands=FILE (not stdin), --jobs, --tag, --joblog, "
        "--results, --retries, --timeout, --timeout-ms");
  }
}

// --inputs and --workload=dag: what they cannot be combined with is
// refused, never ignored.
void CheckInputsAndDag(const RawFlags& f, Request* r) {
  r->inputs = f.inputs;
  if (!r->inputs.empty()) {
    const auto refuse = [&](const std::string& what, const char* why) {
      throw UsageError("--inputs=" + r->inputs + " cannot be combined with " +
                       what + ": " + why +
                       "; valid: --inputs=FILE (or - for stdin) with "
                       "--workload=sum, fib or noop, and --stream to print "
                       "each result as it comes");
    };
    if (r->workload != "sum" && r->workload != "fib" && r->workload != "noop") {
      refuse("--workload=" + r->workload,
             "its tasks take no input n (sum, fib and noop do)");
    }
    if (!f.tasks.empty()) {
      refuse("--tasks", "the number of tasks is the number of lines");
    }
    if (r->reduce) refuse("--reduce", "a reduction needs a known task count");
    if (!r->checkpoint.empty()) {
      refuse("--checkpoint", "a checkpoint needs a known task count");
    }
    if (r->speedup || !r->compare.empty()) {
      refuse(r->speedup ? "--speedup" : "--compare",
             "the input is read once, so it cannot be run twice");
    }
    if (r->collect_errors) {
      refuse("--errors=collect",
             "a failed line stops the stream where the loop reaches it");
    }
    if (r->timeout.count() != 0) {
      refuse("--timeout-ms", "a stream of unknown length has no deadline");
    }
    if (r->verbose != 0 || r->progress) {
      refuse(r->verbose != 0 ? "--verbose" : "--progress",
             "progress needs a known task count");
    }
    if (!r->trace.empty() || r->trace_summary) {
      refuse(!r->trace.empty() ? "--trace" : "--trace-summary",
             "its batches run on a pool, whose tasks are not traced");
    }
  }
  if (r->workload == "dag") {
    const auto refuse = [&](const std::string& what, const char* why) {
      throw UsageError("--workload=dag cannot be combined with " + what + ": " +
                       why +
                       "; valid: --workload=dag with --tasks, --seed, "
                       "--jobs, --backend, --retries, --fail-task, "
                       "--errors, --checkpoint, --task-timeout-ms and "
                       "--worker-memory");
    };
    if (!r->stream.empty()) {
      refuse("--stream", "its answer is one checksum of every task");
    }
    if (r->timeout.count() != 0) {
      refuse("--timeout-ms", "a pool's tasks have no call to time out");
    }
    if (r->verbose != 0 || r->progress) {
      refuse(r->verbose != 0 ? "--verbose" : "--progress",
             "a pool reports no progress lines");
    }
    if (r->batch_size != 0) {
      refuse("--batch-size", "each node of the graph is one task");
    }
    if (!r->trace.empty() || r->trace_summary) {
      refuse(!r->trace.empty() ? "--trace" : "--trace-summary",
             "a pool's submitted tasks are not traced");
    }
  }
}

// A flag of one mode given in the other is refused, never ignored: named,
// with the mode it belongs to and what is valid instead.
void CheckModeFlags(const RawFlags& f, const Request& r) {
  const RawFlags d;
  struct Flag {
    const char* name;  // as typed, with dashes
    bool differs;      // its value is not its default
  };
  const auto given = [&](const Flag& flag) {
    std::string name = flag.name;
    std::replace(name.begin(), name.end(), '-', '_');
    return flag.differs || f.given.count(name) > 0;
  };
  if (IsCommandsMode(r)) {
    // --checkpoint and --errors have their own words, below.
    const Flag workload_only[] = {
        {"workload", f.workload != d.workload},
        {"tasks", f.tasks != d.tasks},
        {"inputs", f.inputs != d.inputs},
        {"sleep-ms", f.sleep_ms != d.sleep_ms},
        {"batch-size", f.batch_size != d.batch_size},
        {"speedup", f.speedup != d.speedup},
        {"reduce", f.reduce != d.reduce},
        {"stream", f.stream != d.stream},
        {"seed", f.seed != d.seed},
        {"fail-task", f.fail_task != d.fail_task},
        {"fail-mode", f.fail_mode != d.fail_mode},
        {"fail-attempts", f.fail_attempts != d.fail_attempts},
        {"task-timeout-ms", f.task_timeout_ms != d.task_timeout_ms},
        {"worker-memory", f.worker_memory != d.worker_memory},
        {"compare", f.compare != d.compare},
        {"format", f.format != d.format},
    };
    const std::string valid =
        "; valid in commands mode: --jobs, --backend, --retries, --colsep, "
        "--null, --pipe, --block, --recend, --records (-N), "
        "--timeout, --timeout-ms, --halt, --delay, --keep-order, "
        "--line-buffer, --tag, --results, --joblog, --resume, "
        "--resume-failed, --dry-run, --progress, --verbose, --trace, "
        "--trace-summary";
    for (const Flag& flag : workload_only) {
      if (given(flag)) {
        throw UsageError(std::string("--") + flag.name +
                         " is for workload mode (--workload=...), not "
                         "commands mode, where it would be ignored" +
                         valid);
      }
    }
    // Each command is a task of a pool on --backend (commands/commands.h).
    // On process it would run in a forked worker, whose report of its end
    // (job log row, output order, halt rule) this run would not see.
    if (r.backend == "process") {
      throw UsageError(
          "--backend=process cannot run commands yet (a command launched "
          "from a forked worker would report its end to that worker, not to "
          "this run); valid in commands mode: --backend=sequential (one at "
          "a time), thread (the default), tbb or mpi");
    }
    return;
  }
  const struct {
    Flag flag;
    const char* example;
  } commands_only[] = {
      {{"keep-order", f.keep_order != d.keep_order}, "--keep-order"},
      {{"line-buffer", f.line_buffer != d.line_buffer}, "--line-buffer"},
      {{"tag", f.tag != d.tag}, "--tag"},
      {{"results", f.results != d.results}, "--results=out"},
      {{"joblog", f.joblog != d.joblog}, "--joblog=run.log"},
      {{"resume", f.resume != d.resume}, "--joblog=run.log --resume"},
      {{"resume-failed", f.resume_failed != d.resume_failed},
       "--joblog=run.log --resume-failed"},
      {{"halt", f.halt != d.halt}, "--halt=now,fail=1"},
      {{"timeout", f.timeout != d.timeout}, "--timeout=2.5"},
      {{"delay", f.delay != d.delay}, "--delay=0.5"},
      {{"dry-run", f.dry_run != d.dry_run}, "--dry-run"},
      {{"colsep", f.colsep != d.colsep}, "--colsep=,"},
      {{"null", f.null != d.null}, "--null"},
      {{"pipe", f.pipe != d.pipe}, "--pipe"},
      {{"block", f.block != d.block}, "--pipe --block=10M"},
      {{"recend", f.recend != d.recend}, "--pipe --recend='\\0'"},
      {{"records", f.records != d.records}, "--pipe -N 1000"},
  };
  for (const auto& [flag, example] : commands_only) {
    if (given(flag)) {
      throw UsageError(std::string("--") + flag.name +
                       " is for commands mode, not workload mode; valid: "
                       "with --commands=FILE or arguments, as in: run " +
                       example +
                       // -0 reads stdin: no ::: with it.
                       (std::string(flag.name) == "null" ? " echo < items"
                        : std::string(example).rfind("--pipe", 0) == 0
                            ? " wc -l < items"
                            : " echo ::: a b"));
    }
  }
}

// `path` as a message shows it: whole, or its start and its length when it
// is too long to read.
std::string Shown(const std::string& path) {
  if (path.size() <= 200) return path;
  return path.substr(0, 60) + "... (" + std::to_string(path.size()) +
         " characters)";
}

// Refuses a --checkpoint (or --trace) path that cannot be a journal (a
// trace), before any task runs: one that is a directory, a device, a FIFO
// or a socket, cannot be read and written (written), or cannot be created
// where it is. `name` is the flag, `example` a valid value.
void CheckFilePath(const std::string& name, const std::string& path,
                   const char* example, bool read) {
  const std::string flag = "--" + name + "=" + Shown(path);
  const std::string valid =
      std::string("; valid: a regular file that can be ") +
      (read ? "read and written" : "written") +
      ", or a new file's path in a directory that exists and can be "
      "written, as in --" +
      name + "=" + example;
  std::size_t longest = 0;
  for (std::size_t from = 0; from <= path.size();) {
    const std::size_t slash = std::min(path.find('/', from), path.size());
    longest = std::max(longest, slash - from);
    from = slash + 1;
  }
  if (path.size() >= PATH_MAX || longest > NAME_MAX) {
    throw UsageError(
        flag + ": the path is too long (" + std::to_string(path.size()) +
        " characters, its longest name " + std::to_string(longest) +
        "); valid: a path of up to " + std::to_string(PATH_MAX - 1) +
        " characters, each name " + "up to " + std::to_string(NAME_MAX) +
        ", to a regular file or a new file, as in --" + name + "=" + example);
  }
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    const char* kind = S_ISDIR(st.st_mode)    ? "is a directory"
                       : S_ISCHR(st.st_mode)  ? "is a character device"
                       : S_ISBLK(st.st_mode)  ? "is a block device"
                       : S_ISFIFO(st.st_mode) ? "is a FIFO"
                       : S_ISSOCK(st.st_mode) ? "is a socket"
                       : !S_ISREG(st.st_mode) ? "is not a regular file"
                                              : nullptr;
    if (kind != nullptr) throw UsageError(flag + ": " + kind + valid);
    if (access(path.c_str(), read ? R_OK | W_OK : W_OK) != 0) {
      throw UsageError(flag + ": cannot be " +
                       (read ? "read and written: " : "written: ") +
                       std::strerror(errno) + valid);
    }
    return;
  }
  if (errno != ENOENT) {
    throw UsageError(flag + ": " + std::strerror(errno) + valid);
  }
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw UsageError(
        flag + ": cannot be created: " + Shown(dir) +
        (errno == ENOENT ? " does not exist" : " is not a directory") + valid);
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    throw UsageError(flag + ": cannot be created in " + Shown(dir) + ": " +
                     std::strerror(errno) + valid);
  }
}

}  // namespace

std::size_t ParseByteSize(const std::string& flag, const std::string& text,
                          const char* zero) {
  const std::string valid =
      "bytes (268435456) or a number with K, M, G or T (binary units: 256M, "
      "1.5G, 2GiB); " +
      std::string(zero);
  double number = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, number);
  if (text.empty() || ec != std::errc() || text[0] == '-' || text[0] == '+' ||
      !std::isfinite(number)) {
    throw UsageError("--" + flag + "='" + text +
                     "' is not a size; valid: " + valid);
  }
  std::string unit(ptr, end);
  for (char& c : unit) c = static_cast<char>(std::toupper(c));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},         {"B", 1},       {"K", 0x1p10},   {"KB", 0x1p10},
      {"KIB", 0x1p10}, {"M", 0x1p20},  {"MB", 0x1p20},  {"MIB", 0x1p20},
      {"G", 0x1p30},   {"GB", 0x1p30}, {"GIB", 0x1p30}, {"T", 0x1p40},
      {"TB", 0x1p40},  {"TIB", 0x1p40}};
  for (const auto& [name, scale] : kUnits) {
    if (unit != name) continue;
    const double bytes = number * scale;
    if (bytes != static_cast<double>(static_cast<long long>(bytes)) &&
        scale == 1) {
      break;  // a fraction of a byte
    }
    if (bytes >= 0x1p62) {
      throw UsageError("--" + flag + "=" + text +
                       " is too large; valid: " + valid + ", below 4 EiB");
    }
    return static_cast<std::size_t>(bytes);
  }
  throw UsageError("--" + flag + "='" + text +
                   "' is not a size; valid: " + valid);
}

std::vector<std::string> WorkloadNames() {
  return std::vector<std::string>(std::begin(kWorkloads), std::end(kWorkloads));
}

// GNU parallel's forms of -j in commands mode, as a count: 0 as many as
// the backends allow at once (64 per CPU), +N the CPUs plus N, N% that
// share of the CPUs (at least 1). Anything else as typed (-N stays
// joblib's: every CPU but N - 1).
std::string GnuJobs(const std::string& jobs, const Request& r) {
  if (!IsCommandsMode(r) || jobs.empty()) return jobs;
  const long long cpus = usable_cpus();
  const auto digits = [](const std::string& s) {
    return !s.empty() && s.size() <= 9 &&
           s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (jobs == "0") return std::to_string(64 * cpus);
  if (jobs[0] == '+' && digits(jobs.substr(1))) {
    return std::to_string(cpus + std::stoll(jobs.substr(1)));
  }
  if (jobs.back() == '%' && digits(jobs.substr(0, jobs.size() - 1))) {
    const long long share =
        cpus * std::stoll(jobs.substr(0, jobs.size() - 1)) / 100;
    if (share < 1) {
      throw UsageError("--jobs=" + jobs + " is less than one job (" +
                       std::to_string(cpus) +
                       " usable CPUs here); valid: a share that gives at "
                       "least one, as 50%");
    }
    return std::to_string(share);
  }
  return jobs;
}

Request ParseRequest(const RawFlags& f) {
  Request r;
  r.backend = f.backend;
  CheckBackend(f.backend);
  r.commands = f.commands;
  ParsePositional(f, &r);
  CheckModeFlags(f, r);
  const std::string jobs_valid =
      "-1 for every usable CPU (" + std::to_string(usable_cpus()) +
      " here), -2 for all but one, or a count from 1 to " +
      std::to_string(kIntMax) +
      (IsCommandsMode(r) ? "; in commands mode also GNU parallel's 0 (64 per "
                           "CPU), +N (the CPUs plus N) and N% (of the CPUs)"
                         : "");
  r.jobs = static_cast<int>(ParseInRange("jobs", GnuJobs(f.jobs, r),
                                         -kIntMax - 1, kIntMax, jobs_valid));
  if (r.jobs == 0) {
    throw UsageError("--jobs=0 is invalid; valid: " + jobs_valid);
  }
  r.workload = f.workload;
  const auto workloads = WorkloadNames();
  if (std::find(workloads.begin(), workloads.end(), f.workload) ==
      workloads.end()) {
    throw UsageError("unknown workload '" + f.workload +
                     "'; valid workloads: " + Join(workloads));
  }
  r.tasks = ParseTasks(f);
  r.sleep_ms = static_cast<int>(
      ParseInRange("sleep-ms", f.sleep_ms, 0, kIntMax,
                   std::string("milliseconds from 0 to ") + kMaxMillis));
  r.batch_size = static_cast<std::size_t>(ParseInRange(
      "batch-size", f.batch_size, 0, kLongMax, "a count >= 1, or 0 for auto"));
  r.timeout = std::chrono::milliseconds(ParseInRange(
      "timeout-ms", f.timeout_ms, 0, kIntMax,
      std::string("milliseconds from 1 to ") + kMaxMillis + ", or 0 for none"));
  r.task_timeout = std::chrono::milliseconds(ParseInRange(
      "task-timeout-ms", f.task_timeout_ms, 0, kIntMax,
      std::string("milliseconds from 1 to ") + kMaxMillis + ", or 0 for none"));
  r.worker_memory = ParseByteSize("worker-memory", f.worker_memory);
  r.verbose = static_cast<int>(ParseInRange("verbose", f.verbose, 0, kIntMax,
                                            "0 (none) to 50 (every event)"));
  r.speedup = f.speedup;
  r.seed = static_cast<std::uint64_t>(
      ParseInRange("seed", f.seed, 0, kLongMax, "a number from 0 up"));
  r.reduce = f.reduce;
  if (r.reduce && r.workload != "sum") {
    throw UsageError("--reduce works with --workload=sum (got --workload=" +
                     r.workload + "); valid: --workload=sum --reduce");
  }
  if (!f.stream.empty() && f.stream != "ordered" && f.stream != "unordered") {
    throw UsageError("unknown --stream '" + f.stream +
                     "'; valid: ordered, unordered");
  }
  r.stream = f.stream;
  if (r.reduce && !r.stream.empty()) {
    throw UsageError(
        "--reduce and --stream cannot be used together: a reduction has no "
        "per-task results to print; valid: --reduce alone (the sum through "
        "map_reduce), or --stream=ordered or --stream=unordered alone (each "
        "task's result as it comes)");
  }
  if (f.format != "text" && f.format != "json") {
    throw UsageError("unknown --format '" + f.format + "'; valid: text, json");
  }
  r.json = f.format == "json";
  r.checkpoint = f.checkpoint;
  if (!r.checkpoint.empty() && (f.speedup || !f.compare.empty())) {
    throw UsageError(std::string("--checkpoint cannot be combined with --") +
                     (f.speedup ? "speedup" : "compare") +
                     ": a run that reads results back from the file is not a "
                     "timing; valid: --checkpoint=FILE on a single run");
  }
  r.progress = f.progress;
  ParseCommandsOptions(f, &r);
  if (!r.checkpoint.empty() &&
      (!r.commands.empty() || !r.command_template.empty() ||
       !r.arg_groups.empty())) {
    throw UsageError(
        "--checkpoint is for workloads; commands mode resumes with "
        "--joblog=FILE --resume");
  }
  if (!r.checkpoint.empty()) {
    CheckFilePath("checkpoint", r.checkpoint, "sum.ckpt", /*read=*/true);
  }
  r.trace = f.trace;
  r.trace_summary = f.trace_summary;
  r.commands_options.trace = f.trace;
  r.commands_options.trace_summary = f.trace_summary;
  if (!r.trace.empty()) {
    CheckFilePath("trace", r.trace, "run.json", /*read=*/false);
  }
  r.compare = ParseCompare(f.compare);
  ParseFailure(f, &r);
  ParseRetriesAndErrors(f, &r);
  CheckInputsAndDag(f, &r);
  return r;
}

}  // namespace fanout::cli
