#include "cli/faults.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "core/errors.h"

namespace fanout::cli {

FailMode ParseFailMode(const std::string& name) {
  static const std::pair<const char*, FailMode> kModes[] = {
      {"throw", FailMode::kThrow}, {"segv", FailMode::kSegv},
      {"abort", FailMode::kAbort}, {"exit", FailMode::kExit},
      {"hang", FailMode::kHang},   {"oom", FailMode::kOom}};
  for (const auto& [known, mode] : kModes) {
    if (name == known) return mode;
  }
  throw UsageError("unknown --fail-mode '" + name +
                   "'; valid: throw, segv, abort, exit, hang, oom");
}

void Fail(FailMode mode, std::size_t task) {
  switch (mode) {
    case FailMode::kThrow:
      throw std::runtime_error("injected failure in task " +
                               std::to_string(task));
    case FailMode::kSegv:
      std::raise(SIGSEGV);
      break;
    case FailMode::kAbort:
      std::abort();
    case FailMode::kExit:
      // exit(), as a user's task would call it: atexit handlers run, and
      // on thread and tbb fanout reports the lost call (exit_hooks.h).
      std::exit(3);
    case FailMode::kHang:
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    case FailMode::kOom: {
      // Touched, so the memory is really used, not just reserved.
      constexpr std::size_t kBlock = std::size_t{16} << 20;
      std::vector<std::unique_ptr<char[]>> hog;
      for (;;) {
        hog.push_back(std::make_unique_for_overwrite<char[]>(kBlock));
        std::memset(hog.back().get(), static_cast<int>(task), kBlock);
      }
    }
    case FailMode::kNone:
      break;
  }
  std::abort();
}

}  // namespace fanout::cli
