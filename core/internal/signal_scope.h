// fanout/core/internal/signal_scope.h — SIGINT and SIGTERM turned into a byte
// on a pipe while a scope lasts, so that a caller waiting in poll() notices
// Ctrl+C at once and can stop what it started before it returns.
//
//   fanout::internal::Pipe wake;
//   fanout::internal::MakePipe(&wake, O_NONBLOCK);
//   fanout::internal::SignalScope signals(wake.write);
//   ... poll() on wake.read among the other descriptors ...
//   if (const int sig = fanout::internal::TakeSignal(wake.read)) Stop(sig);
//
// The first scope in flight installs the handlers (leaving a signal the
// program ignores ignored), the last one to end restores the previous ones.
// The handler writes the signal number to the wake pipe of every scope in
// flight (at most 64 at once; more are not woken). The signal is not
// re-delivered afterwards: the scope's owner reports it.
// IWYU pragma: private, include "core/internal/signal_scope.h"
#ifndef FANOUT_CORE_INTERNAL_SIGNAL_SCOPE_H_
#define FANOUT_CORE_INTERNAL_SIGNAL_SCOPE_H_

namespace fanout::internal {

class SignalScope {
 public:
  // `wake_fd`: the write end of a non-blocking pipe, open for the scope.
  explicit SignalScope(int wake_fd);
  ~SignalScope();
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  int index_ = -1;
};

// Empties the non-blocking wake pipe `read_fd`; the last signal it carried,
// or 0 when none came.
int TakeSignal(int read_fd);

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_SIGNAL_SCOPE_H_
