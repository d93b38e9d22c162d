// fanout/cli/request.h — the CLI's flags as typed, checked into a Request.
//
//   fanout::cli::Request r = fanout::cli::ParseRequest({.jobs = "2"});
//
// ParseRequest throws fanout::UsageError naming the flag, what is wrong and
// what is valid. Numbers are read as 64-bit integers and must fit the range
// the flag names: nothing is cut to fit an int. --sleep-ms and --timeout-ms
// go up to 2147483647 (about 24.8 days), so that adding them to a clock never
// overflows; --tasks is refused when its results would not fit in the
// machine's memory.
#ifndef FANOUT_CLI_REQUEST_H_
#define FANOUT_CLI_REQUEST_H_

#include <chrono>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "cli/faults.h"
#include "commands/options.h"

namespace fanout::cli {

// The commands library's options, as commands mode fills them.
using commands::CommandsOptions;

// Flag values as the user typed them.
struct RawFlags {
  std::string backend = "thread";
  std::string jobs = "-1";
  std::string workload = "sum";
  std::string tasks;  // "" = the workload's default
  std::string sleep_ms = "10";
  std::string batch_size = "0";
  std::string timeout_ms = "0";
  std::string verbose = "0";
  bool speedup = false;
  bool reduce = false;
  std::string stream;      // "", "ordered" or "unordered"
  std::string checkpoint;  // a file; "" = none
  std::string trace;       // a trace file; "" = none
  bool trace_summary = false;
  std::string inputs;  // a file of task inputs, "-" for stdin; "" = none
  std::string seed = "1";
  std::string fail_task;
  std::string fail_mode = "throw";
  std::string task_timeout_ms = "0";
  std::string worker_memory = "0";
  std::string fail_attempts = "0";   // first K attempts fail; 0 = every one
  std::string errors = "fail-fast";  // or "collect" (workload mode)
  std::string compare;  // "", "all" or a comma-separated list of backends
  std::string format = "text";
  bool progress = false;
  std::string commands;  // a file of commands, "-" for stdin; "" = workload
  // Commands mode, as GNU parallel spells it.
  bool keep_order = false;
  bool line_buffer = false;
  bool tag = false;
  std::string results;
  std::string joblog;
  bool resume = false;
  bool resume_failed = false;
  std::string retries = "0";  // workload: retries; commands: tries in all
  std::string halt = "never";
  std::string timeout = "0";  // seconds per command
  std::string delay = "0";    // seconds between starts
  bool dry_run = false;
  std::string colsep;        // "" = one argument a line
  bool null = false;         // -0: stdin items end with NUL
  bool pipe = false;         // --pipe: blocks of stdin as each command's stdin
  std::string block = "1M";  // --block: a block's size
  std::string recend = "\\n";  // --recend, escapes unread (\\n: a newline)
  std::string records = "0";   // -N: records a block (--pipe)
  // Arguments after the flags: a command template, then `:::` words and
  // `::::` files; `dashes` when they came after "--".
  std::vector<std::string> positional;
  bool dashes = false;
  // Whether stdin is a terminal: a command template with no ::: or ::::
  // then has no input to read (a usage error, not a wait).
  bool stdin_is_terminal = false;
  // The flags given (names with underscores, as "sleep_ms"), even with
  // their default value; a flag whose value differs from its default counts
  // as given too.
  std::set<std::string> given;
};

// A group of arguments: `:::` words, or `::::` files (a group each).
struct ArgGroup {
  bool from_file = false;
  bool linked = false;  // :::+ / ::::+: paired with the group before it
  std::vector<std::string> words;
};

// Validated.
struct Request {
  std::string backend;
  int jobs = -1;
  std::string workload;
  std::size_t tasks = 0;
  int sleep_ms = 10;
  std::size_t batch_size = 0;
  std::chrono::milliseconds timeout{0};
  int verbose = 0;
  bool speedup = false;
  std::uint64_t seed = 1;      // --workload=pi's random streams
  bool reduce = false;         // the sum workload through map_reduce
  std::string stream;          // "", "ordered" or "unordered"
  std::string checkpoint;      // Options::checkpoint; "" = none
  std::string trace;           // Options::trace; "" = none
  bool trace_summary = false;  // print where each run's time went
  // --inputs: each line of this file ("-": stdin) is one task's input n,
  // read as it arrives (imap over the lines); "" = tasks 0 .. tasks-1.
  std::string inputs;
  long long fail_task = -1;
  FailMode fail_mode = FailMode::kNone;
  std::chrono::milliseconds task_timeout{0};  // Options::task_timeout
  std::size_t worker_memory = 0;              // Options::worker_memory
  long long fail_attempts = 0;  // --fail-attempts: 0 = every attempt fails
  bool collect_errors = false;  // --errors=collect: every task runs
  int retries = 0;  // workload mode: runs again of a failed task (Options)
  std::vector<std::string> compare;  // backends to compare; empty = one run
  bool json = false;
  bool progress = false;
  std::string commands;
  std::vector<std::string> command_template;  // words before the first :::
  std::vector<ArgGroup> arg_groups;
  CommandsOptions commands_options;  // jobs_list and tmpl filled later
};

std::vector<std::string> WorkloadNames();
Request ParseRequest(const RawFlags& flags);

// --worker-memory's value in bytes: plain bytes ("268435456"), or a number
// with a binary unit K, M, G or T ("256M", "1.5G", "2GiB"); 0 = no limit.
// Throws UsageError naming the valid forms, `zero` saying what 0 means.
std::size_t ParseByteSize(const std::string& flag, const std::string& text,
                          const char* zero = "0 for no limit");

}  // namespace fanout::cli

#endif  // FANOUT_CLI_REQUEST_H_
