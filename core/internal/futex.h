// fanout/core/internal/futex.h — sleeping on a 32-bit word until another
// thread or process changes it: the kernel's futex, for fanout's waits.
//
//   std::atomic<std::uint32_t> epoch{0};
//   // waiter
//   while (epoch.load() == seen) {
//     fanout::internal::FutexWait(&epoch, seen, FutexScope::kPrivate);
//   }
//   // waker
//   epoch.fetch_add(1);
//   fanout::internal::FutexWake(&epoch, INT_MAX, FutexScope::kPrivate);
//
// A wait may end early (a wake of another waiter, a signal, or spuriously):
// callers always look at the word again.
// IWYU pragma: private, include "core/internal/futex.h"
#ifndef FANOUT_CORE_INTERNAL_FUTEX_H_
#define FANOUT_CORE_INTERNAL_FUTEX_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace fanout::internal {

enum class FutexScope {
  kPrivate,  // waiters and wakers are threads of one process (cheaper)
  kShared,   // the word is in MAP_SHARED memory, used by several processes
};

// Sleeps while *word == expected, until woken.
void FutexWait(const std::uint32_t* word, std::uint32_t expected,
               FutexScope scope);

// The same for at most `timeout`; returns at once when it is not positive.
void FutexWaitFor(const std::uint32_t* word, std::uint32_t expected,
                  FutexScope scope, std::chrono::nanoseconds timeout);

// Wakes up to `count` waiters on `word` (INT_MAX: all of them).
void FutexWake(const std::uint32_t* word, int count, FutexScope scope);

// The same on an atomic word, which has the layout of its value.
inline const std::uint32_t* FutexWord(const std::atomic<std::uint32_t>* a) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                std::atomic<std::uint32_t>::is_always_lock_free);
  return reinterpret_cast<const std::uint32_t*>(a);
}
inline void FutexWait(const std::atomic<std::uint32_t>* word,
                      std::uint32_t expected, FutexScope scope) {
  FutexWait(FutexWord(word), expected, scope);
}
inline void FutexWake(const std::atomic<std::uint32_t>* word, int count,
                      FutexScope scope) {
  FutexWake(FutexWord(word), count, scope);
}

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_FUTEX_H_
