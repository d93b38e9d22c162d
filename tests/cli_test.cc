// The CLI as a user meets it: run as a process, answers on stdout, one clear
// line on stderr and exit code 2 for every kind of bad input.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

const std::string& Cli() {
  static const std::string path = Runfile("cli/run");
  return path;
}

std::vector<std::string> Backends() {
  Result r = RunProgram(Cli(), {"--list-backends"});
  std::vector<std::string> names;
  for (const std::string& line : Lines(r.out))
    names.push_back(line.substr(0, line.find(' ')));
  return names;
}

TEST(Cli, ListsBackendsWithDescriptions) {
  Result r = RunProgram(Cli(), {"--list-backends"});
  EXPECT_EQ(r.exit_code, 0);
  const auto names = Backends();
  EXPECT_NE(std::find(names.begin(), names.end(), "sequential"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "thread"), names.end());
  for (const std::string& line : Lines(r.out))
    EXPECT_GT(line.size(), 20u) << line;
}

TEST(Cli, SumAnswerOnEveryBackend) {
  for (const std::string& backend : Backends()) {
    Result r = RunProgram(Cli(), {"--backend=" + backend});
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    auto lines = Lines(r.out);
    ASSERT_GE(lines.size(), 5u) << r.out;
    EXPECT_EQ(lines[0], "249972500250000000") << backend;
    EXPECT_EQ(lines[1], "backend: " + backend);
    EXPECT_EQ(lines[3], "tasks: 10000");
    EXPECT_EQ(lines[4].rfind("wall: ", 0), 0u) << lines[4];
  }
}

TEST(Cli, FibAnswerOnEveryBackend) {
  for (const std::string& backend : Backends()) {
    Result r = RunProgram(
        Cli(), {"--backend=" + backend, "--workload=fib", "--jobs=2"});
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    auto lines = Lines(r.out);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines[0], "39088169 24157817 14930352 9227465 5702887 3524578")
        << backend;
    EXPECT_EQ(lines[2], backend == "sequential" ? "jobs: 1" : "jobs: 2")
        << backend;
  }
}

