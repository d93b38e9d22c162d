// The backend contract checked across ranks: run under mpirun (see BUILD,
// mpirun_test.sh). Every rank runs every test; each test makes the same
// parallel calls on every rank (SPMD), so checks use EXPECT, never an early
// return between calls. Counts of how often tasks ran are summed over ranks
// with MPI_Allreduce. main() exits non-zero on every rank when any rank
// failed a test.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <list>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends/mpi/mpi.h"
#include "core/parallel.h"
#include "core/testing/types.h"

namespace fanout {
namespace {

using fanout_conformance::BadInput;
using fanout_conformance::Point;

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

std::uint64_t Uneven(std::size_t i) {
  std::uint64_t h = i;
  for (std::size_t k = 0; k < (i % 7) * 500; ++k)
    h = h * 6364136223846793005u + 1;
  return h;
}

TEST(MpiSpmd, RunsUnderMpirunWithTheWorld) {
  EXPECT_TRUE(W().active);
  EXPECT_GE(W().size, 2);
  Parallel p({.jobs = 2, .backend = "mpi"});
  EXPECT_EQ(p.executor().name(), "mpi");
  EXPECT_FALSE(p.executor().shares_memory());
  EXPECT_EQ(p.executor().is_primary(), W().rank == 0);
}

TEST(MpiSpmd, ResultsInTaskOrderEqualSequential) {
  const std::vector<std::uint64_t> expected =
      Parallel({.backend = "sequential"}).map(5000, Uneven);
  for (std::size_t batch : {0, 1, 7, 5000}) {
    Parallel p({.jobs = -1, .backend = "mpi", .batch_size = batch});
    EXPECT_EQ(p.map(5000, Uneven), expected) << "batch " << batch;
  }
}

TEST(MpiSpmd, EmptyJob) {
  Parallel p({.jobs = 2, .backend = "mpi"});
  EXPECT_TRUE(p.map(0, [](std::size_t) { return 1; }).empty());
  p.for_each(0, [](std::size_t) { throw std::logic_error("never runs"); });
}

TEST(MpiSpmd, OneTask) {
  RunCounts runs(1);
  Parallel p({.jobs = 2, .backend = "mpi"});
  std::vector<long> r = p.map(1, [&](std::size_t i) {
    runs.Add(i);
    return long(i) + 41;
  });
  EXPECT_EQ(r, std::vector<long>{41});
  EXPECT_EQ(runs.Total(), std::vector<std::uint32_t>{1});
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

TEST(MpiSpmd, ManyTinyTasksEachRunExactlyOnce) {
  constexpr std::size_t kN = 200'000;
  RunCounts runs(kN);
  Parallel p({.jobs = -1, .backend = "mpi"});
  std::vector<std::uint64_t> r = p.map(kN, [&](std::size_t i) {
    runs.Add(i);
    return std::uint64_t(i) * 3 + 1;
  });
  EXPECT_EQ(r.size(), kN);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < r.size(); ++i)
    wrong += r[i] != std::uint64_t(i) * 3 + 1;
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(runs.Total(), std::vector<std::uint32_t>(kN, 1));
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

TEST(MpiSpmd, ForEachRunsEveryTaskOnce) {
  RunCounts runs(1000);
  Parallel({.jobs = -1, .backend = "mpi"}).for_each(1000, [&](std::size_t i) {
    runs.Add(i);
  });
  EXPECT_EQ(runs.Total(), std::vector<std::uint32_t>(1000, 1));
}

TEST(MpiSpmd, MapOverContainersAndDelayed) {
  Parallel p({.jobs = -1, .backend = "mpi"});
  std::vector<int> v{38, 7, 1, 20};
  EXPECT_EQ(p.map(v, [](int x) { return x * 2; }),
            (std::vector<int>{76, 14, 2, 40}));
  std::list<std::string> words{"a", "bb", "ccc"};
  EXPECT_EQ(p.map(words, [](const std::string& w) { return w.size(); }),
            (std::vector<std::size_t>{1, 2, 3}));
  auto process = [](long long n, long long scale) { return n * scale; };
  std::vector<Task<long long>> tasks;
  for (int i = 0; i < 100; ++i) tasks.push_back(delayed(process)(i, 3));
  std::vector<long long> r = p(tasks);
  std::vector<long long> expected;
  for (int i = 0; i < 100; ++i) expected.push_back(i * 3LL);
  EXPECT_EQ(r, expected);
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

TEST(MpiSpmd, NonStdExceptionIsNamed) {
  Parallel p({.jobs = 2, .backend = "mpi"});
  long long index = -1;
  std::string type;
  try {
    p.for_each(10, [](std::size_t i) {
      if (i == 4) throw 42;
    });
  } catch (const TaskError& e) {
    index = static_cast<long long>(e.index());
    type = e.type();
  }
  EXPECT_EQ(index, 4);
  EXPECT_EQ(type, "int");
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

TEST(MpiSpmd, FailFastStopsEarlyOnEveryRank) {
  constexpr std::size_t kN = 2000;
  RunCounts runs(kN);
  Parallel p({.jobs = 2, .backend = "mpi", .batch_size = 1});
  bool threw = false;
  try {
    p.for_each(kN, [&](std::size_t i) {
      runs.Add(i);
      if (i == 0) throw std::runtime_error("first");
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    });
  } catch (const TaskError& e) {
    threw = true;
    EXPECT_EQ(e.index(), 0u);
  }
  EXPECT_TRUE(threw);
  std::size_t ran = 0;
  for (std::uint32_t c : runs.Total()) ran += c;
  EXPECT_LT(ran, kN / 2);
}

TEST(MpiSpmd, CollectAllReturnsEveryOutcome) {
  constexpr std::size_t kN = 500;
  RunCounts runs(kN);
  Parallel p({.jobs = -1, .backend = "mpi"});
  auto outcomes = p.try_map(kN, [&](std::size_t i) -> std::string {
    runs.Add(i);
    if (i % 10 == 3) throw std::out_of_range("task " + std::to_string(i));
    return std::to_string(i);
  });
  EXPECT_EQ(runs.Total(), std::vector<std::uint32_t>(kN, 1));
  ASSERT_EQ(outcomes.size(), kN);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kN; ++i) {
    if (i % 10 == 3) {
      wrong += outcomes[i].ok() || outcomes[i].error().index() != i ||
               outcomes[i].error().type() != "std::out_of_range" ||
               outcomes[i].error().message() != "task " + std::to_string(i) ||
               outcomes[i].error().worker().rfind("rank ", 0) != 0;
    } else {
      wrong += !outcomes[i].ok() || outcomes[i].value() != std::to_string(i);
    }
  }
  EXPECT_EQ(wrong, 0u);
}

TEST(MpiSpmd, CollectAllPolicyThrowsLowestWithCount) {
  RunCounts runs(300);
  Parallel p(
      {.jobs = -1, .backend = "mpi", .errors = ErrorPolicy::kCollectAll});
  long long index = -1;
  std::size_t failed = 0;
  try {
    p.map(300, [&](std::size_t i) {
      runs.Add(i);
      if (i % 100 == 50) throw std::runtime_error("x");
      return i;
    });
  } catch (const TaskError& e) {
    index = static_cast<long long>(e.index());
    failed = e.failed_tasks();
    EXPECT_NE(std::string(e.what()).find("(and 2 other tasks failed)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(index, 50);
  EXPECT_EQ(failed, 3u);
  EXPECT_EQ(runs.Total(), std::vector<std::uint32_t>(300, 1));
}

TEST(MpiSpmd, NonTrivialResultTypes) {
  Parallel p({.jobs = -1, .backend = "mpi", .batch_size = 3});
  std::vector<std::string> expected_s;
  for (std::size_t i = 0; i < 200; ++i) {
    expected_s.push_back(std::string(i % 50, char('a' + i % 26)));
  }
  EXPECT_EQ(p.map(200,
                  [](std::size_t i) {
                    return std::string(i % 50, char('a' + i % 26));
                  }),
            expected_s);
  std::vector<std::vector<int>> expected_v;
  for (std::size_t i = 0; i < 100; ++i) expected_v.emplace_back(i, int(i));
  EXPECT_EQ(
      p.map(100, [](std::size_t i) { return std::vector<int>(i, int(i)); }),
      expected_v);
  std::vector<Point> expected_p;
  for (std::size_t i = 0; i < 50; ++i) {
    expected_p.push_back(
        Point{"p" + std::to_string(i), {double(i), -double(i)}});
  }
  EXPECT_EQ(
      p.map(50,
            [](std::size_t i) {
              return Point{"p" + std::to_string(i), {double(i), -double(i)}};
            }),
      expected_p);
  std::vector<bool> b = p.map(1000, [](std::size_t i) { return i % 3 == 0; });
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < 1000; ++i) wrong += b[i] != (i % 3 == 0);
  EXPECT_EQ(wrong, 0u);
}

TEST(MpiSpmd, NestedCallsRunInline) {
  Parallel outer({.jobs = -1, .backend = "mpi"});
  std::vector<int> r = outer.map(8, [&](std::size_t i) {
    Parallel inner({.jobs = -1, .backend = "mpi"});
    std::vector<int> v =
        inner.map(10, [&](std::size_t j) { return int(i * 10 + j); });
    int s = 0;
    for (int x : v) s += x;
    return s;
  });
  std::vector<int> expected;
  for (int i = 0; i < 8; ++i) expected.push_back(100 * i + 45);
  EXPECT_EQ(r, expected);
}

TEST(MpiSpmd, TimeoutStopsTheCallOnEveryRank) {
  Parallel p(
      {.jobs = 2, .backend = "mpi", .timeout = std::chrono::milliseconds(200)});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(
      p.for_each(1000,
                 [](std::size_t) {
                   std::this_thread::sleep_for(std::chrono::milliseconds(20));
                 }),
      TimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
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

TEST(MpiSpmd, ProgressReachesTotalOnEveryRank) {
  std::vector<ProgressEvent> events;
  Parallel p(
      {.jobs = 2, .backend = "mpi", .on_progress = [&](const ProgressEvent& e) {
         events.push_back(e);
       }});
  p.for_each(50, [](std::size_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(4));
  });
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().finished);
  EXPECT_EQ(events.back().done, 50u);
  EXPECT_EQ(events.back().total, 50u);
  for (std::size_t k = 1; k < events.size(); ++k) {
    EXPECT_LE(events[k - 1].done, events[k].done);
  }
}

// Prints only failures, prefixed with the rank, on ranks other than 0.
// (gtest holds its lock while reporting a result: the test's name is kept
// from OnTestStart, not asked for.)
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& t) override {
    test_ = std::string(t.test_suite_name()) + "." + t.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s failed at %s:%d\n%s\n", W().rank,
                 test_.c_str(), r.file_name() ? r.file_name() : "?",
                 r.line_number(), r.summary());
  }

 private:
  std::string test_;
};

}  // namespace
}  // namespace fanout

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const fanout::mpi::World& w = fanout::mpi::world();
  if (w.rank != 0) {
    ::testing::TestEventListeners& listeners =
        ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new fanout::RankFailurePrinter);
  }
  const int mine = RUN_ALL_TESTS() != 0 ? 1 : 0;
  if (!w.active) return mine;
  std::vector<int> all(w.size);
  MPI_Allgather(&mine, 1, MPI_INT, all.data(), 1, MPI_INT, w.comm);
  std::string failed;
  for (int r = 0; r < w.size; ++r) {
    if (all[r] != 0) failed += " " + std::to_string(r);
  }
  if (failed.empty()) return 0;
  if (w.rank == 0)
    std::fprintf(stderr, "tests failed on rank(s):%s\n", failed.c_str());
  return 1;
}
