#include "cli/faults.h"

#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "core/errors.h"

namespace fanout::cli {
namespace {

// The counter gets a page of its own.
constexpr std::size_t kCounterBytes = 4096;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "the attempt counter is shared between processes: it must not "
              "hide a lock in one process's memory");

}  // namespace

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

FaultInjector::FaultInjector(long long task, FailMode mode, long long attempts)
    : task_(task), mode_(mode), fail_attempts_(attempts) {
  if (task_ < 0 || fail_attempts_ == 0) return;
  // Every attempt must see the same count, wherever it runs: the process
  // backend runs a task in a forked worker whose memory is a copy of the
  // caller's, and runs it again (a retry, or a new fork after a worker
  // died) where a count kept in ordinary memory would start over. An
  // anonymous MAP_SHARED page mapped before the call is inherited by every
  // fork and stays one page: all of them count in it. (Threads share it
  // anyway; an mpi rank counts the attempts it runs, and retries stay on
  // the rank that ran the task.)
  void* page = mmap(nullptr, kCounterBytes, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    throw std::system_error(errno, std::generic_category(),
                            "mmap of the --fail-attempts counter");
  }
  attempts_ = new (page) std::atomic<std::uint64_t>(0);
}

FaultInjector::~FaultInjector() {
  if (attempts_ != nullptr) munmap(attempts_, kCounterBytes);
}

}  // namespace fanout::cli
