// The process backend's pool survives its workers: a worker that dies
// (a signal, an OOM kill, task_timeout) is replaced and the call goes on.
// Each test checks that what finished is kept and never runs again (a run
// counter per task in MAP_SHARED memory), that the task that killed a worker
// is retried (Options::retries) or fails alone, and that no child of this
// process is left behind (zombies included).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "backends/process/testing/children.h"
#include "core/parallel.h"

namespace fanout::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// How many times each task ran, counted in MAP_SHARED memory allocated
// before the call, so that workers' increments reach the test.
class RunCounts {
 public:
  explicit RunCounts(std::size_t n) : n_(n) {
    void* p = mmap(nullptr, sizeof(std::atomic<int>) * n,
                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    counts_ = static_cast<std::atomic<int>*>(p);
    for (std::size_t i = 0; i < n; ++i) new (&counts_[i]) std::atomic<int>(0);
  }
  ~RunCounts() { munmap(counts_, sizeof(std::atomic<int>) * n_); }
  RunCounts(const RunCounts&) = delete;
  RunCounts& operator=(const RunCounts&) = delete;

  void Ran(std::size_t i) const {
    counts_[i].fetch_add(1, std::memory_order_relaxed);
  }
  int operator[](std::size_t i) const { return counts_[i].load(); }

 private:
  std::size_t n_;
  std::atomic<int>* counts_;
};

// A fresh directory for marker files, removed with its files at the end.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern =
        std::string(base != nullptr ? base : "/tmp") + "/pool_test.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    for (const char* f : {"once", "attempts"}) {
      unlink((path_ + "/" + f).c_str());
    }
    rmdir(path_.c_str());
  }
  std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// True the first time it is called for `path` in any process (O_EXCL).
bool FirstTime(const std::string& path) {
  const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// Appends one byte to `path`: how many attempts a task made.
void CountAttempt(const std::string& path) {
  const int fd = open(path.c_str(), O_CREAT | O_APPEND | O_WRONLY, 0600);
  if (fd < 0) std::abort();
  [[maybe_unused]] const ssize_t w = write(fd, "x", 1);
  close(fd);
}

long FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : -1;
}

// A real invalid access, not a null dereference UBSan would stop first.
void Crash() {
  void* page =
      mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  *static_cast<volatile int*>(page) = 1;
}

// Every task but `except` ran exactly once.
void ExpectRanOnce(const RunCounts& runs, std::size_t n, std::size_t except) {
  for (std::size_t i = 0; i < n; ++i) {
    if (i != except) {
      EXPECT_EQ(runs[i], 1) << "task " << i;
    }
  }
}

constexpr std::size_t kN = 64;

