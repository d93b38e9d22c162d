#include "core/internal/signal_scope.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace fanout::internal {
namespace {

constexpr int kSignals[2] = {SIGINT, SIGTERM};
constexpr int kMaxWakeFds = 64;

// The wake pipes of the scopes in flight (-1: a free entry). Read by the
// handler, so lock-free atomics only.
std::atomic<int> g_wake_fds[kMaxWakeFds];
std::once_flag g_wake_fds_once;

// Guarded by Mu(): how many scopes are in flight, and for each signal the
// disposition before the first of them and whether it was replaced.
struct Installed {
  int users = 0;
  struct sigaction old[2];
  bool replaced[2] = {false, false};
};

std::mutex& Mu() {
  static auto* mu = new std::mutex;
  return *mu;
}

Installed& State() {
  static auto* state = new Installed;
  return *state;
}

void Handler(int sig) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(sig);
  for (auto& slot : g_wake_fds) {
    const int fd = slot.load(std::memory_order_relaxed);
    if (fd >= 0) {
      [[maybe_unused]] ssize_t r = write(fd, &byte, 1);
    }
  }
  errno = saved;
}

// Replaces each signal's disposition with Handler unless it is ignored.
void Install(Installed& state) {
  for (int k = 0; k < 2; ++k) {
    sigaction(kSignals[k], nullptr, &state.old[k]);
    state.replaced[k] = state.old[k].sa_handler != SIG_IGN;
    if (state.replaced[k]) {
      struct sigaction sa;
      std::memset(&sa, 0, sizeof(sa));
      sa.sa_handler = &Handler;
      sigfillset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART;
      sigaction(kSignals[k], &sa, nullptr);
    }
  }
}

}  // namespace

SignalScope::SignalScope(int wake_fd) {
  std::call_once(g_wake_fds_once, [] {
    for (auto& fd : g_wake_fds) fd.store(-1);
  });
  std::lock_guard<std::mutex> lock(Mu());
  for (int i = 0; i < kMaxWakeFds; ++i) {
    int expected = -1;
    if (g_wake_fds[i].compare_exchange_strong(expected, wake_fd)) {
      index_ = i;
      break;
    }
  }
  Installed& state = State();
  if (state.users++ == 0) Install(state);
}

SignalScope::~SignalScope() {
  std::lock_guard<std::mutex> lock(Mu());
  if (index_ >= 0) g_wake_fds[index_].store(-1);
  Installed& state = State();
  if (--state.users == 0) {
    for (int k = 0; k < 2; ++k) {
      if (state.replaced[k]) sigaction(kSignals[k], &state.old[k], nullptr);
    }
  }
}

int TakeSignal(int read_fd) {
  unsigned char byte = 0;
  int sig = 0;
  while (read(read_fd, &byte, 1) == 1) sig = byte;
  return sig;
}

}  // namespace fanout::internal
