// fanout/cli/driver.h — what //cli:run does, as a library the tests call.
//
//   fanout::cli::Request r = fanout::cli::ParseRequest({.backend = "thread"});
//   int exit_code = fanout::cli::Run(r, stdout, stderr);
//
// ParseRequest validates flag values given as text and throws
// fanout::UsageError naming what is wrong and what is valid; Run runs the
// workload and returns the exit code (0 ok, 1 a task failed or timed out,
// 130 interrupted).
#ifndef FANOUT_CLI_DRIVER_H_
#define FANOUT_CLI_DRIVER_H_

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace fanout::cli {

enum class FailMode { kNone, kThrow, kSegv, kAbort, kExit, kHang };

// Flag values as the user typed them.
struct RawFlags {
  std::string backend = "thread";
  std::string jobs = "-1";
  std::string workload = "sum";
  std::string tasks;
  std::string sleep_ms = "10";
  std::string batch_size = "0";
  std::string timeout_ms = "0";
  int verbose = 0;
  bool speedup = false;
  std::string fail_task;
  std::string fail_mode = "throw";
  std::string compare;  // "", "all" or a comma-separated list of backends
  std::string format = "text";
  bool progress = false;
  std::string
      commands;  // a file of commands, "-" for stdin; "" = workload mode
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
  long long fail_task = -1;
  FailMode fail_mode = FailMode::kNone;
  std::vector<std::string> compare;  // backends to compare; empty = one run
  bool json = false;
  bool progress = false;
  std::string commands;
};

std::vector<std::string> WorkloadNames();
Request ParseRequest(const RawFlags& flags);

// Prints each linked backend with its one-line description.
void ListBackends(std::FILE* out);

// Runs the request; SIGINT/SIGTERM during the run stop it (exit 130).
// `err_is_terminal` says whether a progress bar may be drawn on `err`.
int Run(const Request& request, std::FILE* out, std::FILE* err,
        bool err_is_terminal);

}  // namespace fanout::cli

#endif  // FANOUT_CLI_DRIVER_H_