TEST(Cli, OtherWorkloads) {
  Result r = RunProgram(Cli(), {"--workload=noop", "--tasks=1000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out)[0], "499500");
  r = RunProgram(Cli(), {"--workload=sleep", "--tasks=8", "--sleep-ms=1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out)[0], "8");
  r = RunProgram(Cli(), {"--workload=sum", "--tasks=0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out)[0], "0");
}

TEST(Cli, SpeedupAgainstSequential) {
  Result r = RunProgram(Cli(), {"--workload=sum", "--tasks=200", "--speedup"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 7u) << r.out;
  EXPECT_EQ(lines[5].rfind("sequential: ", 0), 0u);
  EXPECT_EQ(lines[6].rfind("speedup: ", 0), 0u);
  EXPECT_EQ(lines[6].back(), 'x');
}

TEST(Cli, VerboseLinesOnStderrOnly) {
  Result r = RunProgram(Cli(), {"--workload=sleep", "--tasks=20",
                                "--sleep-ms=5", "--verbose=50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out)[0], "20");
  auto err = Lines(r.err);
  ASSERT_FALSE(err.empty());
  EXPECT_EQ(err.back().rfind("[Parallel(n_jobs=", 0), 0u) << err.back();
  EXPECT_NE(err.back().find("Done  20 out of  20 | elapsed:"),
            std::string::npos)
      << err.back();
  EXPECT_EQ(err.back().substr(err.back().size() - 8), "finished");
}

struct BadInput {
  std::vector<std::string> args;
  std::string message;
};

TEST(Cli, BadInputGetsOneClearLineAndExit2) {
  const std::vector<BadInput> cases = {
      {{"--backend=thred"},
       "run: unknown backend 'thred' (did you mean 'thread'?); valid "
       "backends: "},
      {{"--backend=gpu"}, "run: unknown backend 'gpu'; valid backends: "},
      {{"--backend=procces"},
       "run: unknown backend 'procces' (did you mean 'process'?); valid "
       "backends: "},
      {{"--workload=foo"},
       "run: unknown workload 'foo'; valid workloads: fib, noop, sleep, sum"},
      {{"--jobs=0"},
       "run: --jobs=0 is invalid; valid: -1 for every usable CPU"},
      {{"--jobs=two"},
       "run: --jobs='two' is not a number; valid: -1 for every usable CPU"},
      {{"--tasks=-5"}, "run: --tasks=-5 is invalid; valid: a count >= 0"},
      {{"--tasks=1e3"},
       "run: --tasks='1e3' is not a number; valid: a count >= 0"},
      {{"--sleep-ms=soon", "--workload=sleep"},
       "run: --sleep-ms='soon' is not a number"},
      {{"--fail-task=17", "--fail-mode=melt"},
       "run: unknown --fail-mode 'melt'; valid: throw, segv, abort, exit, "
       "hang"},
      {{"--fail-task=99", "--workload=fib"},
       "run: --fail-task=99 is not a task of this run; valid: 0 to 5"},
      {{"--bogus=1"}, "run: unknown flag '--bogus'; valid flags: --backend, "},
      {{"stray"}, "run: unexpected argument 'stray'"},
  };
  for (const BadInput& c : cases) {
    Result r = RunProgram(Cli(), c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args[0] << ": " << r.out;
    auto err = Lines(r.err);
    ASSERT_FALSE(err.empty()) << c.args[0];
    EXPECT_EQ(err[0].rfind(c.message, 0), 0u)
        << "got: " << err[0] << "\nwant: " << c.message;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
  }
}

TEST(Cli, TaskErrorExits1AndNamesTheTask) {
  for (const std::string backend : {"sequential", "thread"}) {
    Result r = RunProgram(Cli(), {"--backend=" + backend, "--fail-task=17",
                                  "--fail-mode=throw", "--tasks=100"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_NE(
        r.err.find("run: error: task 17 failed on backend '" + backend + "'"),
        std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("std::runtime_error: injected failure in task 17"),
              std::string::npos)
        << r.err;
  }
}

TEST(Cli, TimeoutExits1) {
  // On in-process backends a timeout stops the call between chunks; a task
  // that hangs for good is what the process backend's timeout is for.
  Result r = RunProgram(Cli(), {"--workload=sleep", "--tasks=1000",
                                "--sleep-ms=10", "--timeout-ms=200"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(
      r.err.find("run: error: call timed out after 200 ms on backend 'thread'"),
      std::string::npos)
      << r.err;
}

TEST(Cli, HelpExplainsEveryFlag) {
  Result r = RunProgram(Cli(), {"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.err.empty()) << r.err;
  const std::string all = r.out;
  for (const char* flag :
       {"backend", "jobs", "workload", "tasks", "verbose", "list_backends",
        "fail_task", "fail_mode", "speedup"}) {
    EXPECT_NE(all.find(std::string("--") + flag), std::string::npos) << flag;
  }
  EXPECT_NE(all.find("Examples:"), std::string::npos);
  // Every flag of ours has an example, and absl's own flags are not listed.
  EXPECT_EQ(all.find("--flagfile"), std::string::npos);
  std::size_t flags = 0, examples = 0;
  for (const std::string& line : Lines(all)) {
    flags += line.rfind("    --", 0) == 0;
  }
  // Help text wraps, so count "Example:" in the flags' part of the page.
  for (std::size_t at = all.find("Example:", all.find("Flags from"));
       at != std::string::npos; at = all.find("Example:", at + 1)) {
    ++examples;
  }
  EXPECT_EQ(flags, 16u) << all;
  EXPECT_EQ(examples, flags) << all;
  EXPECT_EQ(RunProgram(Cli(), {"-h"}).out, r.out);
}

}  // namespace
}  // namespace fanout::testing
