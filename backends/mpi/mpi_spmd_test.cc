// What only ranks have, checked under mpirun (see BUILD, mpirun_test.sh):
// the world, tasks fewer than ranks, every rank taking part, a failure on
// one rank raised on every rank with the rank that ran it, a cancel on one
// rank, skewed timeouts, and which thread may make calls. The backend's
// contract itself is the shared conformance suite (mpi_conformance_ranks_test).
// Every rank runs every test; each test makes the same parallel calls on
// every rank (SPMD), so checks use EXPECT, never an early return between
// calls. Counts of how often tasks ran are summed over ranks with
// MPI_Allreduce.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends/mpi/mpi.h"
#include "core/parallel.h"
#include "core/pool.h"
#include "core/queue.h"
#include "core/shared.h"
#include "core/testing/types.h"

namespace fanout {
namespace {

using fanout_conformance::BadInput;

const mpi::World& W() { return mpi::world(); }

// How often each task ran on this rank; Total() sums the ranks.
class RunCounts {
 public:
  explicit RunCounts(std::size_t n) : counts_(n) {}
  void Add(std::size_t i) {
    counts_[i].fetch_add(1, std::memory_order_relaxed);
  }
  std::vector<std::uint32_t> Total() const {
    std::vector<std::uint32_t> mine(counts_.size()), all(counts_.size());
    for (std::size_t i = 0; i < counts_.size(); ++i)
      mine[i] = counts_[i].load();
    if (!W().active) return mine;
    MPI_Allreduce(mine.data(), all.data(), static_cast<int>(mine.size()),
                  MPI_UINT32_T, MPI_SUM, W().comm);
    return all;
  }

