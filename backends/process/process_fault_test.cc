// What the process backend does when a task or a worker fails: each fault
// kind names the task and how it failed, the call returns promptly, and no
// child of this process is left behind (zombies included).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends/process/process.h"
#include "backends/process/testing/children.h"
#include "core/internal/wait_status.h"
#include "core/parallel.h"

namespace fanout::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

// Generous: a death is noticed in well under a second; this bounds a hang.
constexpr auto kBound = std::chrono::seconds(5);

// A counter in MAP_SHARED memory, visible to the test after workers wrote it.
class SharedInt {
 public:
  SharedInt() {
    void* p = mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    value_ = new (p) std::atomic<int>(0);
  }
  ~SharedInt() { munmap(value_, sizeof(*value_)); }
  std::atomic<int>& operator*() const { return *value_; }
  std::atomic<int>* operator->() const { return value_; }

 private:
  std::atomic<int>* value_;
};

// A real invalid access (a store to a page with no access), not a null
// dereference UBSan would stop first.
void Crash() {
  void* page =
      mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  *static_cast<volatile int*>(page) = 1;
}

// Runs 40 tasks on 2 workers; task 17 fails with `fail`; the others sleep a
// little, so the second worker is busy when the first one dies. Returns the
// TaskError and checks the bound and the children.
template <class Fail>
TaskError RunWithFault(Fail fail, ErrorPolicy errors = ErrorPolicy::kFailFast) {
  Parallel p(
      {.jobs = 2, .backend = "process", .batch_size = 1, .errors = errors});
  const auto start = Clock::now();
  try {
    p.map(40, [&](std::size_t i) -> int {
      if (i == 17) fail();
      std::this_thread::sleep_for(std::chrono::milliseconds(i > 17 ? 2000 : 5));
      return static_cast<int>(i);
    });
  } catch (const TaskError& e) {
    EXPECT_LT(Clock::now() - start, kBound);
    EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
    return e;
  }
  ADD_FAILURE() << "expected TaskError";
  return TaskError({});
}

// A result type with no cereal serialize() cannot come back from a worker:
// refused before any task runs, naming the type and what to add.
struct NoSerialize {
  std::string name;
  std::vector<int> values;
};

// Serializable, but with no default constructor to decode into and no
// load_and_construct to build it: nothing can make one from bytes.
struct NoDefault {
  explicit NoDefault(std::string s) : name(std::move(s)) {}
  std::string name;
  template <class A>
  void serialize(A& a) {
    a(name);
  }
};

TEST(ProcessFault, ResultsThatCannotCrossAreRefusedBeforeAnyTask) {
  Parallel p({.jobs = 2, .backend = "process"});
  SharedInt ran;
  try {
    p.map(100, [&](std::size_t i) {
      ++*ran;
      return NoSerialize{std::to_string(i), {1, 2}};
    });
    ADD_FAILURE() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(),
                StartsWith("the result type 'fanout::testing::(anonymous "
                           "namespace)::NoSerialize' cannot cross a process "
                           "boundary, as backend 'process' needs: give it a "
                           "cereal serialize()"));
  }
  try {
    p.map(100, [&](std::size_t i) {
      ++*ran;
      return NoDefault(std::to_string(i));
    });
    ADD_FAILURE() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("NoDefault' cannot cross a process"));
    EXPECT_THAT(e.what(), HasSubstr("and a default constructor or cereal's "
                                    "load_and_construct"));
  }
  EXPECT_EQ(ran->load(), 0);
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  // The same types are fine where tasks share the caller's memory.
  Parallel threads({.jobs = 2, .backend = "thread"});
  auto r = threads.map(10, [](std::size_t i) {
    return NoSerialize{std::to_string(i), {}};
  });
  EXPECT_EQ(r[9].name, "9");
}

TEST(ProcessFault, SegfaultNamesTaskAndSignal) {
  TaskError e = RunWithFault(Crash);
  EXPECT_EQ(e.index(), 17u);
  EXPECT_EQ(e.backend(), "process");
  EXPECT_EQ(e.signal(), SIGSEGV);
  EXPECT_EQ(e.exit_status(), -1);
  EXPECT_EQ(e.type(), "");
  EXPECT_THAT(e.worker(), StartsWith("pid "));
  EXPECT_THAT(e.what(), HasSubstr("task 17 failed on backend 'process' (pid "));
  EXPECT_THAT(e.what(), HasSubstr("worker killed by SIGSEGV"));
  EXPECT_THAT(e.what(), HasSubstr("while running this task"));
}

