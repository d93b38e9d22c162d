// fanout/cli/commands_options.h — how commands mode runs its jobs, as
// checked from the flags (cli/request.cc) and used by RunJobs
// (cli/commands.h).
//
//   fanout::cli::CommandsOptions o{.keep_order = true, .tries = 3};
#ifndef FANOUT_CLI_COMMANDS_OPTIONS_H_
#define FANOUT_CLI_COMMANDS_OPTIONS_H_

#include <chrono>
#include <string>
#include <vector>

#include "cli/command_input.h"
#include "cli/halt.h"

namespace fanout::cli {

struct CommandsOptions {
  int jobs = -1;     // joblib's rule: -1 every usable CPU
  std::string tmpl;  // "" = each job's arguments are its command
  std::vector<Job> jobs_list;
  bool keep_order = false;     // -k: output in input order
  bool line_buffer = false;    // whole lines as they come
  bool tag = false;            // prefix lines with the arguments and a tab
  std::string results;         // DIR/<seq>/{cmd,stdout,stderr,exitval}
  std::string joblog;          // GNU parallel's job log
  bool resume = false;         // skip commands already in the job log
  bool resume_failed = false;  // ... and rerun the ones that failed there
  int tries = 1;               // --retries: runs of a failing command in all
  HaltRule halt;
  double timeout_s = 0;                      // per command; 0 = none
  double delay_s = 0;                        // between starts
  bool dry_run = false;                      // print the commands, run nothing
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
  bool stdin_is_commands = false;
  std::string stdin_name = "stdin";
};

}  // namespace fanout::cli

#endif  // FANOUT_CLI_COMMANDS_OPTIONS_H_
