// Front-end behaviour that does not depend on a backend (the conformance
// suite covers the rest, for every backend).
#include "core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <concepts>
#include <cstdint>
#include <random>
#include <string>

#include "core/random.h"

namespace {

TEST(Parallel, UnknownBackendIsAUsageError) {
  EXPECT_THROW(fanout::Parallel({.backend = "gpu"}), fanout::UsageError);
}

TEST(Parallel, OriginalExceptionIsKept) {
  fanout::Parallel p({.backend = "sequential"});
  try {
    p.map(3, [](std::size_t i) -> int {
      if (i == 2) throw std::invalid_argument("two");
      return 0;
    });
    FAIL();
  } catch (const fanout::TaskError& e) {
    ASSERT_TRUE(e.original());
    EXPECT_THROW(std::rethrow_exception(e.original()), std::invalid_argument);
    EXPECT_EQ(e.worker(), "main thread");
  }
}

TEST(Parallel, UserCancelFlagStopsTheCall) {
  std::atomic<bool> cancel{false};
  fanout::Parallel p(
      {.backend = "sequential", .batch_size = 1, .cancel = &cancel});
  std::size_t ran = 0;
  EXPECT_THROW(
      p.for_each(100000,
                 [&](std::size_t i) {
                   ++ran;
                   if (i == 10) cancel = true;
                   std::this_thread::sleep_for(std::chrono::microseconds(100));
                 }),
      fanout::InterruptedError);
  EXPECT_LT(ran, 100000u);
}

TEST(Parallel, MoveOnlyAndNonDefaultConstructibleResults) {
  struct NoDefault {
    explicit NoDefault(int v) : v(v) {}
    int v;
  };
  fanout::Parallel p({.backend = "sequential"});
  auto r = p.map(5, [](std::size_t i) { return NoDefault(int(i)); });
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r[i].v, i);
  auto u =
      p.map(3, [](std::size_t i) { return std::make_unique<int>(int(i)); });
  EXPECT_EQ(*u[2], 2);
}

}  // namespace

// A plain struct with no serialize(): fine where tasks share memory.
struct PlainResult {
  std::string name;
  std::vector<int> values;
};

TEST(Parallel, PlainStructResultsNeedNoSerializeInProcess) {
  fanout::Parallel p({.backend = "sequential"});
  std::vector<PlainResult> r = p.map(4, [](std::size_t i) {
    return PlainResult{"r" + std::to_string(i), std::vector<int>(i, 7)};
  });
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[3].name, "r3");
  EXPECT_EQ(r[3].values, std::vector<int>(3, 7));
}

TEST(Parallel, LastProgressEventOfAFailedCall) {
  std::vector<fanout::ProgressEvent> events;
  fanout::Parallel p({.backend = "sequential",
                      .batch_size = 1,
                      .on_progress = [&](const fanout::ProgressEvent& e) {
                        events.push_back(e);
                      }});
  EXPECT_THROW(p.for_each(100,
                          [](std::size_t i) {
                            if (i == 10) throw std::runtime_error("boom");
                          }),
               fanout::TaskError);
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().finished);
  EXPECT_FALSE(events.back().succeeded);
  EXPECT_EQ(events.back().done, 11u);  // tasks 0..10 ran; 10 failed
  EXPECT_EQ(events.back().total, 100u);
}

TEST(Parallel, LastProgressEventOfACancelledCall) {
  std::atomic<bool> cancel{false};
  std::vector<fanout::ProgressEvent> events;
  fanout::Parallel p(
      {.backend = "sequential",
       .batch_size = 1,
       .on_progress =
           [&](const fanout::ProgressEvent& e) { events.push_back(e); },
       .cancel = &cancel});
  EXPECT_THROW(
      p.for_each(100000,
                 [&](std::size_t i) {
                   if (i == 10) cancel = true;
                   std::this_thread::sleep_for(std::chrono::microseconds(100));
                 }),
      fanout::InterruptedError);
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().finished);
  EXPECT_FALSE(events.back().succeeded);
  EXPECT_LT(events.back().done, 100000u);
}

TEST(Parallel, SucceededCallEndsWithASucceededEvent) {
  std::vector<fanout::ProgressEvent> events;
  fanout::Parallel p({.backend = "sequential",
                      .on_progress = [&](const fanout::ProgressEvent& e) {
                        events.push_back(e);
                      }});
  p.for_each(10, [](std::size_t) {});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events.back().finished);
  EXPECT_TRUE(events.back().succeeded);
  EXPECT_EQ(events.back().done, 10u);
}

TEST(TaskRng, SameStreamForTheSameSeedAndIndexOnly) {
  fanout::TaskRng a = fanout::task_rng(7, 42);
  fanout::TaskRng b = fanout::task_rng(7, 42);
  fanout::TaskRng other_index = fanout::task_rng(7, 43);
  fanout::TaskRng other_seed = fanout::task_rng(8, 42);
  int same_as_other = 0;
  for (int k = 0; k < 1000; ++k) {
    const std::uint64_t x = a();
    EXPECT_EQ(x, b());
    same_as_other += x == other_index();
    same_as_other += x == other_seed();
  }
  EXPECT_EQ(same_as_other, 0);
  // Uniform enough for Monte Carlo: the mean of 2^-64-scaled draws.
  fanout::TaskRng r = fanout::task_rng(1, 0);
  double sum = 0;
  for (int k = 0; k < 100000; ++k)
    sum += static_cast<double>(r()) / 1.8446744073709552e19;
  EXPECT_NEAR(sum / 100000, 0.5, 0.005);
  static_assert(std::uniform_random_bit_generator<fanout::TaskRng>);
}

TEST(TaskRng, AMapGivesTheSameAnswerWhateverTheJobs) {
  auto draw = [](std::size_t i) { return fanout::task_rng(3, i)() % 1000; };
  const auto reference =
      fanout::Parallel({.backend = "sequential"}).map(500, draw);
  for (std::size_t i = 0; i < 500; ++i) {
    EXPECT_EQ(reference[i], fanout::task_rng(3, i)() % 1000);
  }
}
