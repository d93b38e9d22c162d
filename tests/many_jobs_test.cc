// A jobs count far above the CPUs (issue 23 item 6): thread, tbb and
// process refuse more than their limit with one UsageError naming it,
// before any thread or process starts; a call stopped (Ctrl+C, a cancel,
// the deadline) before its workers exist starts none of them. The CLI
// exits 2 with the same line.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/executor.h"
#include "core/internal/stop_token.h"
#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

// The threads this process has (the kernel's count).
int ThreadsNow() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

// Forks made by this process (every fork goes through glibc's fork()).
std::atomic<int> g_forks{0};
void CountFork() { g_forks.fetch_add(1); }
const bool g_counting = [] {
  pthread_atfork(nullptr, CountFork, nullptr);
  return true;
}();

struct Limit {
  const char* backend;
  int per_cpu;
  std::string why;
};

class ManyJobs : public ::testing::TestWithParam<Limit> {};

// A job of n tasks that counts how many ran.
struct Counted {
  std::atomic<std::size_t> ran{0};
  char slots[1000] = {};
  Job job(std::size_t n) {
    Job j;
    j.n = n;
    j.ctx = this;
    j.run_range = [](void* c, std::size_t begin, std::size_t end,
                     TaskFailure*) -> std::size_t {
      static_cast<Counted*>(c)->ran.fetch_add(end - begin);
      return end - begin;
    };
    j.trivial_result_size = 1;
    j.result_slot = [](void* c, std::size_t i) -> void* {
      return &static_cast<Counted*>(c)->slots[i];
    };
    j.encode_result = [](void*, std::size_t, std::string*) {};
    j.decode_result = [](void*, std::size_t, std::string_view) {};
    return j;
  }
};

std::string Refusal(const Limit& l, int jobs) {
  const int cpus = usable_cpus();
  const std::string most = std::to_string(l.per_cpu * cpus);
  return "jobs=" + std::to_string(jobs) + " is more than backend '" +
         l.backend + "' runs at once: at most " + most + " (" +
         std::to_string(l.per_cpu) + " per usable CPU, " +
         std::to_string(cpus) + " usable CPU" + (cpus == 1 ? "" : "s") +
         " here); " + l.why + "; valid: jobs from 1 to " + most +
         ", or -1 for every usable CPU";
}

TEST_P(ManyJobs, OverTheLimitIsRefusedBeforeAnythingStarts) {
  const Limit& l = GetParam();
  const int most = l.per_cpu * usable_cpus();
  const int threads = ThreadsNow();
  const int forks = g_forks.load();
  for (const int jobs : {most + 1, 100000, 1 << 30}) {
    try {
      make_executor(l.backend, {.jobs = jobs});
      FAIL() << "jobs=" << jobs << " accepted";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()), Refusal(l, jobs));
    }
  }
  // A call's own jobs count is held to it as well.
  std::unique_ptr<Executor> ex = make_executor(l.backend, {.jobs = most});
  EXPECT_EQ(ex->jobs(), most);
  Counted counted;
  RunOptions options;
  options.jobs = most + 1;
  try {
    ex->run(counted.job(10), options);
    FAIL() << "a call of jobs=" << most + 1 << " ran";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), Refusal(l, most + 1));
  }
  EXPECT_EQ(counted.ran.load(), 0u);
  EXPECT_EQ(ThreadsNow(), threads);
  EXPECT_EQ(g_forks.load(), forks);
}

// Ctrl+C reaching a call while its workers start: with the stop raised
// before the call, not one thread or process is started (they used to be
// started, all of them, before anyone looked at the stop).
TEST_P(ManyJobs, AStopBeforeTheWorkersStartStartsNone) {
  const Limit& l = GetParam();
  // More workers than any other test of this binary asks for (thread keeps
  // its pool's threads, tbb its workers: new ones would show).
  const int jobs = std::min(l.per_cpu * usable_cpus(), 100);
  std::unique_ptr<Executor> ex = make_executor(l.backend, {.jobs = jobs});
  const int threads = ThreadsNow();
  const int forks = g_forks.load();
  StopToken stop;
  stop.RequestStop(StopReason::kInterrupted, 2);
  Counted counted;
  RunOptions options;
  options.jobs = jobs;
  options.stop = &stop;
  try {
    ex->run(counted.job(1000), options);
    FAIL() << "not interrupted";
  } catch (const InterruptedError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("interrupted by SIGINT on backend '" +
                                              std::string(l.backend) +
                                              "' with 0 of 1000 tasks finished",
                                          0),
              0u)
        << e.what();
  }
  EXPECT_EQ(counted.ran.load(), 0u);
  EXPECT_EQ(ThreadsNow(), threads);
  EXPECT_EQ(g_forks.load(), forks);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, ManyJobs,
    ::testing::Values(
        Limit{"thread", 1024,
              "each job is a thread the pool keeps until the process ends"},
        Limit{"tbb", 64,
              "TBB's threads are for CPU work: beyond the CPUs they only take "
              "turns and slow every call; for tasks that mostly wait, use "
              "backend 'thread'"},
        Limit{"process", 64,
              "each worker is a forked process with its own memory, pipe and "
              "pidfd: beyond the CPUs they only take turns; for tasks that "
              "mostly wait, use backend 'thread'"}),
    [](const ::testing::TestParamInfo<Limit>& info) {
      return std::string(info.param.backend);
    });

// The CLI: one line, exit 2, nothing run (--jobs=100000 used to start
// thousands of tbb threads and ignore Ctrl+C).
TEST(ManyJobsCli, RefusedWithOneLineAndExit2) {
  for (const char* backend : {"thread", "tbb", "process"}) {
    const Result r = RunProgram(Cli(), {std::string("--backend=") + backend,
                                        "--jobs=100000", "--tasks=20"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    const std::string prefix = "run: jobs=100000 is more than backend '" +
                               std::string(backend) + "' runs at once: ";
    EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  }
}

}  // namespace
}  // namespace fanout::testing
