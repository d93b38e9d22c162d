// One CPU budget for process workers: each worker starts with its share of
// the usable CPUs in the thread-count variables of the native runtimes,
// unless the caller set them; nothing changes in the caller, on in-process
// backends or for a call that runs inline.
#include "backends/process/cpu_budget.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/executor.h"
#include "core/parallel.h"

namespace fanout {
namespace {

using process_internal::kThreadVariables;

// The variable's value in the calling process, or "(unset)".
std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "(unset)";
}

// Every variable unset in this process, for each test.
class CpuBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kThreadVariables) unsetenv(name);
  }
  void TearDown() override { SetUp(); }

  // Each variable as `jobs` process workers see it, one row per task.
  static std::vector<std::vector<std::string>> SeenByWorkers(
      int jobs, const std::string& backend = "process") {
    Parallel p({.jobs = jobs, .backend = backend, .batch_size = 1});
    return p.map(8, [](std::size_t) {
      std::vector<std::string> row;
      for (const char* name : kThreadVariables) row.push_back(Env(name));
      return row;
    });
  }

  static std::string Share(int jobs) {
    return std::to_string(std::max(1, usable_cpus() / jobs));
  }
};

TEST_F(CpuBudgetTest, WorkersGetTheirShareOfTheUsableCpus) {
  // On a 2-CPU machine: "1" for each of 2 workers.
  for (int jobs : {2, 3}) {
    const std::vector<std::string> want(std::size(kThreadVariables),
                                        Share(jobs));
    for (const auto& row : SeenByWorkers(jobs)) EXPECT_EQ(row, want) << jobs;
  }
  if (usable_cpus() == 2) {
    EXPECT_EQ(SeenByWorkers(2)[0][0], "1");
  }
  // The caller's own environment is untouched.
  for (const char* name : kThreadVariables) EXPECT_EQ(Env(name), "(unset)");
}

TEST_F(CpuBudgetTest, WhatTheUserSetIsKept) {
  setenv("OMP_NUM_THREADS", "7", 1);
  setenv("NUMEXPR_NUM_THREADS", "", 1);  // set, if empty: the user's choice
  std::vector<std::string> want(std::size(kThreadVariables), Share(2));
  want[0] = "7";
  want[5] = "";
  for (const auto& row : SeenByWorkers(2)) EXPECT_EQ(row, want);
  for (const char* name : kThreadVariables) setenv(name, "5", 1);
  const std::vector<std::string> fives(std::size(kThreadVariables), "5");
  for (const auto& row : SeenByWorkers(2)) EXPECT_EQ(row, fives);
}

TEST_F(CpuBudgetTest, TheRestOfTheEnvironmentIsTheCallers) {
  setenv("FANOUT_CPU_BUDGET_TEST", "caller's", 1);
  Parallel p({.jobs = 2, .backend = "process", .batch_size = 1});
  const std::vector<std::string> seen = p.map(4, [](std::size_t i) {
    // A task may still change its environment as usual.
    const std::string mine = "task " + std::to_string(i);
    setenv("FANOUT_CPU_BUDGET_TASK", mine.c_str(), 1);
    return Env("FANOUT_CPU_BUDGET_TEST") + "|" + Env("OMP_NUM_THREADS") + "|" +
           Env("FANOUT_CPU_BUDGET_TASK");
  });
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i], "caller's|" + Share(2) + "|task " + std::to_string(i));
  }
  EXPECT_EQ(Env("FANOUT_CPU_BUDGET_TASK"), "(unset)");
  unsetenv("FANOUT_CPU_BUDGET_TEST");
}

TEST_F(CpuBudgetTest, NoBudgetWhereNothingIsForked) {
  const std::vector<std::string> unset(std::size(kThreadVariables), "(unset)");
  // jobs = 1 runs inline in the caller; thread workers are the caller.
  for (const auto& row : SeenByWorkers(1)) EXPECT_EQ(row, unset);
  for (const auto& row : SeenByWorkers(2, "thread")) EXPECT_EQ(row, unset);
}

// A fanout call inside a process task runs inline on its worker: it forks
// no workers of its own, so it cannot multiply them past the budget.
TEST_F(CpuBudgetTest, ACallInsideAProcessTaskRunsInline) {
  const pid_t caller = getpid();
  Parallel outer({.jobs = 2, .backend = "process", .batch_size = 1});
  const std::vector<int> ok = outer.map(4, [caller](std::size_t) {
    if (!in_task() || getpid() == caller) return 0;
    Parallel inner({.jobs = 2, .backend = "process"});
    const std::vector<pid_t> pids =
        inner.map(16, [](std::size_t) { return getpid(); });
    const bool inline_here = std::all_of(pids.begin(), pids.end(),
                                         [](pid_t p) { return p == getpid(); });
    return inline_here ? 1 : 2;
  });
  EXPECT_EQ(ok, std::vector<int>(4, 1));
}

// The threads a thread-backend call made in a task of `outer_jobs` process
// workers runs on (each task: 200 tasks of 1 ms, counting distinct threads).
std::vector<int> NestedThreadsInWorkers(int outer_jobs) {
  // task_timeout: a call of jobs = 1 forks a worker too (it runs inline
  // otherwise).
  Parallel outer({.jobs = outer_jobs,
                  .backend = "process",
                  .batch_size = 1,
                  .task_timeout = std::chrono::seconds(60)});
  return outer.map(static_cast<std::size_t>(outer_jobs), [](std::size_t) {
    std::mutex mu;
    std::set<std::thread::id> threads;
    Parallel inner({.jobs = -1, .backend = "thread", .batch_size = 1});
    const std::vector<int> ran = inner.map(200, [&](std::size_t) {
      {
        std::lock_guard<std::mutex> lock(mu);
        threads.insert(std::this_thread::get_id());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return 1;
    });
    if (std::count(ran.begin(), ran.end(), 1) != 200) return -1;
    return static_cast<int>(threads.size());
  });
}

// Issue 20 item 5: a thread-backend call inside a process worker runs on
// the worker's share of the CPUs: all of them for one worker, one thread
// each (inline) where the workers take every CPU.
TEST_F(CpuBudgetTest, ANestedThreadCallUsesTheWorkersShareOfTheCpus) {
  const int cpus = usable_cpus();
  EXPECT_EQ(NestedThreadsInWorkers(1), std::vector<int>{cpus});
  EXPECT_EQ(NestedThreadsInWorkers(cpus), std::vector<int>(cpus, 1));
}

}  // namespace
}  // namespace fanout
