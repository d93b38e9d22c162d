// fanout/commands/options.h — how the commands library runs its jobs, as
// the CLI checks them from its flags (cli/request.cc) and RunJobs uses them
// (commands/commands.h).
//
//   fanout::commands::CommandsOptions o{.keep_order = true, .tries = 3};
#ifndef FANOUT_COMMANDS_OPTIONS_H_
#define FANOUT_COMMANDS_OPTIONS_H_

#include <chrono>
#include <string>
#include <vector>

#include "commands/halt.h"
#include "commands/input.h"
#include "commands/pipe.h"

namespace fanout::commands {

// One command's end, as RunAll gives it.
struct CommandResult {
  std::string command;  // as run, its replacement strings filled in
  std::string out;      // its stdout
  std::string err;      // its stderr
  int exit_code = 0;    // its exit status, or 128 + the signal that ended it
  bool ran = false;     // false when the run stopped before it started
};

struct CommandsOptions {
  int jobs = -1;  // joblib's rule: -1 every usable CPU
  // The engine the commands run on, a task of its pool (core/pool.h) each:
  // sequential (one at a time), thread, tbb (launched from its workers), or
  // mpi (over the ranks under fanout-mpirun).
  std::string backend = "thread";
  std::string tmpl;  // "" = each job's arguments are its command
  std::vector<Job> jobs_list;
  bool keep_order = false;     // -k: output in input order
  bool line_buffer = false;    // whole lines as they come
  bool tag = false;            // prefix lines with the arguments and a tab
  std::string results;         // DIR/<seq>/{cmd,stdout,stderr,exitval}
  std::string joblog;          // GNU parallel's job log
  bool joblog_append = false;  // --joblog=+FILE: rows added to FILE's
  bool resume = false;         // skip commands already in the job log
  bool resume_failed = false;  // ... and rerun the ones that failed there
  int tries = 1;               // --retries: runs of a failing command in all
  HaltRule halt;
  double timeout_s = 0;  // per command; 0 = none
  double delay_s = 0;    // between starts
  bool dry_run = false;  // print the commands, run nothing
  // --colsep: each argument split into columns at this regex ({1} {2} ...).
  std::string colsep;
  // -0: the items of stdin end with a NUL byte, not a newline.
  bool null_separated = false;
  std::chrono::milliseconds run_timeout{0};  // the whole run; 0 = none
  bool progress = false;                     // a progress line on a terminal
  int verbose = 0;        // >= 1: say what holds the commands (the cgroup)
  std::string halt_text;  // as typed, for the summary
  // --trace: a row per slot, a span per command run; --trace-summary.
  std::string trace;
  bool trace_summary = false;
  // The jobs are the lines of stdin, run as they come (jobs_list unused):
  // commands (--commands=-: blank and # lines skipped) or the template's
  // arguments. `stdin_name` names the input in messages.
  bool stream_stdin = false;
  // --pipe: stdin is cut into blocks of whole records (`block`), each the
  // stdin of one command of the template (stream_stdin must be set); at
  // most twice --jobs blocks are held at a time, however long the input.
  bool pipe = false;
  BlockRule block;
  bool stdin_is_commands = false;
  std::string stdin_name = "stdin";
  // When set, each command's result is kept here (in input order) instead
  // of printed, and no summary is printed (RunAll).
  std::vector<CommandResult>* collect = nullptr;
};

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_OPTIONS_H_
