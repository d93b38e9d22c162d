// fanout/commands/commands.h — run shell commands side by side, as xargs -P
// and GNU parallel do, and as the reference program's parent launches its
// children: the library behind `run ... ::: ...` (the CLI's commands mode).
//
//   #include "commands/commands.h"
//
//   // Each command's output and exit code, in input order; nothing printed.
//   std::vector<fanout::commands::CommandResult> rs =
//       fanout::commands::RunAll({"gzip -k a.log", "gzip -k b.log"},
//                                {.jobs = 4});
//   for (const auto& r : rs) std::printf("%d %s\n", r.exit_code,
//                                        r.command.c_str());
//
//   // GNU parallel's forms, printed as `run` prints them:
//   //   run -k --joblog=log -- gzip {} ::: a.txt b.txt
//   fanout::commands::CommandsOptions o{.tmpl = "gzip {}", .keep_order = true,
//                                       .joblog = "log"};
//   o.jobs_list = fanout::commands::BuildJobs(
//       {.tmpl = {"gzip", "{}"}, .groups = {{"a.txt", "b.txt"}}});
//   int failed = fanout::commands::RunJobs(o, stdout, stderr, &cancel);
//
// Python → fanout: subprocess.run(cmd, shell=True, capture_output=True) over
// a ThreadPoolExecutor is RunAll; os.system("cmd &") five times and waiting
// is RunAll(five commands, {.jobs = 5}) (examples/parent_children).
//
// Each command runs under /bin/sh -c in its own process group, `jobs` at a
// time. Its stdout and stderr are collected and written out together when it
// ends (grouped, never interleaved with another command's), or in input order
// (keep_order), or line by line as they come (line_buffer). A command is done
// when its shell exits: what it left running in the background is then killed
// with its process group, so that nothing outlives it (see process_guard.h
// for the run's own death). A summary of exit codes goes to stderr. The
// result is GNU parallel's: the number of commands that failed (101 for
// more than 100; a command whose job log row or results could not be
// written counts), 0 when every one succeeded; 1 when the run's deadline
// passed, 130 when `cancel` was raised (every running command's process
// group is then sent SIGTERM, then SIGKILL).
#ifndef FANOUT_COMMANDS_COMMANDS_H_
#define FANOUT_COMMANDS_COMMANDS_H_

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "commands/input.h"
#include "commands/options.h"

namespace fanout::commands {

// The commands of `text`: one a line, skipping blank lines and # comments.
std::vector<std::string> ParseCommands(const std::string& text);

// Runs `commands` grouped, `jobs` at a time.
int RunCommands(const std::vector<std::string>& commands, int jobs,
                std::FILE* out, std::FILE* err,
                const std::atomic<bool>* cancel);

// How RunAll runs its commands.
struct RunAllOptions {
  int jobs = -1;                   // at a time; -1: every usable CPU
  std::string backend = "thread";  // see CommandsOptions::backend
  int tries = 1;                   // runs of a failing command in all
  double timeout_s = 0;            // per command (killed after it); 0: none
  const std::atomic<bool>* cancel = nullptr;  // raised: every command stops
};

// Runs `commands` side by side and returns each one's result, in input
// order, printing nothing. Throws fanout::UsageError for options it cannot
// honour (before anything runs).
std::vector<CommandResult> RunAll(const std::vector<std::string>& commands,
                                  const RunAllOptions& options = {});

// Runs the jobs of `options`. Throws UsageError before running anything
// when the job log or results directory cannot be used.
int RunJobs(const CommandsOptions& options, std::FILE* out, std::FILE* err,
            const std::atomic<bool>* cancel);

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_COMMANDS_H_
