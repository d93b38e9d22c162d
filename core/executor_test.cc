#include "core/executor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/internal/scheduler.h"
#include "core/parallel.h"

namespace {

TEST(Registry, UnknownBackendListsValidNames) {
  try {
    fanout::make_executor("thred");
    FAIL() << "expected UsageError";
  } catch (const fanout::UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "unknown backend 'thred'; valid backends: sequential");
  }
}

TEST(Registry, AFanoutBackendNotLinkedSaysWhichTargetToAdd) {
  try {
    fanout::make_executor("process");
    FAIL() << "expected UsageError";
  } catch (const fanout::UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "backend 'process' is not linked into this program: add "
              "\"@fanout//backends/process\" to the deps of its cc_binary (or "
              "\"@fanout//backends:all\" for every backend); linked backends: "
              "sequential");
  }
}

TEST(Scheduler, ClaimsNeverWrapWhateverTheBatch) {
  const std::size_t max = std::numeric_limits<std::size_t>::max();
  for (std::size_t batch :
       {max, max / 2 + 1, std::size_t{1} << 62, std::size_t{101},
        std::size_t{100}, std::size_t{7}, std::size_t{1}}) {
    fanout::internal::CallControl control;
    control.Reset(100, batch);
    std::vector<int> claimed(100, 0);
    std::size_t begin = 0, end = 0;
    // More claims than chunks, as workers racing past the end make.
    int chunks = 0;
    for (int k = 0; k < 300; ++k) {
      if (!control.Claim(&begin, &end)) continue;
      ++chunks;
      ASSERT_LT(begin, end);
      ASSERT_LE(end, 100u);
      for (std::size_t i = begin; i < end; ++i) ++claimed[i];
    }
    EXPECT_EQ(claimed, std::vector<int>(100, 1)) << "batch " << batch;
    EXPECT_EQ(chunks, static_cast<int>(control.chunks)) << "batch " << batch;
  }
}

// batch_size = 0: chunk sizes follow the reported times (4x a step at
// most, about CallControl::kAutoChunkNanos of work each), shrink near the
// end to the rest over twice the workers, and cover every task once.
TEST(Scheduler, AutoSizedClaimsFollowReportedTimeAndCoverEachTaskOnce) {
  using fanout::internal::CallControl;
  constexpr std::size_t kN = 100000;
  fanout::RunOptions o;
  o.batch_size = fanout::resolve_batch_size(kN, 2, 0);
  o.batch_auto = true;
  CallControl control;
  control.Reset(kN, o, 2);
  std::vector<int> claimed(kN, 0);
  std::vector<std::size_t> sizes;
  std::size_t begin = 0, end = 0;
  while (control.Claim(&begin, &end)) {
    ASSERT_LT(begin, end);
    ASSERT_LE(end, kN);
    for (std::size_t i = begin; i < end; ++i) ++claimed[i];
    sizes.push_back(end - begin);
    // Tasks of 100 ns up to task 50000, then of 100 µs.
    const std::uint64_t per = begin < 50000 ? 100 : 100000;
    control.Report(end - begin, per * (end - begin));
  }
  EXPECT_EQ(claimed, std::vector<int>(kN, 1));
  EXPECT_FALSE(control.Unclaimed());
  EXPECT_EQ(control.RemainingChunks(), 0u);
  // One task first, then 4x a step up to 200 µs / 100 ns = 2000 tasks.
  ASSERT_GE(sizes.size(), 8u);
  EXPECT_EQ((std::vector<std::size_t>(sizes.begin(), sizes.begin() + 7)),
            (std::vector<std::size_t>{1, 4, 16, 64, 256, 1024, 2000}));
  // Long tasks: shrunk 4x a step to 2 a chunk (200 µs / 100 µs); the last
  // chunks are single tasks.
  const auto long_start =
      std::find(sizes.begin() + 7, sizes.end(), std::size_t{500});
  ASSERT_NE(long_start, sizes.end());
  EXPECT_EQ((std::vector<std::size_t>(long_start, long_start + 5)),
            (std::vector<std::size_t>{500, 125, 31, 7, 2}));
  EXPECT_EQ(sizes.back(), 1u);
  EXPECT_EQ(*std::max_element(sizes.begin(), sizes.end()), 2000u);

  // Near the end a chunk is at most the rest over twice the workers.
  control.Reset(1000, o, 4);
  control.Report(1, 0);  // instant tasks: grows 4x
  for (int k = 0; k < 10; ++k) control.Report(1, 0);
  ASSERT_TRUE(control.Claim(&begin, &end));
  EXPECT_EQ(begin, 0u);
  EXPECT_EQ(end, 125u);  // 1000 / (2 x 4)
}

