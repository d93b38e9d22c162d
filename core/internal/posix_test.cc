// The POSIX kit on its own: each primitive does what its header says.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/internal/failure_wire.h"
#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/futex.h"
#include "core/internal/large_array.h"
#include "core/internal/signal_scope.h"
#include "core/internal/spin.h"
#include "core/internal/thread_start.h"
#include "core/internal/wait_status.h"

namespace fanout::internal {
namespace {

// The bytes of [begin, end) that /proc/self/smaps says are in mappings
// flagged for transparent huge pages ("hg" in VmFlags).
std::size_t HugePageBytesIn(std::uintptr_t begin, std::uintptr_t end) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  std::uintptr_t lo = 0;
  std::uintptr_t hi = 0;
  std::size_t total = 0;
  while (std::getline(smaps, line)) {
    unsigned long a = 0;
    unsigned long b = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> a >> dash >> b && dash == '-') {
      lo = a;
      hi = b;
    } else if (line.rfind("VmFlags:", 0) == 0 &&
               line.find(" hg") != std::string::npos) {
      const std::uintptr_t from = std::max(lo, begin);
      const std::uintptr_t to = std::min(hi, end);
      if (to > from) total += to - from;
    }
  }
  return total;
}

TEST(LargeArray, AsksForHugePagesOnTheWholeHugePagesInside) {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  constexpr std::size_t kBytes = 12 * kHuge;
  void* probe = mmap(nullptr, kHuge, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(probe, MAP_FAILED);
  const bool supported = madvise(probe, kHuge, MADV_HUGEPAGE) == 0;
  munmap(probe, kHuge);
  if (!supported) GTEST_SKIP() << "no transparent huge pages here";
  char* area = static_cast<char*>(mmap(nullptr, kBytes, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(area, MAP_FAILED);
  const auto base = reinterpret_cast<std::uintptr_t>(area);
  // An array that starts 100 bytes past a huge-page boundary and ends 100
  // bytes before the fifth boundary after it: only the 3 huge pages wholly
  // inside it, [boundary + 1, boundary + 4) in huge pages.
  const std::uintptr_t boundary = (base + kHuge - 1) / kHuge * kHuge;
  char* const array = reinterpret_cast<char*>(boundary + 100);
  PrepareLargeArray(array, 5 * kHuge - 200);
  EXPECT_EQ(HugePageBytesIn(base, base + kBytes), 3 * kHuge);
  EXPECT_EQ(HugePageBytesIn(boundary + kHuge, boundary + 4 * kHuge), 3 * kHuge);
  // Below kLargeArrayBytes nothing is asked.
  char* const small = reinterpret_cast<char*>(boundary + 6 * kHuge);
  PrepareLargeArray(small, kLargeArrayBytes - 1);
  EXPECT_EQ(HugePageBytesIn(boundary + 6 * kHuge, base + kBytes), 0u);
  munmap(area, kBytes);
}

TEST(FailureWire, RoundTripsOneAfterAnother) {
  std::string bytes = "x";
  AppendFailure(bytes, "std::runtime_error", "boom");
  AppendFailure(bytes, "", std::string("nul\0inside", 10));
  std::string_view in(bytes);
  in.remove_prefix(1);
  std::size_t used = 0;
  auto first = ParseFailure(in, &used);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->type, "std::runtime_error");
  EXPECT_EQ(first->message, "boom");
  in.remove_prefix(used);
  auto second = ParseFailure(in, &used);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->type, "");
  EXPECT_EQ(second->message, std::string("nul\0inside", 10));
  EXPECT_EQ(used, in.size());
}

TEST(FailureWire, TruncatedIsNoFailure) {
  std::string bytes;
  AppendFailure(bytes, "T", "message");
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(ParseFailure(std::string_view(bytes).substr(0, n)))
        << "first " << n << " bytes";
  }
}

int StatusOf(void (*body)()) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  EXPECT_EQ(WaitPid(pid, &status), pid);
  return status;
}

