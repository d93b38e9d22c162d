// fanout/commands/run_command.h — one shell command run to its end: `/bin/sh -c`
// in its own process group, its stdout and stderr collected, its group
// killed at its deadline, when the run stops, and once its shell exits
// (so that what it left in the background cannot hold the run).
//
//   fanout::commands::ProcessGuard guard;
//   fanout::commands::StopState stop{.cancel = &interrupted};
//   std::string out, err;
//   fanout::commands::Outcome o = fanout::commands::RunOne("make -C a", /*timeout_s=*/60,
//                                                stop, guard, out, err, {});
//   if (!o.ok()) ...  // o.exit_code: the status, or 128 + the signal
#ifndef FANOUT_COMMANDS_RUN_COMMAND_H_
#define FANOUT_COMMANDS_RUN_COMMAND_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "commands/process_guard.h"

namespace fanout::commands {

using Clock = std::chrono::steady_clock;

// Why a command was stopped by us rather than ending by itself.
enum class Stopped { kNo, kTimeout, kHalt, kCancel };

struct Outcome {
  int exit_code = 0;    // exit status, or 128 + signal
  int exit_status = 0;  // the joblog's Exitval (0 when killed)
  int signal = 0;       // the joblog's Signal
  Stopped stopped = Stopped::kNo;
  double start = 0;  // seconds since the epoch
  double runtime = 0;
  bool ok() const { return exit_code == 0; }
};

// What makes every running command stop: Ctrl+C, --halt=now, the run's
// deadline (--timeout-ms); and, for the runner, --halt=soon.
struct StopState {
  const std::atomic<bool>* cancel = nullptr;
  std::atomic<bool> halt_now{false};
  std::atomic<bool> no_new{false};  // --halt=soon (or now)
  std::atomic<bool> run_timed_out{false};
  Clock::time_point run_deadline = Clock::time_point::max();

  // The reason to stop every command now, if any.
  Stopped Now();
};

// A command's stdin, --pipe's block: bytes in memory, or (`fd` >= 0)
// `length` bytes of the regular file `fd` from `offset`, spliced into the
// command's pipe without passing through this process's memory.
struct CommandStdin {
  std::string_view bytes;
  int fd = -1;
  off_t offset = 0;
  std::size_t length = 0;
};

// Runs `command`, collecting its output into out / err (calling `drain`
// after each read when set); kills its process group (SIGTERM, then SIGKILL)
// after `timeout_s` seconds (0: never) or when `stop` says so. Its stdin is
// /dev/null, or `input` when given (--pipe's block: fed as the command
// reads it; a command that exits without reading all of it is not an error
// of the run, and no SIGPIPE reaches this process). Throws fanout::Error
// when it cannot create a pipe or fork.
Outcome RunOne(const std::string& command, double timeout_s, StopState& stop,
               ProcessGuard& guard, std::string& out, std::string& err,
               const std::function<void()>& drain,
               const CommandStdin* input = nullptr);

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_RUN_COMMAND_H_
