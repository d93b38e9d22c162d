// The CLI's workloads that run on the engine that takes work over time:
// --workload=dag (a graph of dependent tasks on a Pool) and --inputs (task
// inputs read as they arrive, through imap over the lines), on every backend,
// as a user runs them.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

// The sum of values of --workload=dag with the default 2000 tasks and seed.
constexpr char kDagAnswer[] = "11967090167291901549";

TEST(PoolCliWorkloads, DagChecksumIsTheSameOnEveryBackendAndJobs) {
  for (const std::string& backend : ListedBackends(Cli())) {
    for (const char* jobs : {"1", "2", "5"}) {
      Result r = RunProgram(Cli(), {"--workload=dag", "--backend=" + backend,
                                    std::string("--jobs=") + jobs});
      ASSERT_EQ(r.exit_code, 0) << backend << " jobs " << jobs << ": " << r.err;
      EXPECT_EQ(Lines(r.out).at(0), kDagAnswer) << backend << " jobs " << jobs;
      EXPECT_NE(r.out.find("tasks: 2000"), std::string::npos) << r.out;
    }
  }
  // Another graph for another seed or size.
  Result other = RunProgram(Cli(), {"--workload=dag", "--seed=2"});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(Lines(other.out).at(0), kDagAnswer);
}

TEST(PoolCliWorkloads, DagFailedTaskFailsItsDependents) {
  Result r = RunProgram(Cli(), {"--workload=dag", "--fail-task=7"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("task 7"), std::string::npos) << r.err;
  Result collect = RunProgram(
      Cli(), {"--workload=dag", "--fail-task=7", "--errors=collect"});
  EXPECT_EQ(collect.exit_code, 1) << collect.err;
  EXPECT_NE(collect.out.find("(partial: "), std::string::npos) << collect.out;
  // Task 7 and what depends on it, never the whole graph.
  EXPECT_EQ(collect.out.find("(partial: 2000 of"), std::string::npos)
      << collect.out;
}

TEST(PoolCliWorkloads, InputsFromStdinGiveTheReferenceSum) {
  std::string lines;
  for (int i = 0; i < 10000; ++i) lines += std::to_string(i) + "\n";
  for (const std::string& backend : ListedBackends(Cli())) {
    Result r = RunProgram(
        Cli(), {"--workload=sum", "--inputs=-", "--backend=" + backend}, lines);
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    EXPECT_EQ(Lines(r.out).at(0), "249972500250000000") << backend;
    EXPECT_NE(r.out.find("tasks: 10000"), std::string::npos) << r.out;
  }
}

TEST(PoolCliWorkloads, InputsStreamEachResult) {
  Result ordered =
      RunProgram(Cli(), {"--workload=fib", "--inputs=-", "--stream=ordered"},
                 "10\n1\n20\n");
  ASSERT_EQ(ordered.exit_code, 0) << ordered.err;
  std::vector<std::string> out = Lines(ordered.out);
  ASSERT_GE(out.size(), 4u);
  EXPECT_EQ(out[0], "55");
  EXPECT_EQ(out[1], "1");
  EXPECT_EQ(out[2], "6765");
  EXPECT_EQ(out[3], "55 1 6765");
  Result unordered =
      RunProgram(Cli(), {"--workload=noop", "--inputs=-", "--stream=unordered"},
                 "4\n5\n6\n");
  ASSERT_EQ(unordered.exit_code, 0) << unordered.err;
  std::vector<std::string> u = Lines(unordered.out);
  ASSERT_GE(u.size(), 4u);
  std::vector<std::string> pairs(u.begin(), u.begin() + 3);
  std::sort(pairs.begin(), pairs.end());
  EXPECT_EQ(pairs, (std::vector<std::string>{"0 4", "1 5", "2 6"}));
  EXPECT_EQ(u[3], "15");
}

TEST(PoolCliWorkloads, BadInputsAndCombinationsAreUsageErrors) {
  Result bad = RunProgram(Cli(), {"--workload=sum", "--inputs=-"}, "1\n2\nx\n");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err,
            "run: --inputs=-: line 3 is 'x'; valid: one integer a line, from "
            "-10^12 to 10^12\n");
  Result fib = RunProgram(Cli(), {"--workload=fib", "--inputs=-"}, "93\n");
  EXPECT_EQ(fib.exit_code, 2);
  EXPECT_NE(fib.err.find("from 0 to 92"), std::string::npos) << fib.err;
  Result missing =
      RunProgram(Cli(), {"--workload=sum", "--inputs=/nonexistent/x"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("cannot be read"), std::string::npos)
      << missing.err;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"--workload=pi", "--inputs=-"},
           {"--workload=sum", "--inputs=-", "--tasks=5"},
           {"--workload=sum", "--inputs=-", "--reduce"},
           {"--workload=sum", "--inputs=-", "--speedup"},
           {"--workload=sum", "--inputs=-", "--errors=collect"},
           {"--workload=dag", "--stream=ordered"},
           {"--workload=dag", "--timeout-ms=100"},
           {"--workload=dag", "--batch-size=4"},
       }) {
    Result r = RunProgram(Cli(), args, "1\n");
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << args[1];
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find("valid:"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace fanout::testing
