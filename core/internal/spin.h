// fanout/core/internal/spin.h — the one spin loop: a CPU hint inside busy
// waits, and waiting for a condition that usually holds within microseconds
// before paying for a sleep.
//
//   if (!fanout::internal::SpinUntil([&] { return done.load(); },
//                                    std::chrono::microseconds(100))) {
//     ... sleep on a futex ...
//   }
//
// Inline: the loops are hot, and a call per probe would show.
// IWYU pragma: private, include "core/internal/spin.h"
#ifndef FANOUT_CORE_INTERNAL_SPIN_H_
#define FANOUT_CORE_INTERNAL_SPIN_H_

#include <sched.h>

#include <chrono>

namespace fanout::internal {

// Tells the CPU this is a spin-wait loop (x86 pause, Arm yield).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until pred() holds or about `budget` has passed, reading the clock
// only every few hundred probes. True when pred() held.
template <class Pred>
bool SpinUntil(Pred pred, std::chrono::microseconds budget) {
  for (int i = 0; i < 64; ++i) {
    if (pred()) return true;
    CpuRelax();
  }
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (;;) {
    for (int i = 0; i < 256; ++i) {
      if (pred()) return true;
      CpuRelax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return pred();
  }
}

// Gives the CPU away (sched_yield) until pred() holds or `deadline` passes:
// for waits on another process that may need this very CPU to make
// progress. True when pred() held.
template <class Pred>
bool YieldUntil(Pred pred, std::chrono::steady_clock::time_point deadline) {
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    sched_yield();
  }
  return true;
}

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_SPIN_H_
