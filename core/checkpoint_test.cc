// Options::checkpoint on real workers (thread and process): a call stopped
// midway (cancel, a failure, kill -9) and then run again gives the answer
// of an uninterrupted run, and the second run runs exactly the tasks the
// file did not hold. Runs are counted in MAP_SHARED memory, which forked
// workers see too; the cancel flag lives there as well, so that a worker
// process can raise it for the caller.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/parallel.h"

namespace fanout {
namespace {

// Counters every worker process shares with the test.
struct Shared {
  std::atomic<std::size_t> runs{0};
  std::atomic<bool> cancel{false};
  std::atomic<std::size_t> cancel_after{0};  // 0: never
};

class Checkpointed : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    void* p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    shared_ = new (p) Shared;
    std::string name =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = c == '/' ? '_' : c;
    const char* dir = std::getenv("TEST_TMPDIR");
    path_ = std::string(dir != nullptr ? dir : "/tmp") + "/" + name + ".ckpt";
    unlink(path_.c_str());
  }
  void TearDown() override { munmap(shared_, sizeof(Shared)); }

  Options Opts(const std::string& key = "k") {
    return {.jobs = 2,
            .backend = GetParam(),
            .cancel = &shared_->cancel,
            .checkpoint = path_,
            .checkpoint_key = key};
  }
  // Counts a run; raises the cancel flag at the cancel_after-th.
  void Count() {
    const std::size_t runs = shared_->runs.fetch_add(1) + 1;
    const std::size_t after = shared_->cancel_after.load();
    if (after != 0 && runs >= after) shared_->cancel.store(true);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  void Reset() {
    shared_->runs = 0;
    shared_->cancel = false;
    shared_->cancel_after = 0;
  }

  Shared* shared_ = nullptr;
  std::string path_;
};

constexpr std::size_t kN = 3000;

long long Value(std::size_t i) { return static_cast<long long>(i * i) + 1; }

std::vector<long long> Reference() {
  std::vector<long long> v(kN);
  for (std::size_t i = 0; i < kN; ++i) v[i] = Value(i);
  return v;
}

TEST_P(Checkpointed, MapCancelledMidwayResumesRunningOnlyTheRest) {
  shared_->cancel_after = 700;
  auto task = [this](std::size_t i) {
    Count();
    return Value(i);
  };
  {
    Parallel p(Opts());
    try {
      p.map(kN, task);
      FAIL() << "not cancelled";
    } catch (const InterruptedError& e) {
      // The whole call's count, not the window's.
      EXPECT_NE(std::string(e.what()).find(" of 3000 tasks finished"),
                std::string::npos)
          << e.what();
    }
    EXPECT_EQ(p.last_call_resumed(), 0u);
  }
  const std::size_t first_runs = shared_->runs.load();
  Reset();
  Parallel p(Opts());
  EXPECT_EQ(p.map(kN, task), Reference());
  const std::size_t resumed = p.last_call_resumed();
  // Some windows were kept, and none that was not whole.
  EXPECT_GT(resumed, 0u);
  EXPECT_LE(resumed, first_runs);
  EXPECT_EQ(shared_->runs.load(), kN - resumed);
  // Once complete, the file answers alone.
  Reset();
  EXPECT_EQ(p.map(kN, task), Reference());
  EXPECT_EQ(p.last_call_resumed(), kN);
  EXPECT_EQ(shared_->runs.load(), 0u);
}

TEST_P(Checkpointed, MapReduceCancelledMidwayResumesRunningOnlyTheRest) {
  constexpr std::size_t n = 20000;  // 4096 groups of 4 or 5 tasks
  constexpr long long kExpected = [] {
    long long s = 0;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<long long>(i) * 3;
    return s;
  }();
  shared_->cancel_after = 3000;
  auto task = [this](std::size_t i) {
    shared_->runs.fetch_add(1);
    if (shared_->cancel_after != 0 && shared_->runs >= shared_->cancel_after) {
      shared_->cancel = true;
    }
    if (i % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    return static_cast<long long>(i) * 3;
  };
  {
    Parallel p(Opts());
    EXPECT_THROW(p.map_reduce(n, task, 0LL, std::plus<>()), InterruptedError);
  }
  Reset();
  Parallel p(Opts());
  EXPECT_EQ(p.map_reduce(n, task, 0LL, std::plus<>()), kExpected);
  const std::size_t resumed = p.last_call_resumed();
  EXPECT_GT(resumed, 0u);
  EXPECT_LT(resumed, n);
  EXPECT_EQ(shared_->runs.load(), n - resumed);
  // A map of the same n and type is another call: refused.
  EXPECT_THROW(p.map(n, task), UsageError);
}

TEST_P(Checkpointed, CollectAllRecordsOnlySuccessesSoARerunRunsTheFailures) {
  auto task = [this](std::size_t i) -> long long {
    shared_->runs.fetch_add(1);
    if (i % 7 == 3 && shared_->cancel_after.load() == 0) {
      throw std::runtime_error("flaky " + std::to_string(i));
    }
    return Value(i);
  };
  Options o = Opts();
  o.cancel = nullptr;
  o.errors = ErrorPolicy::kCollectAll;
  Parallel p(o);
  auto outcomes = p.try_map(kN, task);
  std::size_t failed = 0;
  for (std::size_t i = 0; i < kN; ++i) {
    ASSERT_EQ(outcomes[i].ok(), i % 7 != 3) << i;
    if (!outcomes[i].ok()) {
      ++failed;
      // The user's index, not the window's.
      EXPECT_EQ(outcomes[i].error().index(), i);
      EXPECT_EQ(outcomes[i].error().message(), "flaky " + std::to_string(i));
    }
  }
  EXPECT_EQ(shared_->runs.load(), kN);
  Reset();
  shared_->cancel_after = 1;                // the flaky tasks now succeed
  EXPECT_EQ(p.map(kN, task), Reference());  // map resumes try_map's file
  EXPECT_EQ(p.last_call_resumed(), kN - failed);
  EXPECT_EQ(shared_->runs.load(), failed);
}

// A worker that dies under collect-all (process: the call goes on with a
// new worker): the backend names the window's task, the call names the
// user's, and the dead task is not recorded, so a rerun runs it alone.
TEST(CheckpointedProcess, ADeadWorkersTaskIsNamedAndRunAgain) {
  void* p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  Shared* shared = new (p) Shared;
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir != nullptr ? dir : "/tmp") + "/dead_worker.ckpt";
  unlink(path.c_str());
  auto task = [shared](std::size_t i) {
    shared->runs.fetch_add(1);
    if (i == 2500 && shared->cancel_after.load() == 0) _exit(3);
    return Value(i);
  };
  Options o{.jobs = 2,
            .backend = "process",
            .errors = ErrorPolicy::kCollectAll,
            .checkpoint = path};
  // The death fails the call (or, where the backend's pool outlives it,
  // the task alone): either way it names the user's task.
  try {
    auto outcomes = Parallel(o).try_map(kN, task);
    for (std::size_t i = 0; i < kN; ++i) {
      ASSERT_EQ(outcomes[i].ok(), i != 2500) << i;
    }
    EXPECT_EQ(outcomes[2500].error().index(), 2500u);
    EXPECT_EQ(outcomes[2500].error().exit_status(), 3);
    // The replacement ran only the rest of the dead worker's chunk: no
    // task ran twice (the worker's slot holds window positions, not the
    // user's task numbers).
    EXPECT_EQ(shared->runs.load(), kN);
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 2500u) << e.what();
    EXPECT_EQ(e.exit_status(), 3) << e.what();
  }
  shared->runs = 0;
  shared->cancel_after = 1;
  Parallel again(o);
  EXPECT_EQ(again.map(kN, task), Reference());
  EXPECT_GT(again.last_call_resumed(), 0u);
  EXPECT_LT(again.last_call_resumed(), kN);
  EXPECT_EQ(shared->runs.load(), kN - again.last_call_resumed());
  munmap(p, sizeof(Shared));
}

