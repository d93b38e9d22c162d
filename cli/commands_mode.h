// fanout/cli/commands_mode.h — the CLI's commands mode: a validated Request
// turned into the commands library's options (commands/commands.h) and run.
#ifndef FANOUT_CLI_COMMANDS_MODE_H_
#define FANOUT_CLI_COMMANDS_MODE_H_

#include <atomic>
#include <cstdio>

#include "cli/request.h"

namespace fanout::cli {

// Whether `r` asks for commands mode (--commands, or a command template and
// `:::` / `::::` arguments).
bool IsCommandsMode(const Request& r);

// Commands mode for a validated request: reads its input (a commands file,
// `:::` words, `::::` files or stdin lines), then runs the jobs.
int RunCommandsMode(const Request& r, std::FILE* out, std::FILE* err,
                    const std::atomic<bool>* cancel);

}  // namespace fanout::cli

#endif  // FANOUT_CLI_COMMANDS_MODE_H_