TEST(ProcessFault, AbortNamesTaskAndSignal) {
  TaskError e = RunWithFault([] { std::abort(); });
  EXPECT_EQ(e.index(), 17u);
  EXPECT_EQ(e.signal(), SIGABRT);
  EXPECT_THAT(e.what(), HasSubstr("task 17 failed"));
  EXPECT_THAT(e.what(), HasSubstr("worker killed by SIGABRT"));
}

TEST(ProcessFault, TerminateIsAnAbort) {
  TaskError e = RunWithFault([] { std::terminate(); });
  EXPECT_EQ(e.index(), 17u);
  EXPECT_EQ(e.signal(), SIGABRT);
  EXPECT_THAT(e.what(), HasSubstr("SIGABRT"));
}

// Issue 23 item 10: a SIGKILL is said to be possibly out of memory only when
// the kernel's OOM killer killed something during the call (its count in
// /proc/vmstat rose); a kill from outside (here the task's own) is not.
TEST(ProcessFault, SigkillSaysWhetherTheOomKillerActed) {
  const long long before = internal::OomKillCount();
  TaskError e = RunWithFault([] { raise(SIGKILL); });
  const long long after = internal::OomKillCount();
  EXPECT_EQ(e.index(), 17u);
  EXPECT_EQ(e.signal(), SIGKILL);
  EXPECT_THAT(e.what(), HasSubstr("worker killed by SIGKILL"));
  if (before < 0) {  // a kernel without the count: the hedge as before
    EXPECT_THAT(e.what(), HasSubstr("possibly out of memory"));
    return;
  }
  if (after != before) {
    GTEST_SKIP() << "the OOM killer killed a process during the test";
  }
  EXPECT_THAT(e.what(), ::testing::Not(HasSubstr("possibly out of memory")));
  EXPECT_THAT(e.what(),
              HasSubstr("worker killed by SIGKILL (Killed), not by the "
                        "kernel's OOM killer (it killed no process "
                        "meanwhile) while running this task"));
}

TEST(ProcessFault, ExitStatusIsNamed) {
  TaskError e = RunWithFault([] { _exit(3); });
  EXPECT_EQ(e.index(), 17u);
  EXPECT_EQ(e.signal(), 0);
  EXPECT_EQ(e.exit_status(), 3);
  EXPECT_THAT(e.what(), HasSubstr("task 17 failed on backend 'process' (pid "));
  EXPECT_THAT(e.what(), HasSubstr("worker exited with status 3"));
}

TEST(ProcessFault, ExitZeroFromATaskIsStillADeath) {
  TaskError e = RunWithFault([] { std::exit(0); });
  EXPECT_EQ(e.index(), 17u);
  EXPECT_EQ(e.exit_status(), 0);
  EXPECT_THAT(e.what(), HasSubstr("worker exited with status 0"));
}

// Runs 8 tasks with string results (they travel through the workers' pipes)
// on 2 workers; task 5 does `lose` to its worker's descriptors.
TaskError RunWithLostPipe(void (*lose)()) {
  Parallel p({.jobs = 2, .backend = "process", .batch_size = 1});
  const auto start = Clock::now();
  try {
    p.map(8, [&](std::size_t i) {
      if (i == 5) lose();
      return std::to_string(i);
    });
  } catch (const TaskError& e) {
    EXPECT_LT(Clock::now() - start, kBound);
    EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
    return e;
  }
  ADD_FAILURE() << "expected TaskError";
  return TaskError({});
}

TEST(ProcessFault, ClosingEveryFdIsALostResultPipe) {
  TaskError e = RunWithLostPipe([] { close_range(3, ~0U, 0); });
  EXPECT_EQ(e.index(), 5u);
  EXPECT_EQ(e.signal(), 0);
  EXPECT_THAT(e.what(), HasSubstr("task 5 failed on backend 'process' (pid "));
  EXPECT_THAT(e.what(), HasSubstr("worker lost its result pipe (a task closed "
                                  "or replaced fd "));
  EXPECT_THAT(e.what(), Not(HasSubstr("status 125")));
}

TEST(ProcessFault, ReplacingTheResultPipeIsALostResultPipeNotLostResults) {
  // The pipe's descriptor now names /dev/null: writes to it succeed, and
  // without a check the results would vanish from a call that "succeeds".
  TaskError e = RunWithLostPipe([] {
    close_range(3, ~0U, 0);
    for (int k = 0; k < 256; ++k) open("/dev/null", O_WRONLY);
  });
  EXPECT_EQ(e.index(), 5u);
  EXPECT_THAT(e.what(), HasSubstr("worker lost its result pipe"));
}