TEST(WaitStatus, SaysHowTheChildEnded) {
  EXPECT_EQ(DescribeWaitStatus(StatusOf([] { _exit(3); })),
            "exited with status 3");
  // The default action, whatever handler a sanitizer's runtime installed
  // (ASan's would report the signal and exit 1).
  EXPECT_EQ(DescribeWaitStatus(StatusOf([] {
              signal(SIGSEGV, SIG_DFL);
              raise(SIGSEGV);
            })),
            "killed by SIGSEGV (Segmentation fault)");
  const int killed = StatusOf([] { raise(SIGKILL); });
  EXPECT_EQ(DescribeWaitStatus(killed),
            "killed by SIGKILL (Killed), possibly out of memory (see the "
            "kernel log for the OOM killer)");
  // Issue 23 item 10: with the kernel's count of OOM kills to go by.
  EXPECT_EQ(DescribeWaitStatus(killed, 0),
            "killed by SIGKILL (Killed), not by the kernel's OOM killer (it "
            "killed no process meanwhile)");
  EXPECT_EQ(DescribeWaitStatus(killed, 1),
            "killed by SIGKILL (Killed), possibly out of memory (the "
            "kernel's OOM killer killed 1 process meanwhile; see the kernel "
            "log)");
  EXPECT_EQ(DescribeWaitStatus(killed, 3),
            "killed by SIGKILL (Killed), possibly out of memory (the "
            "kernel's OOM killer killed 3 processes meanwhile; see the "
            "kernel log)");
  EXPECT_EQ(DescribeWaitStatus(StatusOf([] { _exit(3); }), 2),
            "exited with status 3");
  EXPECT_EQ(DecodeWaitStatus(killed).signal, SIGKILL);
  EXPECT_EQ(DecodeWaitStatus(killed).exit_status, -1);
  EXPECT_EQ(ShellExitCode(killed), 128 + SIGKILL);
  EXPECT_EQ(ShellExitCode(StatusOf([] { _exit(3); })), 3);
  EXPECT_EQ(SignalName(SIGINT), "SIGINT");
}

TEST(ForkChild, StartsCleanAndDiesWithItsCaller) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction before;
  sigaction(SIGUSR1, &ignore, &before);
  sigset_t blocked, old_mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR2);
  sigprocmask(SIG_BLOCK, &blocked, &old_mask);
  Pipe secret, report;
  ASSERT_TRUE(MakePipe(&secret));
  ASSERT_TRUE(MakePipe(&report));
  const int close_fds[] = {secret.read, report.read};
  const pid_t pid = ForkChild({.close_fds = close_fds});
  if (pid == 0) {
    struct sigaction now;
    sigaction(SIGUSR1, nullptr, &now);
    sigset_t mask;
    sigprocmask(SIG_SETMASK, nullptr, &mask);
    int deathsig = 0;
    prctl(PR_GET_PDEATHSIG, &deathsig);
    const char answer[4] = {
        now.sa_handler == SIG_DFL ? 'y' : 'n',
        sigismember(&mask, SIGUSR2) ? 'n' : 'y',
        deathsig == SIGKILL ? 'y' : 'n',
        fcntl(secret.read, F_GETFD) < 0 ? 'y' : 'n',
    };
    _exit(WriteAll(report.write, answer, sizeof(answer)) ? 0 : 1);
  }
  sigaction(SIGUSR1, &before, nullptr);
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ASSERT_GT(pid, 0);
  CloseFd(&report.write);
  std::string answer;
  EXPECT_TRUE(ReadAll(report.read, &answer));
  EXPECT_EQ(answer, "yyyy");  // default disposition, mask, PDEATHSIG, closed
  int status = 0;
  EXPECT_EQ(WaitPid(pid, &status), pid);
  EXPECT_EQ(DescribeWaitStatus(status), "exited with status 0");
  for (Pipe* p : {&secret, &report}) {
    CloseFd(&p->read);
    CloseFd(&p->write);
  }
}

TEST(Fd, FullWritesAndReadsOfMoreThanAPipeHolds) {
  Pipe p;
  ASSERT_TRUE(MakePipe(&p));
  const std::string big(1 << 20, 'x');
  std::thread writer([&] {
    EXPECT_TRUE(WriteAll(p.write, big.data(), big.size()));
    CloseFd(&p.write);
  });
  std::string got;
  EXPECT_TRUE(ReadAll(p.read, &got));
  writer.join();
  EXPECT_EQ(got, big);
  CloseFd(&p.read);
  EXPECT_EQ(p.read, -1);
}

TEST(Fd, ReadAvailableSaysWhenTheWritersAreGone) {
  Pipe p;
  ASSERT_TRUE(MakePipe(&p, O_NONBLOCK));
  std::string got;
  EXPECT_TRUE(ReadAvailable(p.read, &got));  // nothing yet, still open
  ASSERT_TRUE(WriteAll(p.write, "abc", 3));
  EXPECT_TRUE(ReadAvailable(p.read, &got));
  EXPECT_EQ(got, "abc");
  CloseFd(&p.write);
  EXPECT_FALSE(ReadAvailable(p.read, &got));
  CloseFd(&p.read);
}

