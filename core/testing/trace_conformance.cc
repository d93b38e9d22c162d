// The trace (Options::trace, core/trace.h) on every backend: a traced call
// writes a file that Python's json module reads, with a row per worker and
// exactly one span covering each task index per attempt; its summary adds up
// to the call's wall time; a path that cannot be written is refused before
// any task runs.
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/testing/conformance.h"

namespace fanout::testing {
namespace {

// A count every forked worker shares.
class SharedCount {
 public:
  SharedCount() {
    void* p = mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    count_ = new (p) std::atomic<int>(0);
  }
  ~SharedCount() { munmap(count_, sizeof(std::atomic<int>)); }
  std::atomic<int>& operator*() const { return *count_; }

 private:
  std::atomic<int>* count_;
};

// A trace file's path for this test, the same on every mpi rank (not
// removed first: only rank 0 writes it, and it is emptied when this process
// first opens it).
// A file of its own for each use (a program appends every traced call to a
// file it traced to before, so --gtest_repeat needs a new name each time;
// mpi ranks count alike, as they run the same tests in the same order).
std::string TracePath(const std::string& backend, const char* name) {
  static int uses = 0;
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/trace_" + backend +
         "_" + name + "_" + std::to_string(++uses) + ".json";
}

// Runs core/testing/trace_check.py on `path` with `args`; its exit status.
int Check(const std::string& path, const std::string& args) {
  const std::string cmd =
      "/usr/bin/python3 core/testing/trace_check.py '" + path + "' " + args;
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// About 20 µs of arithmetic: long enough that every worker takes part.
std::uint64_t Work(std::size_t i) {
  std::uint64_t acc = i;
  for (int k = 0; k < 20000; ++k) {
    acc = acc * 6364136223846793005ULL + 1442695040888963407ULL;
    asm volatile("" : "+r"(acc));
  }
  return acc;
}

TEST_P(Conformance, TraceHasOneSpanPerTaskPerAttempt) {
  constexpr std::size_t kN = 3000;
  const std::string path = TracePath(backend(), "spans");
  SharedCount runs_of_7;
  Parallel p({.jobs = 2, .backend = backend(), .retries = 2, .trace = path});
  std::vector<std::uint64_t> r = p.map(kN, [&](std::size_t i) {
    if (i == 7 && (*runs_of_7).fetch_add(1) < 2) {
      throw std::runtime_error("flaky");
    }
    return Work(i);
  });
  ASSERT_EQ(r.size(), kN);
  EXPECT_EQ(r[7], Work(7));
  if (!p.executor().is_primary()) return;  // rank 0 writes the file
  const int workers = p.executor().jobs() > 1 ? 2 : 1;
  EXPECT_EQ(Check(path, "--tasks=" + std::to_string(kN) +
                            " --attempts=7:3 --min-workers=" +
                            std::to_string(workers)),
            0);
}

TEST_P(Conformance, TraceOfLongTasksHasASpanPerTask) {
  // Tasks of about 2 ms: after each worker's first chunk, a span per task.
  constexpr std::size_t kN = 40;
  const std::string path = TracePath(backend(), "long");
  Parallel p({.jobs = 2, .backend = backend(), .batch_size = 4, .trace = path});
  p.for_each(kN, [](std::size_t i) {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
    while (std::chrono::steady_clock::now() < until) {
    }
    (void)i;
  });
  ASSERT_TRUE(p.last_trace_summary().has_value());
  if (!p.executor().is_primary()) return;
  // Each worker's first chunk of 4 is one span, every later chunk a span per
  // task.
  EXPECT_EQ(
      Check(path, "--tasks=" + std::to_string(kN) + " --per-task-after-first"),
      0);
}

TEST_P(Conformance, TraceSummaryAddsUpToTheWallTime) {
  constexpr std::size_t kN = 2000;
  Parallel p({.jobs = 2, .backend = backend(), .trace_summary = true});
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> r = p.map(kN, Work);
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  ASSERT_EQ(r.size(), kN);
  const std::optional<TraceSummary> s = p.last_trace_summary();
  ASSERT_TRUE(s.has_value());
  const double parts = s->start_seconds + s->running_seconds +
                       s->waiting_seconds + s->moving_seconds +
                       s->other_seconds;
  EXPECT_NEAR(parts, s->wall_seconds, 1e-6 + 1e-9 * kN);
  // The summary's wall is the call's, inside the caller's measured window
  // (how much smaller depends on the machine's load: no timed assertion).
  EXPECT_GT(parts, 0) << to_string(*s);
  EXPECT_LE(parts, wall + 1e-6) << to_string(*s);
  EXPECT_EQ(s->tasks, kN);
  EXPECT_EQ(s->backend, backend());
  ASSERT_FALSE(s->workers.empty());
  std::size_t tasks = 0;
  for (const TraceSummary::Worker& w : s->workers) {
    EXPECT_GE(w.busy_fraction, 0.0);
    EXPECT_LE(w.busy_fraction, 1.0 + 1e-9) << to_string(*s);
    tasks += w.tasks;
  }
  // Every task on this process's rows (mpi: rank 0 gathered every rank's).
  if (p.executor().is_primary()) {
    EXPECT_EQ(tasks, kN) << to_string(*s);
  }
  EXPECT_LE(s->slowest.size(), 5u);
  EXPECT_GT(s->mean_task_seconds, 0.0);
}

TEST_P(Conformance, TracePathThatCannotBeWrittenIsRefusedBeforeAnyTask) {
  SharedCount ran;
  // Each mpi rank its own.
  const std::string fifo =
      TracePath(backend(), ("fifo" + std::to_string(getpid())).c_str());
  std::remove(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& bad :
       {std::string("/nonexistent-dir-of-fanout/run.json"), std::string("/"),
        fifo}) {
    try {
      Parallel p({.jobs = 2, .backend = backend(), .trace = bad});
      p.for_each(10, [&](std::size_t) { ++*ran; });
      ADD_FAILURE() << bad << " was taken";
    } catch (const UsageError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("Options::trace '" + bad + "'"), std::string::npos)
          << what;
      EXPECT_NE(what.find("valid:"), std::string::npos) << what;
    }
  }
  EXPECT_EQ((*ran).load(), 0);
  std::remove(fifo.c_str());
}

}  // namespace
}  // namespace fanout::testing
