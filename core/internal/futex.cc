#include "core/internal/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace fanout::internal {
namespace {

int Op(int op, FutexScope scope) {
  return scope == FutexScope::kPrivate ? op | FUTEX_PRIVATE_FLAG : op;
}

void Wait(const std::uint32_t* word, std::uint32_t expected, FutexScope scope,
          const timespec* timeout) {
  syscall(SYS_futex, word, Op(FUTEX_WAIT, scope), expected, timeout, nullptr,
          0);
}

}  // namespace

void FutexWait(const std::uint32_t* word, std::uint32_t expected,
               FutexScope scope) {
  Wait(word, expected, scope, nullptr);
}

void FutexWaitFor(const std::uint32_t* word, std::uint32_t expected,
                  FutexScope scope, std::chrono::nanoseconds timeout) {
  if (timeout.count() <= 0) return;
  timespec ts;
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000000000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1000000000);
  Wait(word, expected, scope, &ts);
}

void FutexWake(const std::uint32_t* word, int count, FutexScope scope) {
  syscall(SYS_futex, word, Op(FUTEX_WAKE, scope), count, nullptr, nullptr, 0);
}

}  // namespace fanout::internal