// A task the backend stops (task_timeout: its worker is killed, the call
// goes on) fails by the window's index inside the backend: the outcome
// names the user's task, and that task alone is not recorded.
TEST(CheckpointedProcess, ATaskStoppedByItsTimeoutIsNamedAndRunAgain) {
  void* p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  Shared* shared = new (p) Shared;
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir != nullptr ? dir : "/tmp") + "/task_timeout.ckpt";
  unlink(path.c_str());
  auto task = [shared](std::size_t i) {
    shared->runs.fetch_add(1);
    if (i == 2500 && shared->cancel_after.load() == 0) {
      std::this_thread::sleep_for(std::chrono::seconds(30));
    }
    return Value(i);
  };
  Options o{.jobs = 2,
            .backend = "process",
            .errors = ErrorPolicy::kCollectAll,
            .task_timeout = std::chrono::milliseconds(300),
            .checkpoint = path};
  auto outcomes = Parallel(o).try_map(kN, task);
  for (std::size_t i = 0; i < kN; ++i) {
    ASSERT_EQ(outcomes[i].ok(), i != 2500) << i;
    if (i != 2500) {
      ASSERT_EQ(outcomes[i].value(), Value(i)) << i;
    }
  }
  EXPECT_EQ(outcomes[2500].error().index(), 2500u);
  shared->runs = 0;
  shared->cancel_after = 1;
  Parallel again(o);
  EXPECT_EQ(again.map(kN, task), Reference());
  EXPECT_EQ(again.last_call_resumed(), kN - 1);
  EXPECT_EQ(shared->runs.load(), 1u);
  munmap(p, sizeof(Shared));
}

