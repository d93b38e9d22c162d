// fanout/commands/commands.h — run shell commands side by side, like xargs -P or
// GNU parallel, and like the reference program's parent launching children.
//
//   // one command per line; blank lines and lines starting with # skipped
//   std::vector<std::string> cmds = fanout::commands::ParseCommands(text);
//   int code = fanout::commands::RunCommands(cmds, /*jobs=*/4, stdout, stderr, &cancel);
//
//   // GNU parallel's forms: run -k --joblog=log -- gzip {} ::: a.txt b.txt
//   fanout::commands::CommandsOptions o{.tmpl = "gzip {}", .keep_order = true,
//                                  .joblog = "log"};
//   o.jobs_list = fanout::commands::BuildJobs({.groups = {{"a.txt", "b.txt"}}});
//   int code = fanout::commands::RunJobs(o, stdout, stderr, &cancel);
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

// Runs the jobs of `options`. Throws UsageError before running anything
// when the job log or results directory cannot be used.
int RunJobs(const CommandsOptions& options, std::FILE* out, std::FILE* err,
            const std::atomic<bool>* cancel);

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_COMMANDS_H_
