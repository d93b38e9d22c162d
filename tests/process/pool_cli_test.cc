// End to end: the CLI's --worker-memory, --task-timeout-ms and
// --fail-mode=oom on --backend=process. A task over a limit fails alone with
// a message naming the limit, the CLI exits 1 on its own (it was not
// killed), and no worker is left behind: this test is the subreaper of
// everything the CLI forks, so a leftover worker would be its child.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "backends/process/testing/children.h"
#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;

class PoolCli : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }
  void TearDown() override { EXPECT_THAT(ChildrenOf(getpid()), IsEmpty()); }
};

TEST_F(PoolCli, OomTaskFailsAloneUnderTheWorkerMemoryLimit) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer's allocator ends the worker at the limit instead of
  // throwing std::bad_alloc (the CLI is built with it too).
  GTEST_SKIP() << "a sanitizer's allocator does not throw std::bad_alloc";
#endif
  Result r =
      RunProgram(Cli(), {"--backend=process", "--jobs=2", "--workload=sleep",
                         "--tasks=20", "--sleep-ms=1", "--fail-task=3",
                         "--fail-mode=oom", "--worker-memory=256M"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err,
              MatchesRegex("run: error: task 3 failed on backend 'process' "
                           "\\(pid [0-9]+\\): std::bad_alloc: exceeded the "
                           "worker memory limit of 256 MiB\n"));
}

TEST_F(PoolCli, HangingTaskFailsAtTheTaskTimeout) {
  Result r =
      RunProgram(Cli(), {"--backend=process", "--jobs=2", "--workload=sleep",
                         "--tasks=20", "--sleep-ms=1", "--fail-task=5",
                         "--fail-mode=hang", "--task-timeout-ms=300"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err,
              MatchesRegex("run: error: task 5 failed on backend 'process' "
                           "\\(pid [0-9]+\\): timed out after 300 ms \\(its "
                           "worker was killed\\)\n"));
}

TEST_F(PoolCli, LimitsWithinReachChangeNothing) {
  Result r =
      RunProgram(Cli(), {"--backend=process", "--jobs=2",
                         "--worker-memory=1.5G", "--task-timeout-ms=60000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out)[0], "249972500250000000");
}

// A worker killed by its task's first attempt is replaced and the task run
// again (--retries); a task that kills every worker fails alone under
// --errors=collect after retries + 1 attempts, the rest of the answer kept.
TEST_F(PoolCli, CrashedWorkersAreReplacedAndTheirTaskRetried) {
  const std::vector<std::string> common = {
      "--backend=process", "--jobs=2",      "--workload=sum",
      "--tasks=40",        "--fail-task=7", "--fail-mode=segv"};
  std::vector<std::string> args = common;
  args.insert(args.end(), {"--retries=1", "--fail-attempts=1"});
  Result r = RunProgram(Cli(), args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out)[0], "3899961000000");

  args = common;
  args.insert(args.end(), {"--retries=2", "--errors=collect"});
  r = RunProgram(Cli(), args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err,
              MatchesRegex("run: error: task 7 failed on backend 'process' "
                           "\\(pid [0-9]+\\): worker killed by SIGSEGV "
                           "\\(Segmentation fault\\) while running this task "
                           "\\(failed 3 attempts\\)\n"));
  EXPECT_EQ(Lines(r.out)[0], "3864961350000 (partial: 1 of 40 tasks failed)");
}

struct Refused {
  std::vector<std::string> args;
  std::string message;  // the whole of stderr
};

TEST_F(PoolCli, BadValuesAndOtherBackendsAreUsageErrors) {
  const std::vector<Refused> cases = {
      {{"--backend=thread", "--task-timeout-ms=100"},
       "run: task_timeout needs the process backend: a thread cannot be "
       "stopped from outside, so backend 'thread' cannot end a task that runs "
       "too long; use backend 'process', or timeout for the whole call\n"},
      {{"--backend=sequential", "--worker-memory=1G"},
       "run: worker_memory needs the process backend: backend 'sequential' "
       "runs tasks in memory it cannot limit per worker; use backend "
       "'process'\n"},
      {{"--task-timeout-ms=2147483648"},
       "run: --task-timeout-ms=2147483648 is invalid; valid: milliseconds "
       "from 1 to 2147483647 (about 24.8 days), or 0 for none\n"},
      {{"--worker-memory=12Q"},
       "run: --worker-memory='12Q' is not a size; valid: bytes (268435456) or "
       "a number with K, M, G or T (binary units: 256M, 1.5G, 2GiB); 0 for no "
       "limit\n"},
      {{"--worker-memory=-1M"},
       "run: --worker-memory='-1M' is not a size; valid: bytes (268435456) or "
       "a number with K, M, G or T (binary units: 256M, 1.5G, 2GiB); 0 for no "
       "limit\n"},
      {{"--backend=process", "--fail-task=1", "--fail-mode=oom"},
       "run: --fail-mode=oom allocates without bound and needs a limit; "
       "valid: with --backend=process --worker-memory=SIZE, e.g. "
       "--worker-memory=256M\n"},
  };
  for (const Refused& c : cases) {
    Result r = RunProgram(Cli(), c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args[0];
    EXPECT_EQ(r.err, c.message);
  }
}

}  // namespace
}  // namespace fanout::testing
