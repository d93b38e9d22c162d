#include "core/internal/thread_start.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/internal/futex.h"

namespace fanout::internal {
namespace {

// How many threads ProbeThreads starts between looks at its stop check.
constexpr int kStopCheckEvery = 16;

// The first line of `path`, or "" when it cannot be read.
std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The threads this process has now (the kernel's count, "Threads:" in
// /proc/self/status), or -1 when it cannot be read.
int ThreadsNow() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

// pids.max of this process's cgroup (v2), or "" when there is none.
std::string CgroupPidsMax() {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) != 0) continue;
    std::string max =
        FirstLine("/sys/fs/cgroup" + line.substr(3) + "/pids.max");
    return max == "max" ? "" : max;
  }
  return "";
}

}  // namespace

std::string ThreadLimitHint(int err) {
  if (err == ENOMEM) {
    return "no memory for its stack (ulimit -v or the cgroup's memory limit)";
  }
  if (err != EAGAIN) return "";
  std::string hint;
  rlimit nproc = {};
  // Root's own processes are not held to RLIMIT_NPROC.
  if (getuid() != 0 && getrlimit(RLIMIT_NPROC, &nproc) == 0 &&
      nproc.rlim_cur != RLIM_INFINITY) {
    hint = "RLIMIT_NPROC (ulimit -u) is " + std::to_string(nproc.rlim_cur) +
           " for this user, counting all of its processes and threads";
  } else {
    hint = "the kernel allows " + FirstLine("/proc/sys/kernel/threads-max") +
           " threads in all (kernel.threads-max)";
    const std::string pids = CgroupPidsMax();
    if (!pids.empty()) hint += ", this cgroup " + pids + " (pids.max)";
  }
  const int threads = ThreadsNow();
  if (threads > 0) {
    hint += "; this process has " + std::to_string(threads) + " thread" +
            (threads == 1 ? "" : "s");
  }
  return hint;
}

std::string ThreadStartError(std::string_view who, std::string_view what,
                             int index, int count, int err) {
  std::string message = std::string(who) + ": cannot start " +
                        std::string(what) + " " + std::to_string(index) +
                        " of " + std::to_string(count) + ": " +
                        std::strerror(err);
  const std::string hint = ThreadLimitHint(err);
  return message + " (" + (hint.empty() ? "" : hint + "; ") + "use fewer jobs)";
}

ThreadProbe ProbeThreads(int count, std::size_t stack_size,
                         const std::function<bool()>& stop) {
  ThreadProbe probe;
  if (count <= 0) return probe;
  const int before = ThreadsNow();
  // The threads sleep on a futex until released: a thread that polled (a
  // sleep of 200 us in a loop) made starting N of them cost N^2 wake-ups,
  // 44 s for 1000 threads on 2 cores.
  std::atomic<std::uint32_t> release{0};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (stack_size != 0) pthread_attr_setstacksize(&attr, stack_size);
  std::vector<pthread_t> threads;
  threads.reserve(count);
  const auto wait = [](void* arg) -> void* {
    auto* release = static_cast<std::atomic<std::uint32_t>*>(arg);
    while (release->load(std::memory_order_acquire) == 0) {
      FutexWait(release, 0, FutexScope::kPrivate);
    }
    return nullptr;
  };
  for (int k = 0; k < count; ++k) {
    // Ctrl+C (or a deadline) while many threads start: stop starting them.
    if (k % kStopCheckEvery == 0 && stop && stop()) {
      probe.stopped = true;
      break;
    }
    pthread_t t;
    const int err = pthread_create(&t, &attr, +wait, &release);
    if (err != 0) {
      probe.error = err;
      break;
    }
    threads.push_back(t);
  }
  pthread_attr_destroy(&attr);
  probe.started = static_cast<int>(threads.size());
  release.store(1, std::memory_order_release);
  FutexWake(&release, INT_MAX, FutexScope::kPrivate);
  for (pthread_t t : threads) pthread_join(t, nullptr);
  // A joined thread is still counted against RLIMIT_NPROC for a moment
  // after pthread_join returns (until the kernel releases it): wait for the
  // count to drop, so the room the probe found is there for the caller.
  if (before > 0) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (ThreadsNow() > before &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  return probe;
}

}  // namespace fanout::internal