// Task 21 SIGKILLs its worker once; with retries = 1 the call returns every
// right answer, and no task but 21 ran twice. Batches of 8: the death is in
// the middle of a chunk, whose rest goes to the replacement.
TEST(ProcessPool, SigkilledWorkerIsReplacedAndItsTaskRetried) {
  TempDir dir;
  RunCounts runs(kN);
  Parallel p({.jobs = 2, .backend = "process", .batch_size = 8, .retries = 1});
  const std::vector<long> r = p.map(kN, [&](std::size_t i) -> long {
    runs.Ran(i);
    if (i == 21 && FirstTime(dir.file("once"))) raise(SIGKILL);
    return static_cast<long>(i * i);
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  ASSERT_EQ(r.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) EXPECT_EQ(r[i], long(i * i)) << i;
  EXPECT_EQ(runs[21], 2);
  ExpectRanOnce(runs, kN, 21);
}

// Kills forked children right after fork (a pthread_atfork child handler:
// before the worker's first line, so before it claims or runs anything),
// those whose fork number (counted from 1 once armed) is in [first, last].
class KillAfterFork {
 public:
  KillAfterFork(int first, int last) {
    static std::once_flag once;
    std::call_once(once, [] {
      pthread_atfork(nullptr, nullptr, [] {
        State* s = state();
        if (!s->armed.load()) return;
        const int number = s->forks.fetch_add(1) + 1;
        if (number >= s->first.load() && number <= s->last.load()) {
          raise(SIGKILL);
        }
      });
    });
    State* s = state();
    s->forks = 0;
    s->first = first;
    s->last = last;
    s->armed = true;
  }
  ~KillAfterFork() { state()->armed = false; }
  KillAfterFork(const KillAfterFork&) = delete;
  KillAfterFork& operator=(const KillAfterFork&) = delete;
  int forks() const { return state()->forks.load(); }

 private:
  // In MAP_SHARED memory: the count must go up in the children's forks too.
  struct State {
    std::atomic<bool> armed{false};
    std::atomic<int> forks{0};
    std::atomic<int> first{0};
    std::atomic<int> last{0};
  };
  static State* state() {
    static State* s = [] {
      void* p = mmap(nullptr, sizeof(State), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) std::abort();
      return new (p) State;
    }();
    return s;
  }
};

// Issue 23 item 10: a worker that dies before its first task (nothing
// claimed) is replaced like any other, up to the call's cap of deaths
// between tasks (16): the first 16 forks die, the call succeeds with every
// task run once. It used to end the call ("... before it started a task").
TEST(ProcessPool, WorkersKilledRightAfterForkAreReplaced) {
  constexpr std::size_t kTasks = 1000;
  for (const std::size_t batch : {std::size_t{1}, std::size_t{0}}) {
    RunCounts runs(kTasks);
    Parallel p({.jobs = 2, .backend = "process", .batch_size = batch});
    std::vector<long> r;
    int forks = 0;
    {
      KillAfterFork killer(1, 16);
      r = p.map(kTasks, [&](std::size_t i) -> long {
        runs.Ran(i);
        return static_cast<long>(i) * 3;
      });
      forks = killer.forks();
    }
    EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
    EXPECT_GE(forks, 17) << "batch " << batch;
    ASSERT_EQ(r.size(), kTasks);
    for (std::size_t i = 0; i < kTasks; ++i) {
      ASSERT_EQ(r[i], static_cast<long>(i) * 3) << i;
    }
    ExpectRanOnce(runs, kTasks, kTasks);
  }
}

// One more than the cap ends the call, saying why, with nothing left
// running and no task run twice.
TEST(ProcessPool, MoreDeathsBeforeAnyTaskThanTheCapEndTheCall) {
  constexpr std::size_t kTasks = 100;
  RunCounts runs(kTasks);
  Parallel p({.jobs = 2, .backend = "process", .batch_size = 1});
  try {
    KillAfterFork killer(1, 17);
    p.map(kTasks, [&](std::size_t i) -> long {
      runs.Ran(i);
      return static_cast<long>(i);
    });
    FAIL() << "the call survived 17 deaths between tasks";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::StartsWith(
                              "process backend: worker killed by SIGKILL "
                              "(Killed)"));
    EXPECT_THAT(e.what(),
                HasSubstr(") between tasks; 17 workers died running no task "
                          "in this call and at most 16 are replaced, so "
                          "something keeps killing them (a kill from "
                          "outside?)"));
  }
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  for (std::size_t i = 0; i < kTasks; ++i) EXPECT_LE(runs[i], 1) << i;
}

// A replacement that dies right after its fork, before its slot records the
// tasks it was handed (the rest of a dead worker's chunk): they are still
// known, and handed to the next one. One worker (jobs 1, kept in a worker
// by the task_timeout): task 21 kills it once; its replacements (forks 2
// to 5) die at once; fork 6 runs 21 again and the rest of its chunk.
TEST(ProcessPool, AReplacementKilledBeforeItsHandedTasksHandsThemOn) {
  TempDir dir;
  RunCounts runs(kN);
  Parallel p({.jobs = 1,
              .backend = "process",
              .batch_size = 8,
              .retries = 1,
              .task_timeout = std::chrono::seconds(60)});
  std::vector<long> r;
  {
    KillAfterFork killer(2, 5);
    r = p.map(kN, [&](std::size_t i) -> long {
      runs.Ran(i);
      if (i == 21 && FirstTime(dir.file("once"))) raise(SIGKILL);
      return static_cast<long>(i * i);
    });
    EXPECT_EQ(killer.forks(), 6);
  }
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  ASSERT_EQ(r.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) EXPECT_EQ(r[i], long(i * i)) << i;
  EXPECT_EQ(runs[21], 2);
  ExpectRanOnce(runs, kN, 21);
}

// The same where the chunks run whole (their results land in the shared
// pages aliased over the result array: 8192 longs span 16 pages): the tasks
// of the dead worker's chunk before the one that killed it are kept, and
// none runs twice.
TEST(ProcessPool, DeathInAChunkThatRunsWholeKeepsWhatFinished) {
  constexpr std::size_t kBig = 8192;
  TempDir dir;
  RunCounts runs(kBig);
  Parallel p(
      {.jobs = 2, .backend = "process", .batch_size = 256, .retries = 1});
  const std::vector<long> r = p.map(kBig, [&](std::size_t i) -> long {
    runs.Ran(i);
    if (i == 3000 && FirstTime(dir.file("once"))) raise(SIGKILL);
    return static_cast<long>(i) * 7;
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  ASSERT_EQ(r.size(), kBig);
  for (std::size_t i = 0; i < kBig; ++i) {
    ASSERT_EQ(r[i], static_cast<long>(i) * 7) << i;
  }
  EXPECT_EQ(runs[3000], 2);
  ExpectRanOnce(runs, kBig, 3000);
}

// A clean call over a large result array (8 MB: huge pages in the caller,
// the shared pages mapped chunk by chunk in the workers, in chunks larger
// and smaller than a page): every result is right, and the workers, which
// close their pipes before their exit so that the caller need not wait for
// their teardown, are all reaped before the call returns.
TEST(ProcessPool, LargeResultsArriveAndEveryWorkerIsReaped) {
  constexpr std::size_t kLarge = std::size_t{1} << 20;
  for (const std::size_t batch : {std::size_t{0}, std::size_t{100}}) {
    Parallel p({.jobs = 3, .backend = "process", .batch_size = batch});
    for (int call = 0; call < 2; ++call) {
      const std::vector<std::uint64_t> r = p.map(
          kLarge, [&](std::size_t i) { return std::uint64_t{i} * 3 + call; });
      EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
      ASSERT_EQ(r.size(), kLarge);
      for (std::size_t i = 0; i < kLarge; ++i) {
        ASSERT_EQ(r[i], std::uint64_t{i} * 3 + call) << batch << " " << i;
      }
    }
  }
}

// The same with results that travel through the pipe (strings): the results
// the dead worker had gathered but not sent yet are kept from its stage.
TEST(ProcessPool, UnsentResultsOfADeadWorkerAreKept) {
  TempDir dir;
  RunCounts runs(kN);
  Parallel p({.jobs = 2, .backend = "process", .batch_size = 8, .retries = 1});
  const std::vector<std::string> r = p.map(kN, [&](std::size_t i) {
    runs.Ran(i);
    if (i == 21 && FirstTime(dir.file("once"))) raise(SIGKILL);
    return "r" + std::to_string(i);
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  ASSERT_EQ(r.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) EXPECT_EQ(r[i], "r" + std::to_string(i));
  EXPECT_EQ(runs[21], 2);
  ExpectRanOnce(runs, kN, 21);
}

// Progress counts each task once, whether its worker died or not: a dead
// worker's finished tasks and the task that killed it are counted by the
// caller, the rest of its chunk by the replacement. The call fails (task 21),
// so its last event carries the real count, not the total.
TEST(ProcessPool, ProgressCountsEveryTaskOnceAcrossADeath) {
  TempDir dir;
  std::size_t last_done = 0;
  bool finished = false;
  Parallel p({.jobs = 2,
              .backend = "process",
              .batch_size = 8,
              .on_progress = [&](const ProgressEvent& e) {
                if (e.finished) {
                  last_done = e.done;
                  finished = true;
                }
              }});
  auto r = p.try_map(kN, [&](std::size_t i) {
    if (i == 21 && FirstTime(dir.file("once"))) raise(SIGKILL);
    return static_cast<int>(i);
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  EXPECT_FALSE(r[21].ok());
  EXPECT_TRUE(finished);
  EXPECT_EQ(last_done, kN);
}

// retries = 0 under collect-all: only the killed task fails, naming the
// signal and the worker's peak memory; every other task completes once.
TEST(ProcessPool, WithoutRetriesOnlyTheKilledTaskFails) {
  TempDir dir;
  RunCounts runs(kN);
  Parallel p({.jobs = 2, .backend = "process", .batch_size = 8});
  auto r = p.try_map(kN, [&](std::size_t i) -> std::string {
    runs.Ran(i);
    if (i == 21 && FirstTime(dir.file("once"))) raise(SIGKILL);
    return std::to_string(i);
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  ASSERT_EQ(r.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) {
    if (i == 21) continue;
    ASSERT_TRUE(r[i].ok()) << i << ": " << r[i].error().what();
    EXPECT_EQ(r[i].value(), std::to_string(i));
  }
  ASSERT_FALSE(r[21].ok());
  const TaskError& e = r[21].error();
  EXPECT_EQ(e.index(), 21u);
  EXPECT_EQ(e.signal(), SIGKILL);
  EXPECT_THAT(e.what(), HasSubstr("task 21 failed on backend 'process' (pid "));
  EXPECT_THAT(e.what(), HasSubstr("worker killed by SIGKILL (Killed)"));
  EXPECT_THAT(e.what(), HasSubstr("while running this task; peak memory "));
  EXPECT_THAT(e.what(), ::testing::Not(HasSubstr("attempts")));
  ExpectRanOnce(runs, kN, kN);
}

// A task that segfaults every time is quarantined after retries + 1
// attempts; every other task completes, and none ran twice.
template <class R, class Make>
void ExpectPoisonQuarantined(Make make) {
  TempDir dir;
  RunCounts runs(kN);
  Parallel p({.jobs = 2,
              .backend = "process",
              .batch_size = 4,
              .errors = ErrorPolicy::kCollectAll,
              .retries = 2});
  auto r = p.try_map(kN, [&](std::size_t i) -> R {
    runs.Ran(i);
    if (i == 9) {
      CountAttempt(dir.file("attempts"));
      Crash();
    }
    return make(i);
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  EXPECT_EQ(FileSize(dir.file("attempts")), 3);
  EXPECT_EQ(runs[9], 3);
  ExpectRanOnce(runs, kN, 9);
  ASSERT_EQ(r.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) {
    if (i == 9) continue;
    ASSERT_TRUE(r[i].ok()) << i << ": " << r[i].error().what();
    EXPECT_EQ(r[i].value(), make(i));
  }
  ASSERT_FALSE(r[9].ok());
  const TaskError& e = r[9].error();
  EXPECT_EQ(e.signal(), SIGSEGV);
  EXPECT_THAT(e.what(), HasSubstr("task 9 failed on backend 'process' (pid "));
  EXPECT_THAT(e.what(), HasSubstr("worker killed by SIGSEGV (Segmentation "
                                  "fault) while running this task (failed 3 "
                                  "attempts)"));
}

TEST(ProcessPool, PoisonTaskIsQuarantinedTrivialResults) {
  ExpectPoisonQuarantined<int>([](std::size_t i) { return int(i) * 3; });
}

TEST(ProcessPool, PoisonTaskIsQuarantinedEncodedResults) {
  ExpectPoisonQuarantined<std::string>([](std::size_t i) {
    return std::string(i % 7 + 1, static_cast<char>('a' + i % 26));
  });
}

// Every task crashes: each kills retries + 1 workers, then the call ends;
// it cannot fork for ever.
TEST(ProcessPool, EveryTaskCrashingEndsTheCall) {
  RunCounts runs(8);
  Parallel p({.jobs = 2,
              .backend = "process",
              .batch_size = 1,
              .errors = ErrorPolicy::kCollectAll,
              .retries = 1});
  auto r = p.try_map(8, [&](std::size_t i) -> int {
    runs.Ran(i);
    Crash();
    return 0;
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(runs[i], 2) << i;
    ASSERT_FALSE(r[i].ok());
    EXPECT_THAT(r[i].error().what(), HasSubstr("(failed 2 attempts)"));
  }
}

// Under fail-fast the call throws naming the task, after its retries.
TEST(ProcessPool, FailFastThrowsTheQuarantinedTask) {
  TempDir dir;
  Parallel p({.jobs = 2, .backend = "process", .batch_size = 1, .retries = 1});
  try {
    p.map(16, [&](std::size_t i) -> int {
      if (i == 5) {
        CountAttempt(dir.file("attempts"));
        Crash();
      }
      return 0;
    });
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 5u);
    EXPECT_EQ(e.signal(), SIGSEGV);
    EXPECT_THAT(e.what(), HasSubstr("(failed 2 attempts)"));
  }
  EXPECT_EQ(FileSize(dir.file("attempts")), 2);
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

// A task over task_timeout fails alone; the call goes on with a new worker.
TEST(ProcessPool, TaskOverTaskTimeoutFailsAlone) {
  RunCounts runs(kN);
  Parallel p({.jobs = 2,
              .backend = "process",
              .batch_size = 4,
              .task_timeout = std::chrono::milliseconds(200)});
  auto r = p.try_map(kN, [&](std::size_t i) -> int {
    runs.Ran(i);
    if (i == 6) std::this_thread::sleep_for(std::chrono::hours(1));
    return int(i);
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  ExpectRanOnce(runs, kN, kN);
  for (std::size_t i = 0; i < kN; ++i) {
    if (i == 6) continue;
    ASSERT_TRUE(r[i].ok()) << i << ": " << r[i].error().what();
    EXPECT_EQ(r[i].value(), int(i));
  }
  ASSERT_FALSE(r[6].ok());
  EXPECT_THAT(r[6].error().what(),
              HasSubstr("task 6 failed on backend 'process' (pid "));
  EXPECT_THAT(r[6].error().what(), HasSubstr("): timed out after 200 ms"));
}

// Results that would let chunks run whole (16 aliased pages): with a
// task_timeout they run task by task, so the overdue task is still seen.
TEST(ProcessPool, TaskTimeoutHoldsWhereChunksWouldRunWhole) {
  constexpr std::size_t kBig = 8192;
  RunCounts runs(kBig);
  Parallel p({.jobs = 2,
              .backend = "process",
              .batch_size = 256,
              .task_timeout = std::chrono::milliseconds(200)});
  auto r = p.try_map(kBig, [&](std::size_t i) -> long {
    runs.Ran(i);
    if (i == 3000) std::this_thread::sleep_for(std::chrono::hours(1));
    return static_cast<long>(i);
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  ExpectRanOnce(runs, kBig, kBig);
  for (std::size_t i = 0; i < kBig; ++i) {
    if (i == 3000) continue;
    ASSERT_TRUE(r[i].ok()) << i;
    ASSERT_EQ(r[i].value(), static_cast<long>(i));
  }
  ASSERT_FALSE(r[3000].ok());
  EXPECT_THAT(r[3000].error().what(), HasSubstr("timed out after 200 ms"));
}

// With retries, a task that times out every time counts each attempt.
TEST(ProcessPool, TaskTimeoutIsRetried) {
  TempDir dir;
  Parallel p({.jobs = 2,
              .backend = "process",
              .batch_size = 1,
              .retries = 1,
              .task_timeout = std::chrono::milliseconds(100)});
  try {
    p.map(6, [&](std::size_t i) -> int {
      if (i == 2) {
        CountAttempt(dir.file("attempts"));
        std::this_thread::sleep_for(std::chrono::hours(1));
      }
      return int(i);
    });
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 2u);
    EXPECT_THAT(e.what(),
                HasSubstr("timed out after 100 ms (its worker was killed) "
                          "(failed 2 attempts)"));
  }
  EXPECT_EQ(FileSize(dir.file("attempts")), 2);
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

// With a task limit, one task or jobs = 1 still runs in a worker, so the
// limit holds (a thread of the caller could not be stopped).
TEST(ProcessPool, TaskTimeoutHoldsForASingleTask) {
  Parallel p({.jobs = 1,
              .backend = "process",
              .task_timeout = std::chrono::milliseconds(100)});
  auto r = p.try_map(1, [](std::size_t) -> int {
    std::this_thread::sleep_for(std::chrono::hours(1));
    return 0;
  });
  ASSERT_FALSE(r[0].ok());
  EXPECT_THAT(r[0].error().what(), HasSubstr("timed out after 100 ms"));
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

// A task that allocates past worker_memory fails alone with the limit in
// its message; the caller and the other tasks are unharmed.
// A task that allocates past worker_memory fails alone with the limit in
// its message; its worker then leaves (its heap may stay large) and a fresh
// one runs the rest of its chunk; the caller and the other tasks are
// unharmed, and no task runs twice.
TEST(ProcessPool, TaskOverWorkerMemoryFailsAlone) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's allocator ends the process when memory runs "
                  "out (no std::bad_alloc) and keeps freed memory";
#endif
  struct Ran {
    long value = 0;
    int pid = 0;
  };
  RunCounts runs(16);
  Parallel p({.jobs = 2,
              .backend = "process",
              .batch_size = 4,
              .worker_memory = std::size_t{64} << 20});
  auto r = p.try_map(16, [&](std::size_t i) -> Ran {
    runs.Ran(i);
    if (i == 5) {
      std::vector<std::vector<char>> hog;
      for (;;) hog.emplace_back(std::size_t{8} << 20, 'x');
    }
    // Well under the limit: a task that stays within it is untouched.
    std::vector<char> fine(std::size_t{16} << 20, 'y');
    return {static_cast<long>(i) + fine[i], static_cast<int>(getpid())};
  });
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
  ExpectRanOnce(runs, 16, 16);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 5) continue;
    ASSERT_TRUE(r[i].ok()) << i << ": " << r[i].error().what();
    EXPECT_EQ(r[i].value().value, static_cast<long>(i) + 'y');
  }
  ASSERT_FALSE(r[5].ok());
  EXPECT_EQ(r[5].error().type(), "std::bad_alloc");
  EXPECT_EQ(r[5].error().message(),
            "exceeded the worker memory limit of 64 MiB");
  // Tasks 4..7 are one chunk: 4 ran in the worker that failed 5, and 6 and 7
  // in its replacement.
  const std::string failed_in = r[5].error().worker();
  EXPECT_EQ("pid " + std::to_string(r[4].value().pid), failed_in);
  EXPECT_NE("pid " + std::to_string(r[6].value().pid), failed_in);
  EXPECT_EQ(r[6].value().pid, r[7].value().pid);
}

TEST(ProcessPool, TaskLimitsAreRefusedOnThreads) {
  int ran = 0;
  try {
    Parallel({.jobs = 2,
              .backend = "thread",
              .task_timeout = std::chrono::milliseconds(100)})
        .map(4, [&](std::size_t) { return ++ran; });
    ADD_FAILURE() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "task_timeout needs the process backend: a thread cannot be "
                 "stopped from outside, so backend 'thread' cannot end a task "
                 "that runs too long; use backend 'process', or timeout for "
                 "the whole call");
  }
  try {
    Parallel({.jobs = 1, .backend = "thread", .worker_memory = 1 << 20})
        .map(4, [&](std::size_t) { return ++ran; });
    ADD_FAILURE() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "worker_memory needs the process backend: backend 'thread' "
                 "runs tasks in memory it cannot limit per worker; use "
                 "backend 'process'");
  }
  EXPECT_EQ(ran, 0);
}

}  // namespace
}  // namespace fanout::testing