TEST_P(Checkpointed, AFailureNamesTheUsersTaskAndItsWindowIsRedone) {
  auto task = [this](std::size_t i) -> long long {
    Count();
    if (i == 2500 && shared_->cancel_after.load() == 0) {
      throw std::runtime_error("boom");
    }
    return Value(i);
  };
  Options o = Opts();
  o.cancel = nullptr;
  Parallel p(o);
  try {
    p.map(kN, task);
    FAIL();
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 2500u);
    EXPECT_EQ(e.message(), "boom");
  }
  Reset();
  shared_->cancel_after = kN * 10;  // task 2500 now succeeds
  EXPECT_EQ(p.map(kN, task), Reference());
  EXPECT_EQ(shared_->runs.load(), kN - p.last_call_resumed());
  EXPECT_LT(p.last_call_resumed(), 2500u);
}

TEST_P(Checkpointed, AnotherCallsFileIsRefusedBeforeAnyTaskRuns) {
  auto task = [this](std::size_t i) {
    shared_->runs.fetch_add(1);
    return Value(i);
  };
  Options o = Opts("a");
  o.cancel = nullptr;
  EXPECT_EQ(Parallel(o).map(kN, task), Reference());
  Reset();
  const std::string tail =
      "; valid: the same call, or another checkpoint file (delete " + path_ +
      " to start over)";
  const std::string was = "checkpoint " + path_ +
                          " was written for 3000 tasks of long long (map, key "
                          "'a'); this call has ";
  try {
    Parallel(o).map(500, task);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              was + "500 tasks of long long (map, key 'a')" + tail);
  }
  try {
    Parallel(o).map(kN, [&](std::size_t i) { return static_cast<int>(i); });
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              was + "3000 tasks of int (map, key 'a')" + tail);
  }
  o.checkpoint_key = "b";
  try {
    Parallel(o).map(kN, task);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              was + "3000 tasks of long long (map, key 'b')" + tail);
  }
  EXPECT_EQ(shared_->runs.load(), 0u);
}

// Not serializable: a result a checkpoint cannot hold.
struct Opaque {
  std::string text;
};

TEST_P(Checkpointed, AResultTheCodecCannotWriteIsRefusedUpFront) {
  Options o = Opts();
  o.cancel = nullptr;
  try {
    Parallel(o).map(10, [this](std::size_t) {
      shared_->runs.fetch_add(1);
      return Opaque{"x"};
    });
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "checkpoint " + path_ +
                  ": the result type 'fanout::(anonymous namespace)::Opaque' "
                  "cannot be written to a checkpoint; valid: a type with a "
                  "cereal serialize() (see core/codec.h) and a default "
                  "constructor or cereal's load_and_construct, or no "
                  "checkpoint");
  }
  EXPECT_EQ(shared_->runs.load(), 0u);
}

TEST_P(Checkpointed, StringsAndForEachResumeToo) {
  auto task = [this](std::size_t i) {
    Count();
    return std::string(i % 5, static_cast<char>('a' + i % 26));
  };
  shared_->cancel_after = 500;
  EXPECT_THROW(Parallel(Opts()).map(kN, task), InterruptedError);
  Reset();
  Parallel p(Opts());
  std::vector<std::string> got = p.map(kN, task);
  ASSERT_EQ(got.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) {
    ASSERT_EQ(got[i], std::string(i % 5, static_cast<char>('a' + i % 26)));
  }
  EXPECT_EQ(shared_->runs.load(), kN - p.last_call_resumed());

  unlink(path_.c_str());
  Reset();
  shared_->cancel_after = 500;
  EXPECT_THROW(Parallel(Opts()).for_each(kN, [this](std::size_t) { Count(); }),
               InterruptedError);
  Reset();
  Parallel q(Opts());
  q.for_each(kN, [this](std::size_t) { Count(); });
  EXPECT_GT(q.last_call_resumed(), 0u);
  EXPECT_EQ(shared_->runs.load(), kN - q.last_call_resumed());
}

