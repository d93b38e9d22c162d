#include "core/internal/exit_hooks.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/errors.h"
#include "core/executor.h"

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

namespace {
std::atomic<int> g_in_process_calls{0};
std::atomic<const char*> g_in_process_backend{nullptr};

// Registered with on_exit(), which passes exit()'s status (atexit() does
// not): runs before the handlers and destructors registered earlier, TBB's
// among them, and ends the process before they can run.
void OnExitDuringCall(int status, void*) {
  if (g_in_process_calls.load(std::memory_order_acquire) == 0) return;
  const char* backend = g_in_process_backend.load(std::memory_order_acquire);
  char line[256];
  const int length = std::snprintf(
      line, sizeof(line),
      "fanout: %s exit(%d) while a call was running on backend '%s'; its "
      "results are lost\n",
      in_task() ? "a task called" : "the program called", status,
      backend != nullptr ? backend : "?");
  std::fflush(stdout);  // what the program printed, as exit() would
  if (length > 0) {
    [[maybe_unused]] const ssize_t ignored = write(
        STDERR_FILENO, line, std::min<std::size_t>(length, sizeof(line) - 1));
  }
  _exit(status != 0 ? status : kExitDuringCallStatus);
}
}  // namespace

InProcessCallScope::InProcessCallScope(const char* backend) {
  static std::once_flag once;
  std::call_once(once, [] {
    on_exit(&OnExitDuringCall, nullptr);
    // A forked child runs no call of its parent's.
    pthread_atfork(nullptr, nullptr, [] {
      g_in_process_calls.store(0, std::memory_order_relaxed);
    });
  });
  g_in_process_backend.store(backend, std::memory_order_release);
  g_in_process_calls.fetch_add(1, std::memory_order_acq_rel);
}

InProcessCallScope::~InProcessCallScope() {
  g_in_process_calls.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace fanout::internal
