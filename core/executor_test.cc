#include "core/executor.h"

#include <gtest/gtest.h>

#include <string>

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
