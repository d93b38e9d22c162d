// --trace and --trace-summary as a user meets them: a path that cannot be
// written is refused with one line and exit 2 before anything runs (so is a
// bad FANOUT_TRACE), --compare puts every backend's run on one timeline,
// commands mode has a row per slot, and the summary's parts add up to the
// run's wall time.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

std::string Tmp(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

int CheckTrace(const std::string& path, const std::string& args) {
  const std::string cmd = "/usr/bin/python3 " +
                          Runfile("core/testing/trace_check.py") + " '" + path +
                          "' " + args;
  return std::system(cmd.c_str());
}

TEST(CliTrace, PathThatCannotBeWrittenIsOneUsageLine) {
  for (const std::string& bad :
       {std::string("/nonexistent-dir-of-fanout/run.json"), Tmp("")}) {
    for (const char* mode : {"--workload=sum", "commands"}) {
      std::vector<std::string> args = {"--trace=" + bad};
      if (std::string(mode) == "commands") {
        args.insert(args.end(), {"echo", ":::", "a"});
      } else {
        args.push_back(mode);
      }
      const Result r = RunProgram(Cli(), args);
      EXPECT_EQ(r.exit_code, 2) << r.err;
      EXPECT_TRUE(r.out.empty()) << r.out;  // nothing ran
      const std::vector<std::string> lines = Lines(r.err);
      ASSERT_EQ(lines.size(), 1u) << r.err;
      EXPECT_EQ(lines[0].rfind("run: --trace=" + bad + ": ", 0), 0u)
          << lines[0];
      EXPECT_NE(lines[0].find("valid: "), std::string::npos) << lines[0];
    }
  }
}

TEST(CliTrace, BadFanoutTraceIsRefusedNamingIt) {
  setenv("FANOUT_TRACE", "/nonexistent-dir-of-fanout/run.json", 1);
  const Result r = RunProgram(Cli(), {"--workload=fib"});
  unsetenv("FANOUT_TRACE");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const std::vector<std::string> lines = Lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_EQ(lines[0].rfind("run: FANOUT_TRACE '/nonexistent-dir-of-fanout/"
                           "run.json': cannot write the trace there: ",
                           0),
            0u)
      << lines[0];
}

TEST(CliTrace, FanoutTraceTracesAProgramUnchanged) {
  const std::string path = Tmp("env.json");
  setenv("FANOUT_TRACE", path.c_str(), 1);
  const Result r = RunProgram(Cli(), {"--workload=fib", "--jobs=2"});
  unsetenv("FANOUT_TRACE");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(CheckTrace(path, "--tasks=6 --min-workers=2"), 0);
}

// A pool's submitted tasks are not traced: --trace with --workload=dag or
// --inputs (whose batches run on a pool) is refused with one line, and a
// pool under FANOUT_TRACE still gives its exact answer.
TEST(CliTrace, PoolWorkloadsRefuseTraceAndRunUnderFanoutTrace) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"--workload=dag", "--trace=" + Tmp("dag.json")},
           {"--workload=dag", "--trace-summary"},
           {"--workload=sum", "--inputs=-", "--trace=" + Tmp("in.json")},
           {"--workload=sum", "--inputs=-", "--trace-summary"},
       }) {
    const Result r = RunProgram(Cli(), args, "1\n");
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << args[1];
    EXPECT_TRUE(r.out.empty()) << r.out;
    const std::vector<std::string> lines = Lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_NE(lines[0].find("cannot be combined with --trace"),
              std::string::npos)
        << lines[0];
    EXPECT_NE(lines[0].find("not traced"), std::string::npos) << lines[0];
  }
  setenv("FANOUT_TRACE", Tmp("pool-env.json").c_str(), 1);
  for (const char* backend : {"thread", "process"}) {
    const Result r = RunProgram(
        Cli(), {"--workload=dag", std::string("--backend=") + backend});
    EXPECT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    EXPECT_EQ(Lines(r.out).at(0), "11967090167291901549") << backend;
  }
  const Result in =
      RunProgram(Cli(), {"--workload=sum", "--inputs=-"}, "1\n2\n");
  unsetenv("FANOUT_TRACE");
  EXPECT_EQ(in.exit_code, 0) << in.err;
}

TEST(CliTrace, CompareRunsEveryBackendOnOneTimeline) {
  const std::string path = Tmp("compare.json");
  const std::vector<std::string> backends = ListedBackends(Cli());
  const Result r = RunProgram(Cli(), {"--compare=all", "--workload=fib",
                                      "--jobs=2", "--trace=" + path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Each backend's run is a call, each task once in each.
  EXPECT_EQ(
      CheckTrace(path, "--tasks=6 --calls=" + std::to_string(backends.size())),
      0);
}

TEST(CliTrace, CommandsModeHasARowPerSlot) {
  const std::string path = Tmp("commands.json");
  const Result r =
      RunProgram(Cli(), {"--jobs=2", "--trace=" + path, "--trace-summary",
                         "sleep", "0.0{}", ":::", "1", "2", "3", "4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(CheckTrace(path, "--tasks=4 --workers=2 --notes=command"), 0);
  EXPECT_NE(r.err.find("trace summary: commands of 4 tasks"), std::string::npos)
      << r.err;
}

// The five parts the summary cuts the wall time into, from its text.
double PartsSeconds(const std::string& text) {
  double total = 0;
  for (const char* part :
       {"start", "running tasks", "waiting for the last task", "moving results",
        "other"}) {
    const std::size_t at = text.find(std::string("\n  ") + part + " ");
    EXPECT_NE(at, std::string::npos) << part << "\n" << text;
    if (at == std::string::npos) continue;
    double value = 0;
    char unit[8] = {};
    EXPECT_EQ(std::sscanf(text.c_str() + at + 3 + std::string(part).size(),
                          " %lf %7s", &value, unit),
              2)
        << text.substr(at, 80);
    const std::string u = unit;
    total += value * (u == "s"    ? 1
                      : u == "ms" ? 1e-3
                      : u == "us" ? 1e-6
                                  : 1e-9);
  }
  return total;
}

TEST(CliTrace, SummaryPartsAddUpToTheWall) {
  for (const char* backend : {"thread", "process"}) {
    const Result r =
        RunProgram(Cli(), {std::string("--backend=") + backend, "--jobs=2",
                           "--workload=fib", "--trace-summary"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::size_t at = r.err.find(": wall ");
    ASSERT_NE(at, std::string::npos) << r.err;
    double wall = 0;
    char unit[8] = {};
    ASSERT_EQ(std::sscanf(r.err.c_str() + at + 7, "%lf %7s", &wall, unit), 2);
    if (std::string(unit) == "ms") wall *= 1e-3;
    EXPECT_NEAR(PartsSeconds(r.err), wall, 0.05 * wall) << r.err;
    // fib 38 (task 0) is among the five slowest; which is first depends on
    // the machine's load, so its place is not asserted.
    const std::size_t slowest = r.err.find("slowest tasks:\n");
    ASSERT_NE(slowest, std::string::npos) << r.err;
    EXPECT_NE(r.err.find("\n    task 0 ", slowest), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace fanout::testing
