// fanout/cli/driver.h — what //cli:run does, as a library the tests call.
//
//   fanout::cli::Request r = fanout::cli::ParseRequest({.backend = "thread"});
//   int exit_code = fanout::cli::Run(r, stdout, stderr, false);
//
// ParseRequest (cli/request.h) validates flag values given as text and
// throws fanout::UsageError naming what is wrong and what is valid; Run runs
// the workload, the comparison or the commands and returns the exit code
// (0 ok, 1 a task failed or timed out, 2 bad usage, 130 interrupted).
#ifndef FANOUT_CLI_DRIVER_H_
#define FANOUT_CLI_DRIVER_H_

#include <cstdio>

#include "cli/request.h"

namespace fanout::cli {

// Prints each linked backend with its one-line description.
void ListBackends(std::FILE* out);

// Runs the request; SIGINT/SIGTERM during the run stop it (exit 130).
// `err_is_terminal` says whether a progress bar may be drawn on `err`.
int Run(const Request& request, std::FILE* out, std::FILE* err,
        bool err_is_terminal);

}  // namespace fanout::cli

#endif  // FANOUT_CLI_DRIVER_H_
