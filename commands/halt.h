// fanout/commands/halt.h — --halt: when commands mode stops early, as GNU
// parallel defines it.
//
//   fanout::commands::HaltRule rule = fanout::commands::ParseHalt("soon,fail=20%");
//   if (fanout::commands::ShouldHalt(rule, {.total = 50, .failed = 10})) ...
//
// `when` is now (running commands are killed) or soon (no new command
// starts; running ones finish). The condition is fail=N, success=N or
// done=N, N a count or a percentage of all commands. GNU parallel's short
// forms are accepted: never, 0 (never), 1 (soon,fail=1), 2 (now,fail=1).
#ifndef FANOUT_COMMANDS_HALT_H_
#define FANOUT_COMMANDS_HALT_H_

#include <cstddef>
#include <string>

namespace fanout::commands {

struct HaltRule {
  enum class When { kNever, kSoon, kNow };
  enum class On { kFail, kSuccess, kDone };
  When when = When::kNever;
  On on = On::kFail;
  double count = 0;  // a count, or a percentage when `percent`
  bool percent = false;
};

// Throws UsageError naming what is valid.
HaltRule ParseHalt(const std::string& text);

struct HaltCounts {
  std::size_t total = 0;  // commands in the run
  std::size_t failed = 0;
  std::size_t succeeded = 0;
};

// Whether `counts` meet the rule's condition.
bool ShouldHalt(const HaltRule& rule, const HaltCounts& counts);

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_HALT_H_
