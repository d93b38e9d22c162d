// fanout/cli/commands.h — run shell commands side by side, like xargs -P or
// GNU parallel, and like the reference program's parent launching children.
//
//   // one command per line; blank lines and lines starting with # skipped
//   std::vector<std::string> cmds = fanout::cli::ParseCommands(text);
//   int code = fanout::cli::RunCommands(cmds, /*jobs=*/4, stdout, stderr, &cancel);
//
// Each command runs under /bin/sh -c in its own process group, `jobs` at a
// time. Its stdout and stderr are collected and written out together when it
// ends (grouped, never interleaved with another command's). A summary of exit
// codes goes to stderr. The result is 0 when every command succeeded, 1 when
// any failed, 130 when `cancel` was raised (every running command's process
// group is then sent SIGTERM, then SIGKILL). Commands die with the runner if
// it is killed (PR_SET_PDEATHSIG).
#ifndef FANOUT_CLI_COMMANDS_H_
#define FANOUT_CLI_COMMANDS_H_

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

namespace fanout::cli {

// The commands of `text`: one a line, skipping blank lines and # comments.
std::vector<std::string> ParseCommands(const std::string& text);

int RunCommands(const std::vector<std::string>& commands, int jobs,
                std::FILE* out, std::FILE* err,
                const std::atomic<bool>* cancel);

}  // namespace fanout::cli

#endif  // FANOUT_CLI_COMMANDS_H_