TEST(ProcessFault, ThrowNamesTaskTypeMessageAndPid) {
  TaskError e = RunWithFault([] { throw std::invalid_argument("bad 17"); });
  EXPECT_EQ(e.index(), 17u);
  EXPECT_EQ(e.type(), "std::invalid_argument");
  EXPECT_EQ(e.message(), "bad 17");
  EXPECT_EQ(e.signal(), 0);
  EXPECT_THAT(e.worker(), StartsWith("pid "));
  EXPECT_NE(e.worker(), "pid " + std::to_string(getpid()));
  EXPECT_THAT(e.what(), HasSubstr("task 17 failed on backend 'process' (pid "));
  EXPECT_THAT(e.what(), HasSubstr("std::invalid_argument: bad 17"));
}

// The worker is replaced and every other task runs (pool_test.cc has the
// details); map() then throws the dead worker's task.
TEST(ProcessFault, DeathUnderCollectAllFailsItsTaskOnly) {
  Parallel p({.jobs = 2,
              .backend = "process",
              .batch_size = 1,
              .errors = ErrorPolicy::kCollectAll});
  auto r = p.try_map(40, [](std::size_t i) -> int {
    if (i == 17) Crash();
    return static_cast<int>(i);
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  ASSERT_EQ(r.size(), 40u);
  for (std::size_t i = 0; i < r.size(); ++i) {
    if (i == 17) continue;
    ASSERT_TRUE(r[i].ok()) << i;
    EXPECT_EQ(r[i].value(), static_cast<int>(i));
  }
  ASSERT_FALSE(r[17].ok());
  EXPECT_EQ(r[17].error().index(), 17u);
  EXPECT_EQ(r[17].error().signal(), SIGSEGV);
}

TEST(ProcessFault, HangEndsAtTimeoutNamingRunningTasks) {
  Parallel p({.jobs = 2,
              .backend = "process",
              .batch_size = 1,
              .timeout = std::chrono::milliseconds(300)});
  const auto start = Clock::now();
  try {
    p.for_each(10, [](std::size_t i) {
      if (i == 7 || i == 3) pause();  // hangs until killed
    });
    FAIL() << "expected TimeoutError";
  } catch (const TimeoutError& e) {
    EXPECT_LT(Clock::now() - start, kBound);
    const std::string what = e.what();
    EXPECT_THAT(what,
                HasSubstr("call timed out after 300 ms on backend 'process'"));
    EXPECT_THAT(what, HasSubstr("still running: task 3 (pid "));
    EXPECT_THAT(what, HasSubstr("task 7 (pid "));
  }
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

TEST(ProcessFault, CancelKillsWorkers) {
  std::atomic<bool> cancel{false};
  Parallel p({.jobs = 2, .backend = "process", .cancel = &cancel});
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  const auto start = Clock::now();
  EXPECT_THROW(p.for_each(4, [](std::size_t) { pause(); }), InterruptedError);
  canceller.join();
  EXPECT_LT(Clock::now() - start, kBound);
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

std::atomic<int> g_user_handler_calls{0};
void UserHandler(int) { g_user_handler_calls.fetch_add(1); }

// A signal to the caller mid-call: InterruptedError with the signal, workers
// gone, the caller's own handler back in place and not called.
void ExpectInterruptedBy(int sig) {
  struct sigaction user, before, after;
  std::memset(&user, 0, sizeof(user));
  user.sa_handler = &UserHandler;
  sigaction(sig, &user, &before);
  g_user_handler_calls = 0;

  Parallel p({.jobs = 2, .backend = "process"});
  const pid_t self = getpid();
  std::thread sender([&] {
    WaitFor([&] { return ChildrenOf(self).size() == 2; },
            std::chrono::seconds(5));
    kill(self, sig);
  });
  const auto start = Clock::now();
  try {
    p.for_each(2, [](std::size_t) { pause(); });
    ADD_FAILURE() << "expected InterruptedError";
  } catch (const InterruptedError& e) {
    EXPECT_EQ(e.signal(), sig);
    EXPECT_THAT(e.what(),
                HasSubstr("interrupted by " +
                          std::string(sig == SIGINT ? "SIGINT" : "SIGTERM")));
  }
  sender.join();
  EXPECT_LT(Clock::now() - start, kBound);
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  sigaction(sig, &before, &after);
  EXPECT_EQ(after.sa_handler, &UserHandler);
  EXPECT_EQ(g_user_handler_calls.load(), 0);
}

TEST(ProcessSignals, SigintInterruptsTheCall) { ExpectInterruptedBy(SIGINT); }
TEST(ProcessSignals, SigtermInterruptsTheCall) { ExpectInterruptedBy(SIGTERM); }

TEST(ProcessSignals, WorkersDieWithAKilledCaller) {
  // A pipe tells the test the caller's workers are running.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t caller = fork();
  ASSERT_GE(caller, 0);
  if (caller == 0) {
    close(ready[0]);
    Parallel p({.jobs = 2, .backend = "process"});
    p.for_each(2, [&](std::size_t) {
      char c = 'r';
      [[maybe_unused]] ssize_t w = write(ready[1], &c, 1);
      pause();
    });
    _exit(0);
  }
  close(ready[1]);
  char buf[2];
  std::size_t got = 0;
  while (got < 2) {
    const ssize_t r = read(ready[0], buf, 2 - got);
    ASSERT_GT(r, 0);
    got += static_cast<std::size_t>(r);
  }
  close(ready[0]);
  const std::vector<pid_t> workers = ChildrenOf(caller);
  ASSERT_EQ(workers.size(), 2u);
  kill(caller, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(caller, &status, 0), caller);
  EXPECT_TRUE(WaitFor(
      [&] { return IsGoneOrZombie(workers[0]) && IsGoneOrZombie(workers[1]); },
      std::chrono::seconds(2)));
}

// A static object's destructor, which must not run in a worker.
SharedInt* g_destructor_runs = new SharedInt;
struct CountsDestruction {
  ~CountsDestruction() { (*g_destructor_runs)->fetch_add(1); }
} g_counts_destruction;

TEST(ProcessWorker, LeavesWithoutStaticDestructorsOrAtexit) {
  static SharedInt atexit_runs;
  static SharedInt* atexit_counter = &atexit_runs;
  std::atexit([] { (*atexit_counter)->fetch_add(1); });
  // ExitZeroFromATaskIsStillADeath ran them in a worker on purpose (exit(0)).
  (*g_destructor_runs)->store(0);
  atexit_runs->store(0);
  Parallel p({.jobs = 2, .backend = "process"});
  EXPECT_EQ(p.map(8, [](std::size_t i) { return int(i); }).size(), 8u);
  EXPECT_EQ((*g_destructor_runs)->load(), 0);
  EXPECT_EQ(atexit_runs->load(), 0);
}

TEST(ProcessWorker, BufferedOutputIsNotPrintedTwice) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  std::fputs("once", f);  // buffered in the caller when the workers fork
  Parallel p({.jobs = 2, .backend = "process"});
  p.for_each(4, [&](std::size_t i) { std::fprintf(f, "[%zu]", i); });
  std::fflush(f);
  std::rewind(f);
  char buf[128] = {};
  const std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  const std::string text(buf, n);
  EXPECT_EQ(text.find("once"), 0u);
  EXPECT_EQ(text.find("once", 1), std::string::npos) << text;
  for (int i = 0; i < 4; ++i) {
    EXPECT_THAT(text, HasSubstr("[" + std::to_string(i) + "]")) << text;
  }
}

TEST(ProcessWorker, SignalDispositionsAreReset) {
  struct sigaction ignore, before;
  std::memset(&ignore, 0, sizeof(ignore));
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGUSR1, &ignore, &before);
  Parallel p({.jobs = 2, .backend = "process"});
  std::vector<int> dfl = p.map(2, [](std::size_t) {
    struct sigaction now;
    sigaction(SIGUSR1, nullptr, &now);
    return now.sa_handler == SIG_DFL ? 1 : 0;
  });
  sigaction(SIGUSR1, &before, nullptr);
  EXPECT_EQ(dfl, (std::vector<int>{1, 1}));
}

TEST(ProcessWorker, ForksFromAProcessWithAThreadPool) {
  // The thread backend's pool threads exist in this process from now on.
  Parallel threads({.jobs = 2, .backend = "thread"});
  EXPECT_EQ(threads.map(100, [](std::size_t i) { return int(i); })[99], 99);
  Parallel p({.jobs = 2, .backend = "process"});
  std::vector<long> r = p.map(1000, [](std::size_t i) { return long(i) * 2; });
  EXPECT_EQ(r[999], 1998);
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

TEST(ProcessWorker, ForksFromAProcessWithTbbThreads) {
  // TBB's worker threads exist in this process from now on.
  Parallel tbb({.jobs = 2, .backend = "tbb"});
  EXPECT_EQ(tbb.map(1000, [](std::size_t i) { return int(i); })[999], 999);
  Parallel p({.jobs = 2, .backend = "process"});
  std::vector<long> r = p.map(1000, [](std::size_t i) { return long(i) * 3; });
  EXPECT_EQ(r[999], 2997);
  EXPECT_EQ(tbb.map(10, [](std::size_t i) { return int(i); })[9],
            9);  // still fine
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

TEST(ProcessWorker, ConcurrentCallsFromTwoThreads) {
  struct sigaction before, after;
  sigaction(SIGINT, nullptr, &before);
  auto run = [](long scale, std::vector<long>* out) {
    Parallel p({.jobs = 2, .backend = "process"});
    for (int k = 0; k < 20; ++k) {
      *out = p.map(5000, [scale](std::size_t i) { return long(i) * scale; });
    }
  };
  std::vector<long> a, b;
  std::thread ta(run, 2, &a), tb(run, 3, &b);
  ta.join();
  tb.join();
  ASSERT_EQ(a.size(), 5000u);
  ASSERT_EQ(b.size(), 5000u);
  for (std::size_t i = 0; i < 5000; ++i) {
    ASSERT_EQ(a[i], long(i) * 2);
    ASSERT_EQ(b[i], long(i) * 3);
  }
  sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);  // restored by the last call
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

TEST(ProcessWorker, IgnoredSigintStaysIgnored) {
  struct sigaction ignore, before;
  std::memset(&ignore, 0, sizeof(ignore));
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ignore, &before);
  Parallel p({.jobs = 2, .backend = "process"});
  std::vector<int> r = p.map(4, [](std::size_t i) {
    if (i == 0) kill(getppid(), SIGINT);  // the caller ignores it
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return int(i);
  });
  sigaction(SIGINT, &before, nullptr);
  EXPECT_EQ(r, (std::vector<int>{0, 1, 2, 3}));
}

// A worker SIGKILLed mid-call is on the trace: its row ends with the death
// (its open span closed there, naming the task), a replacement is forked
// for it, and the task it died in has one span per attempt; a task_timeout
// kill is there too.
TEST(ProcessTrace, KilledWorkerIsADeathAndAReplacementOnTheTimeline) {
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR")) + "/death.json";
  SharedInt runs_of_50;
  Parallel p({.jobs = 2,
              .backend = "process",
              .retries = 1,
              .trace = path,
              .trace_summary = true});
  const std::vector<int> r = p.map(200, [&](std::size_t i) {
    if (i == 50 && runs_of_50->fetch_add(1) == 0) kill(getpid(), SIGKILL);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    return static_cast<int>(i);
  });
  ASSERT_EQ(r.size(), 200u);
  EXPECT_EQ(r[50], 50);
  const std::string cmd =
      "/usr/bin/python3 core/testing/trace_check.py '" + path +
      "' --tasks=200 --attempts=50:2 --deaths=1 --replacements=1 "
      "--min-workers=3";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  const std::optional<TraceSummary> s = p.last_trace_summary();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->deaths, 1);
  EXPECT_EQ(s->forks, 3);
  EXPECT_EQ(s->retries, 1);
  EXPECT_EQ(s->workers.size(), 2u) << to_string(*s);  // by worker index
}

TEST(ProcessTrace, TaskTimeoutKillIsOnTheTimeline) {
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR")) + "/timeout.json";
  Parallel p({.jobs = 2,
              .backend = "process",
              .errors = ErrorPolicy::kCollectAll,
              .task_timeout = std::chrono::milliseconds(100),
              .trace = path});
  const auto outcomes = p.try_map(20, [](std::size_t i) {
    if (i == 5) std::this_thread::sleep_for(std::chrono::seconds(30));
    return static_cast<int>(i);
  });
  ASSERT_EQ(outcomes.size(), 20u);
  EXPECT_FALSE(outcomes[5].ok());
  const std::string cmd = "/usr/bin/python3 core/testing/trace_check.py '" +
                          path +
                          "' --tasks=20 --deaths=1 "
                          "--notes=kill,death,fork,move";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

}  // namespace
}  // namespace fanout::testing