// Threads racing on auto-sized claims with reports in between: each task
// handed out exactly once.
TEST(Scheduler, AutoSizedClaimsFromManyThreadsCoverEachTaskOnce) {
  using fanout::internal::CallControl;
  constexpr std::size_t kN = 200000;
  fanout::RunOptions o;
  o.batch_auto = true;
  CallControl control;
  control.Reset(kN, o, 4);
  std::vector<std::atomic<int>> claimed(kN);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::size_t begin = 0, end = 0;
      std::uint64_t k = 0;
      while (control.Claim(&begin, &end)) {
        for (std::size_t i = begin; i < end; ++i) claimed[i].fetch_add(1);
        control.Report(end - begin, (++k * (t + 1) % 7) * (end - begin) * 50);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::size_t not_once = 0;
  for (std::size_t i = 0; i < kN; ++i) not_once += claimed[i].load() != 1;
  EXPECT_EQ(not_once, 0u);
}

TEST(Scheduler, BatchSizeIsClampedToTheJob) {
  EXPECT_EQ(fanout::resolve_batch_size(100, 2, 0),
            fanout::auto_batch_size(100, 2));
  EXPECT_EQ(fanout::resolve_batch_size(100, 2, 7), 7u);
  EXPECT_EQ(fanout::resolve_batch_size(100, 2,
                                       std::numeric_limits<std::size_t>::max()),
            100u);
  EXPECT_EQ(fanout::resolve_batch_size(0, 2, 5), 1u);
}

TEST(Registry, NamesAndDescriptions) {
  EXPECT_EQ(fanout::backend_names(), std::vector<std::string>{"sequential"});
  EXPECT_NE(fanout::backend_description("sequential"), "");
  EXPECT_EQ(fanout::backend_description("nope"), "");
}

TEST(Jobs, JoblibRule) {
  const int cpus = fanout::usable_cpus();
  EXPECT_GE(cpus, 1);
  EXPECT_EQ(fanout::resolve_jobs(-1), cpus);
  EXPECT_EQ(fanout::resolve_jobs(-2), std::max(cpus - 1, 1));
  EXPECT_EQ(fanout::resolve_jobs(-1000), 1);
  EXPECT_EQ(fanout::resolve_jobs(1), 1);
  EXPECT_EQ(fanout::resolve_jobs(64), 64);
  EXPECT_THROW(fanout::resolve_jobs(0), fanout::UsageError);
}

TEST(Jobs, UsableCpusFollowsAffinity) {
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  EXPECT_LE(fanout::usable_cpus(), CPU_COUNT(&set));
}

TEST(Batch, AutoSize) {
  EXPECT_EQ(fanout::auto_batch_size(6, 2), 1u);
  EXPECT_EQ(fanout::auto_batch_size(10000, 2), 156u);
  EXPECT_EQ(fanout::auto_batch_size(1000000, 2), 2048u);
  EXPECT_EQ(fanout::auto_batch_size(0, 2), 1u);
}

TEST(TaskError, Message) {
  fanout::TaskError e({.index = 17,
                       .backend = "process",
                       .worker = "pid 42",
                       .type = "",
                       .message = "killed by SIGSEGV",
                       .signal = 11});
  EXPECT_EQ(std::string(e.what()),
            "task 17 failed on backend 'process' (pid 42): killed by SIGSEGV");
  EXPECT_EQ(std::string(e.with_failed_tasks(3).what()),
            "task 17 failed on backend 'process' (pid 42): killed by SIGSEGV "
            "(and 2 other tasks failed)");
  EXPECT_EQ(e.with_failed_tasks(3).signal(), 11);
}

}  // namespace