TEST_P(Checkpointed, ProgressCountsResumedTasksAsDone) {
  shared_->cancel_after = 700;
  auto task = [this](std::size_t i) {
    Count();
    return Value(i);
  };
  EXPECT_THROW(Parallel(Opts()).map(kN, task), InterruptedError);
  Reset();
  std::vector<ProgressEvent> events;
  std::mutex mu;
  Options o = Opts();
  o.on_progress = [&](const ProgressEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
  };
  Parallel p(o);
  EXPECT_EQ(p.map(kN, task), Reference());
  ASSERT_FALSE(events.empty());
  const std::size_t resumed = p.last_call_resumed();
  ASSERT_GT(resumed, 0u);
  for (const ProgressEvent& e : events) {
    EXPECT_EQ(e.total, kN);
    EXPECT_GE(e.done, resumed);
    // The time left comes from the rate of this call's own tasks, not from
    // the ones read back (they took no time here).
    if (!e.finished && e.done > resumed && e.done < e.total && e.elapsed > 0) {
      EXPECT_NEAR(e.remaining,
                  e.elapsed / double(e.done - resumed) * double(kN - e.done),
                  1e-9);
    }
  }
  EXPECT_TRUE(events.back().finished);
  EXPECT_TRUE(events.back().succeeded);
  EXPECT_EQ(events.back().done, kN);
}

TEST_P(Checkpointed, ImapLeftMidwayResumesInOrder) {
  auto task = [this](std::size_t i) {
    Count();
    return Value(i);
  };
  {
    Parallel p(Opts());
    std::size_t seen = 0;
    for (long long r : p.imap(kN, task)) {
      ASSERT_EQ(r, Value(seen));
      if (++seen == 1500) break;  // the consumer stops
    }
  }
  Reset();
  Parallel p(Opts());
  std::vector<long long> got;
  for (long long r : p.imap(kN, task)) got.push_back(r);
  EXPECT_EQ(got, Reference());
  EXPECT_GT(p.last_call_resumed(), 0u);
  EXPECT_EQ(shared_->runs.load(), kN - p.last_call_resumed());
}

TEST_P(Checkpointed, ImapUnorderedYieldsWhatWasReadBackFirst) {
  auto task = [this](std::size_t i) {
    Count();
    return Value(i);
  };
  shared_->cancel_after = 1000;
  {
    Parallel p(Opts());
    EXPECT_THROW(
        for (auto& [i, r]
             : p.imap_unordered(kN, task)) { ASSERT_EQ(r, Value(i)); },
        InterruptedError);
  }
  Reset();
  Parallel p(Opts());
  std::vector<int> seen(kN, 0);
  std::size_t yielded = 0;
  std::size_t before_any_run = 0;
  for (auto& [i, r] : p.imap_unordered(kN, task)) {
    ASSERT_EQ(r, Value(i));
    ++seen[i];
    if (shared_->runs.load() == 0) ++before_any_run;
    ++yielded;
  }
  EXPECT_EQ(yielded, kN);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<long>(kN));
  EXPECT_GT(p.last_call_resumed(), 0u);
  EXPECT_EQ(before_any_run, p.last_call_resumed());
  EXPECT_EQ(shared_->runs.load(), kN - p.last_call_resumed());
}

// The caller killed by SIGKILL in the middle of a window (a crash), with a
// torn record after it: the next run keeps every whole window.
TEST_P(Checkpointed, KillNineThenResume) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Options o{.jobs = 1,
              .backend = "sequential",
              .checkpoint = path_,
              .checkpoint_key = "k"};
    Parallel(o).map(kN, [this](std::size_t i) {
      if (shared_->runs.fetch_add(1) + 1 == 1500) raise(SIGKILL);
      return Value(i);
    });
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  // A write cut short by the kill.
  std::ofstream(path_, std::ios::binary | std::ios::app) << std::string(7, 'x');
  Reset();
  auto task = [this](std::size_t i) {
    shared_->runs.fetch_add(1);
    return Value(i);
  };
  Parallel p(Opts());
  EXPECT_EQ(p.map(kN, task), Reference());
  EXPECT_GT(p.last_call_resumed(), 0u);
  EXPECT_LT(p.last_call_resumed(), 1500u);
  EXPECT_EQ(shared_->runs.load(), kN - p.last_call_resumed());
}

INSTANTIATE_TEST_SUITE_P(Backends, Checkpointed,
                         ::testing::Values("thread", "process"));

}  // namespace
}  // namespace fanout
