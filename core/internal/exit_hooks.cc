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
// Of those, calls whose task numbers are not their callers' (windows).
std::atomic<int> g_renumbered_calls{0};
std::atomic<const char*> g_in_process_backend{nullptr};
std::atomic<int> g_in_process_rank{-1};

// Registered with on_exit(), which passes exit()'s status (atexit() does
// not): runs before the handlers and destructors registered earlier, TBB's
// and MPI_Finalize among them, and ends the process before they can run.
void OnExitDuringCall(int status, void*) {
  if (g_in_process_calls.load(std::memory_order_acquire) == 0) return;
  const char* backend = g_in_process_backend.load(std::memory_order_acquire);
  // The task this thread runs, where the call records it (a call that can
  // be stopped: TaskWatch) and its numbers are the caller's.
  const std::atomic<std::size_t>* slot = current_task_slot();
  const std::size_t task = slot != nullptr
                               ? slot->load(std::memory_order_relaxed)
                               : static_cast<std::size_t>(-1);
  char who[64];
  if (!in_task()) {
    std::snprintf(who, sizeof(who), "the program called");
  } else if (task != static_cast<std::size_t>(-1) &&
             g_renumbered_calls.load(std::memory_order_acquire) == 0) {
    std::snprintf(who, sizeof(who), "task %zu called", task);
  } else {
    std::snprintf(who, sizeof(who), "a task called");
  }
  char where[32] = "";
  const int rank = g_in_process_rank.load(std::memory_order_acquire);
  if (rank >= 0) std::snprintf(where, sizeof(where), " (rank %d)", rank);
  char line[320];
  const int length = std::snprintf(
      line, sizeof(line),
      "fanout: %s exit(%d) while a call was running on backend '%s'%s; its "
      "results are lost\n",
      who, status, backend != nullptr ? backend : "?", where);
  std::fflush(stdout);  // what the program printed, as exit() would
  if (length > 0) {
    [[maybe_unused]] const ssize_t ignored = write(
        STDERR_FILENO, line, std::min<std::size_t>(length, sizeof(line) - 1));
  }
  _exit(status != 0 ? status : kExitDuringCallStatus);
}
}  // namespace

InProcessCallScope::InProcessCallScope(const char* backend, bool own_numbers,
                                       int rank)
    : own_numbers_(own_numbers) {
  static std::once_flag once;
  std::call_once(once, [] {
    on_exit(&OnExitDuringCall, nullptr);
    // A forked child runs no call of its parent's.
    pthread_atfork(nullptr, nullptr, [] {
      g_in_process_calls.store(0, std::memory_order_relaxed);
      g_renumbered_calls.store(0, std::memory_order_relaxed);
    });
  });
  g_in_process_backend.store(backend, std::memory_order_release);
  g_in_process_rank.store(rank, std::memory_order_release);
  if (!own_numbers_) g_renumbered_calls.fetch_add(1, std::memory_order_acq_rel);
  g_in_process_calls.fetch_add(1, std::memory_order_acq_rel);
}

InProcessCallScope::~InProcessCallScope() {
  g_in_process_calls.fetch_sub(1, std::memory_order_acq_rel);
  if (!own_numbers_) g_renumbered_calls.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace fanout::internal