// Result adoption (Job::construct_results): a backend that fills trivial
// results from its own buffer gets reserved, unconstructed slots.
namespace adopt {

// Runs every task in the caller into its own buffer, then adopts the
// results in slices of 3 (or, with `forget`, adopts nothing).
class BufferExecutor final : public fanout::Executor {
 public:
  explicit BufferExecutor(bool forget) : forget_(forget) {}
  std::string_view name() const override { return "buffer"; }
  int jobs() const override { return 2; }
  fanout::Capabilities capabilities() const override {
    return {.shares_memory = false, .adopts_results = true};
  }
  int parallel_runs = 0;
  bool saw_reserved = false;

 protected:
  fanout::RunReport RunParallel(const fanout::Job& job,
                                const fanout::RunOptions&) override {
    ++parallel_runs;
    saw_reserved = job.adopt_results != nullptr;
    if (!saw_reserved || forget_) return {};
    const std::size_t size = job.trivial_result_size;
    std::vector<unsigned char> buffer(job.n * size);
    for (std::size_t i = 0; i < job.n; ++i) {
      // Each task runs into the reserved slot, and the result is moved to
      // this backend's buffer (as a process worker's lands in shared pages).
      fanout::TaskFailure failure;
      if (job.run_range(job.ctx, i, i + 1, &failure) != 1) std::abort();
      std::memcpy(buffer.data() + i * size, job.result_slot(job.ctx, i), size);
    }
    for (std::size_t i = 0; i < job.n; i += 3) {
      job.adopt_results(job.ctx, buffer.data() + i * size,
                        std::min<std::size_t>(3, job.n - i));
    }
    return {};
  }

 private:
  bool forget_;
};

TEST(AdoptResults, AnAdoptingBackendFillsReservedSlotsInSlices) {
  auto executor = std::make_shared<BufferExecutor>(/*forget=*/false);
  fanout::Parallel p(executor);
  const std::vector<long> r =
      p.map(10, [](std::size_t i) { return static_cast<long>(i) * 11; });
  EXPECT_EQ(executor->parallel_runs, 1);
  EXPECT_TRUE(executor->saw_reserved);
  EXPECT_EQ(r, (std::vector<long>{0, 11, 22, 33, 44, 55, 66, 77, 88, 99}));
}

TEST(AdoptResults, ResultsABackendLeftUnconstructedAreAnErrorNotGarbage) {
  auto executor = std::make_shared<BufferExecutor>(/*forget=*/true);
  fanout::Parallel p(executor);
  try {
    p.map(10, [](std::size_t i) { return static_cast<long>(i); });
    FAIL() << "expected fanout::Error";
  } catch (const fanout::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "internal: backend 'buffer' returned 0 results for 10 tasks");
  }
}

TEST(AdoptResults, InlineRunsConstructTheSlotsFirst) {
  // One task runs inline in the caller (Executor::run), never through
  // RunParallel: the slots are constructed before it stores its result.
  auto executor = std::make_shared<BufferExecutor>(/*forget=*/true);
  fanout::Parallel p(executor);
  EXPECT_EQ(p.map(1, [](std::size_t) { return 42L; }), (std::vector<long>{42}));
  EXPECT_EQ(executor->parallel_runs, 0);
}

TEST(AdoptResults, NonTrivialResultsAreNeverReserved) {
  auto executor = std::make_shared<BufferExecutor>(/*forget=*/true);
  fanout::Parallel p(executor);
  // Strings go through the codec: RunParallel sees no reserved slots and
  // (this fake) runs nothing, so each result is the default.
  const std::vector<std::string> r =
      p.map(4, [](std::size_t i) { return std::to_string(i); });
  EXPECT_FALSE(executor->saw_reserved);
  EXPECT_EQ(r, (std::vector<std::string>(4)));
}

}  // namespace adopt