 private:
  std::vector<std::atomic<std::uint32_t>> counts_;
};

// The same number on every rank?
bool SameOnEveryRank(long long value) {
  if (!W().active) return true;
  long long lo = 0, hi = 0;
  MPI_Allreduce(&value, &lo, 1, MPI_LONG_LONG, MPI_MIN, W().comm);
  MPI_Allreduce(&value, &hi, 1, MPI_LONG_LONG, MPI_MAX, W().comm);
  return lo == hi;
}

TEST(MpiSpmd, RunsUnderMpirunWithTheWorld) {
  EXPECT_TRUE(W().active);
  EXPECT_GE(W().size, 2);
  Parallel p({.jobs = 2, .backend = "mpi"});
  EXPECT_EQ(p.executor().name(), "mpi");
  EXPECT_FALSE(p.executor().shares_memory());
  EXPECT_EQ(p.executor().is_primary(), W().rank == 0);
}

TEST(MpiSpmd, TasksNotDivisibleByRanks) {
  for (std::size_t n : {std::size_t(W().size) + 1,
                        std::size_t(W().size) * 3 - 1, std::size_t(1001)}) {
    for (int jobs : {1, 2, 3}) {
      RunCounts runs(n);
      Parallel p({.jobs = jobs, .backend = "mpi"});
      std::vector<std::size_t> r = p.map(n, [&](std::size_t i) {
        runs.Add(i);
        return i * i;
      });
      EXPECT_EQ(r.size(), n);
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < r.size(); ++i) wrong += r[i] != i * i;
      EXPECT_EQ(wrong, 0u) << "n=" << n << " jobs=" << jobs;
      EXPECT_EQ(runs.Total(), std::vector<std::uint32_t>(n, 1))
          << "n=" << n << " jobs=" << jobs;
    }
  }
}

TEST(MpiSpmd, EveryRankTakesPart) {
  // 64 tasks of 2 ms with chunks of one: no rank is left without work.
  Parallel p({.jobs = 1, .backend = "mpi", .batch_size = 1});
  std::vector<int> who = p.map(64, [](std::size_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return W().rank;
  });
  std::vector<int> seen(W().size, 0);
  for (int r : who) seen.at(r) = 1;
  EXPECT_EQ(seen, std::vector<int>(W().size, 1));
}

TEST(MpiSpmd, ExceptionNamesTaskTypeMessageAndRankOnEveryRank) {
  Parallel p({.jobs = 2, .backend = "mpi"});
  long long index = -1, ran_on = -1, worker_rank = -2;
  try {
    p.map(100, [](std::size_t i) -> int {
      if (i == 37)
        throw BadInput("bad value 37 on " + std::to_string(W().rank));
      return int(i);
    });
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    index = static_cast<long long>(e.index());
    EXPECT_EQ(e.backend(), "mpi");
    EXPECT_EQ(e.type(), "fanout_conformance::BadInput");
    ran_on = std::stoll(e.message().substr(e.message().rfind(' ') + 1));
    EXPECT_EQ(e.message(), "bad value 37 on " + std::to_string(ran_on));
    EXPECT_EQ(e.worker(), "rank " + std::to_string(ran_on));
    worker_rank = std::stoll(e.worker().substr(5));
    EXPECT_EQ(e.signal(), 0);
    const std::string what = e.what();
    EXPECT_NE(what.find("task 37 failed on backend 'mpi' (rank " +
                        std::to_string(ran_on) +
                        "): fanout_conformance::BadInput: bad value 37"),
              std::string::npos)
        << what;
    // The original exception object only exists where it was thrown.
    EXPECT_EQ(e.original() != nullptr, ran_on == W().rank);
  }
  EXPECT_EQ(index, 37);
  EXPECT_EQ(worker_rank, ran_on);
  EXPECT_TRUE(SameOnEveryRank(ran_on));
}

// A SharedValue or Queue changed in a task would change only that rank's
// copy: on several ranks they refuse, on every rank, instead of a silently
// different answer.
TEST(MpiSpmd, SharedValuesAndQueuesRefuseAcrossRanks) {
  SharedValue<long long> sum(0);
  Queue<int> q(16);
  Parallel p({.jobs = 1, .backend = "mpi", .batch_size = 1});
  for (int which = 0; which < 2; ++which) {
    std::string type, message;
    try {
      p.for_each(8, [&](std::size_t i) {
        if (which == 0) {
          sum.fetch_add(static_cast<long long>(i));
        } else {
          q.try_push(static_cast<int>(i));
        }
      });
      ADD_FAILURE() << "expected TaskError";
    } catch (const TaskError& e) {
      type = e.type();
      message = e.message();
    }
    EXPECT_EQ(type, "fanout::UsageError");
    EXPECT_EQ(message.rfind(which == 0 ? "SharedValue/SharedArray used inside "
                                         "a task on the mpi backend with "
                                         "several ranks: ranks share no memory"
                                       : "Queue used inside a task on the mpi "
                                         "backend with several ranks",
                            0),
              0u)
        << message;
  }
  // The caller's own thread may still use them: it is not a task.
  EXPECT_EQ(sum.load(), 0);
}

// A pool's submits must be the same on every rank (issue 20 item 6): ranks
// that submit another function, or more tasks, are refused with one
// UsageError on every rank before any of the generation runs, never a mix of
// results.
std::string PoolError(bool more_on_rank_0) {
  Pool pool({.jobs = 1, .backend = "mpi"});
  std::vector<Future<int>> f;
  if (more_on_rank_0) {
    f.push_back(pool.submit([] { return 1; }));
    if (W().rank == 0) f.push_back(pool.submit([] { return 2; }));
  } else {
    f.push_back(W().rank == 0 ? pool.submit([] { return 1; })
                              : pool.submit([] { return 2; }));
  }
  try {
    for (Future<int>& x : f) x.get();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(MpiSpmd, PoolRanksThatSubmitDifferentTasksAreRefusedOnEveryRank) {
  if (W().size < 2) GTEST_SKIP() << "needs 2 ranks or more";
  for (bool more : {false, true}) {
    const std::string error = PoolError(more);
    EXPECT_NE(error.find("the ranks submitted different tasks to a pool"),
              std::string::npos)
        << "rank " << W().rank << ": " << error;
    EXPECT_TRUE(
        SameOnEveryRank(static_cast<long long>(error.find("(no error)"))));
  }
  // The ranks agree again afterwards: a new pool works.
  Pool pool({.jobs = 1, .backend = "mpi"});
  EXPECT_EQ(pool.submit([] { return 7; }).get(), 7);
}

TEST(MpiSpmd, ErrorOnOneRankRaisesOnEveryRank) {
  // Only the last rank fails its tasks; every rank must throw the same error.
  const int last = W().size - 1;
  Parallel p({.jobs = 1, .backend = "mpi", .batch_size = 1});
  long long index = -1;
  std::string worker, message;
  try {
    p.for_each(200, [last](std::size_t i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (W().rank == last) throw std::runtime_error("rank-only failure");
    });
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    index = static_cast<long long>(e.index());
    worker = e.worker();
    message = e.message();
    EXPECT_EQ(e.type(), "std::runtime_error");
  }
  EXPECT_EQ(worker, "rank " + std::to_string(last));
  EXPECT_EQ(message, "rank-only failure");
  EXPECT_GE(index, 0);
  EXPECT_TRUE(SameOnEveryRank(index));
}

TEST(MpiSpmd, TimeoutIsATimeoutOnEveryRankWhenStartsAreSkewed) {
  // Rank 0 starts 150 ms early, so its deadline ends the call for all; the
  // others must still report a timeout, not a plain cancellation.
  if (W().rank != 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  Parallel p({.jobs = 1,
              .backend = "mpi",
              .batch_size = 1,
              .timeout = std::chrono::milliseconds(200)});
  EXPECT_THROW(
      p.for_each(1000,
                 [](std::size_t) {
                   std::this_thread::sleep_for(std::chrono::milliseconds(20));
                 }),
      TimeoutError);
}

TEST(MpiSpmd, CancelOnOneRankStopsEveryRank) {
  // Only the last rank's caller raises its cancel flag: every rank stops
  // and throws InterruptedError, long before every task ran.
  const int last = W().size - 1;
  std::atomic<bool> cancel{false};
  Parallel p({.jobs = 2, .backend = "mpi", .batch_size = 1, .cancel = &cancel});
  std::thread canceller([&cancel, last] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (W().rank == last) cancel.store(true);
  });
  const auto start = std::chrono::steady_clock::now();
  RunCounts runs(2000);
  bool interrupted = false;
  try {
    p.for_each(2000, [&](std::size_t i) {
      runs.Add(i);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    });
  } catch (const InterruptedError&) {
    interrupted = true;
  }
  canceller.join();
  EXPECT_TRUE(interrupted);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  std::size_t ran = 0;
  for (std::uint32_t c : runs.Total()) ran += c;
  EXPECT_LT(ran, 1000u);
}

TEST(MpiSpmd, CallsFromOtherThreadsAreRefusedOnEveryRank) {
  // Four threads call at once. Their calls would pair up differently on
  // each rank (and mix results): every one is refused on every rank, before
  // anything ran, naming the rule. The main thread's calls then still pair
  // up (the refused calls took no number).
  constexpr int kThreads = 4;
  std::atomic<int> ready{0}, ran{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Parallel p({.jobs = 2, .backend = "mpi"});
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      try {
        p.for_each(100, [&](std::size_t) { ran.fetch_add(1); });
        errors[t] = "no error";
      } catch (const UsageError& e) {
        errors[t] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_NE(errors[t].find("is not the program's main thread; under mpirun "
                             "every call on the mpi backend must come from "
                             "the program's main thread"),
              std::string::npos)
        << errors[t];
    EXPECT_NE(errors[t].find("Nothing ran."), std::string::npos) << errors[t];
  }
  EXPECT_EQ(ran.load(), 0);
  Parallel p({.jobs = 2, .backend = "mpi"});
  std::vector<int> r = p.map(50, [](std::size_t i) { return int(i) * 2; });
  std::vector<int> expected;
  for (int i = 0; i < 50; ++i) expected.push_back(i * 2);
  EXPECT_EQ(r, expected);
}

TEST(MpiSpmd, NestedCallsFromTaskThreadsRunInline) {
  // A task's thread is not the main thread, but a call from inside a task
  // runs inline on that thread and is not refused.
  Parallel p({.jobs = 2, .backend = "mpi", .batch_size = 1});
  std::vector<int> r = p.map(6, [](std::size_t i) {
    Parallel inner({.jobs = 2, .backend = "mpi"});
    std::vector<int> v =
        inner.map(4, [i](std::size_t j) { return int(i + j); });
    return v[0] + v[1] + v[2] + v[3];
  });
  std::vector<int> expected;
  for (int i = 0; i < 6; ++i) expected.push_back(4 * i + 6);
  EXPECT_EQ(r, expected);
}

}  // namespace
}  // namespace fanout
