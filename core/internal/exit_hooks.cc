#include "core/internal/exit_hooks.h"

#include <atomic>
#include <cstdlib>

#include "core/errors.h"

namespace fanout::internal {

namespace {
constexpr int kMaxExitHooks = 16;
std::atomic<void (*)()> g_exit_hooks[kMaxExitHooks];
}  // namespace

void AddExitHook(void (*hook)()) {
  for (auto& slot : g_exit_hooks) {
    void (*seen)() = slot.load();
    if (seen == hook) return;
    if (seen == nullptr) {
      if (slot.compare_exchange_strong(seen, hook)) {
        if (&slot == &g_exit_hooks[0]) std::atexit(&RunExitHooks);
        return;
      }
      if (seen == hook) return;
    }
  }
  throw Error("fanout: too many exit hooks (at most 16)");
}

void RunExitHooks() {
  for (auto& slot : g_exit_hooks) {
    if (void (*hook)() = slot.load()) hook();
  }
}

}  // namespace fanout::internal