TEST(Fd, PidfdIsReadableOnceTheProcessEnds) {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  const int pidfd = PidfdOpen(pid);
  int status = 0;
  EXPECT_EQ(WaitPid(pid, &status), pid);
  if (pidfd < 0) GTEST_SKIP() << "no pidfd_open on this kernel";
  int fd = pidfd;
  CloseFd(&fd);
}

TEST(SignalScope, ASignalBecomesAByteOnTheWakePipe) {
  Pipe wake;
  ASSERT_TRUE(MakePipe(&wake, O_NONBLOCK));
  {
    SignalScope scope(wake.write);
    EXPECT_EQ(TakeSignal(wake.read), 0);
    raise(SIGTERM);
    EXPECT_EQ(TakeSignal(wake.read), SIGTERM);
  }
  struct sigaction now;
  sigaction(SIGTERM, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);  // restored
  CloseFd(&wake.read);
  CloseFd(&wake.write);
}

TEST(Futex, WakeEndsAWait) {
  std::atomic<std::uint32_t> word{0};
  std::thread waiter([&] {
    while (word.load() == 0) FutexWait(&word, 0, FutexScope::kPrivate);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  word.store(1);
  FutexWake(&word, INT_MAX, FutexScope::kPrivate);
  waiter.join();
  std::uint32_t shared = 0;
  const auto start = std::chrono::steady_clock::now();
  FutexWaitFor(&shared, 0, FutexScope::kShared, std::chrono::milliseconds(5));
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(4));
}

TEST(Spin, SpinUntilAndYieldUntil) {
  int probes = 0;
  EXPECT_TRUE(SpinUntil([&] { return ++probes == 100; },
                        std::chrono::microseconds(1000)));
  EXPECT_FALSE(SpinUntil([] { return false; }, std::chrono::microseconds(10)));
  EXPECT_FALSE(YieldUntil(
      [] { return false; },
      std::chrono::steady_clock::now() + std::chrono::microseconds(10)));
  EXPECT_TRUE(YieldUntil([] { return true; },
                         std::chrono::steady_clock::time_point::min()));
}

// The kernel's count of OOM kills, from vmstat's oom_kill line.
TEST(WaitStatus, OomKillCountReadsVmstat) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir != nullptr ? dir : "/tmp") + "/vmstat";
  std::ofstream(path) << "nr_free_pages 1\noom_kill_x 9\npgfault 5\n"
                         "oom_kill 42\nthp_fault_alloc 0\n";
  EXPECT_EQ(OomKillCount(path.c_str()), 42);
  std::ofstream(path) << "nr_free_pages 1\npgfault 5\n";
  EXPECT_EQ(OomKillCount(path.c_str()), -1);
  EXPECT_EQ(OomKillCount("/nonexistent/vmstat"), -1);
  // This machine's, where the kernel has it (4.13 and later).
  EXPECT_GE(OomKillCount(), -1);
}

// Issue 23 item 6: a probe's threads sleep until released. They used to
// wake every 200 us while the rest started, so starting N cost N^2 wake-ups
// (44 s for 1000 threads on 2 cores). Counted in context switches, not
// time: each thread now waits once.
TEST(ProbeThreads, ItsThreadsSleepUntilReleased) {
  constexpr int kThreads = 1000;
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  const ThreadProbe probe = ProbeThreads(kThreads, 0);
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  EXPECT_EQ(probe.started, kThreads);
  EXPECT_EQ(probe.error, 0);
  EXPECT_FALSE(probe.stopped);
  // About one to four each (a wait; the join; under a sanitizer or on a
  // loaded machine a few more), against 30 or more when they polled.
  EXPECT_LT(after.ru_nvcsw - before.ru_nvcsw, 12 * kThreads);
}

// Ctrl+C while a probe starts threads: it stops starting them when asked
// (every 16 threads), and ends the ones it started.
TEST(ProbeThreads, StopsStartingThreadsWhenAsked) {
  int asked = 0;
  const ThreadProbe probe =
      ProbeThreads(1000, 0, [&asked] { return ++asked == 3; });
  EXPECT_TRUE(probe.stopped);
  EXPECT_EQ(asked, 3);
  EXPECT_EQ(probe.started, 32);
  EXPECT_EQ(probe.error, 0);
}

}  // namespace
}  // namespace fanout::internal
