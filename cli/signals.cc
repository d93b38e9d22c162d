#include "cli/signals.h"

#include <csignal>

namespace fanout::cli {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnInterrupt(int sig) {
  g_interrupted.store(true);
  // A second Ctrl+C ends the program at once, as the default would.
  std::signal(sig, SIG_DFL);
}

}  // namespace

InterruptScope::InterruptScope() {
  g_interrupted = false;
  struct sigaction sa = {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

InterruptScope::~InterruptScope() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

std::atomic<bool>* InterruptScope::flag() { return &g_interrupted; }

}  // namespace fanout::cli
