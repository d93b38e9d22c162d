// fanout/cli/signals.h — Ctrl+C and SIGTERM during a run: the first sets a
// flag the run polls as its cancel flag (it then ends with exit 130); a
// second ends the program at once, as the default action would.
//
//   fanout::cli::InterruptScope scope;  // handlers installed, flag cleared
//   fanout::Parallel p({.cancel = scope.flag()});
//   // ~InterruptScope puts the previous handlers back
#ifndef FANOUT_CLI_SIGNALS_H_
#define FANOUT_CLI_SIGNALS_H_

#include <signal.h>

#include <atomic>

namespace fanout::cli {

class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

  // Set once SIGINT or SIGTERM arrived; lives as long as the program.
  static std::atomic<bool>* flag();

 private:
  struct sigaction old_int_ = {};
  struct sigaction old_term_ = {};
};

}  // namespace fanout::cli

#endif  // FANOUT_CLI_SIGNALS_H_
