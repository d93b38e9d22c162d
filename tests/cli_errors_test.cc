// The CLI's failure flags as a user meets them: --errors=collect runs every
// task and reports each failure, --retries runs a failed task again, and
// --fail-attempts fails only the first attempts of --fail-task (counted
// across the process backend's forked workers), with exact output and exit
// codes on every backend.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

constexpr char kSum[] = "249972500250000000";
// The reference sum without task 17's 17 * 4999950000.
constexpr char kSumWithout17[] = "249972415250850000";

std::vector<std::string> Backends() { return ListedBackends(Cli()); }

// The first line of `text`, or "" when there is none.
std::string FirstLine(const std::string& text) {
  const auto lines = Lines(text);
  return lines.empty() ? "" : lines[0];
}

// The line that names task 17's injected failure on `backend`, up to the
// worker (whose thread, pid or rank varies) and from the exception on.
void ExpectTask17Line(const std::string& line, const std::string& backend,
                      const std::string& ending) {
  const std::string head =
      "run: error: task 17 failed on backend '" + backend + "' (";
  const std::string tail =
      "): std::runtime_error: injected failure in task 17" + ending;
  EXPECT_EQ(line.rfind(head, 0), 0u) << line;
  ASSERT_GE(line.size(), tail.size()) << line;
  EXPECT_EQ(line.substr(line.size() - tail.size()), tail) << line;
}

TEST(CliErrors, CollectPrintsEachFailureAndThePartialAnswer) {
  for (const std::string backend : {"thread", "process"}) {
    Result r = RunProgram(
        Cli(), {"--backend=" + backend, "--errors=collect", "--fail-task=17"});
    EXPECT_EQ(r.exit_code, 1) << backend << ": " << r.err;
    const auto out = Lines(r.out);
    ASSERT_EQ(out.size(), 5u) << backend << ": " << r.out;
    EXPECT_EQ(out[0], std::string(kSumWithout17) +
                          " (partial: 1 of 10000 tasks failed)")
        << backend;
    EXPECT_EQ(out[1], "backend: " + backend);
    EXPECT_EQ(out[3], "tasks: 10000");
    const auto err = Lines(r.err);
    ASSERT_EQ(err.size(), 1u) << backend << ": " << r.err;
    ExpectTask17Line(err[0], backend, "");
  }
}

TEST(CliErrors, CollectMarksAFailedFibAndEveryFailedTask) {
  Result r = RunProgram(Cli(), {"--backend=process", "--workload=fib",
                                "--errors=collect", "--fail-task=2"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(FirstLine(r.out),
            "39088169 24157817 - 9227465 5702887 3524578 (partial: 1 of 6 "
            "tasks failed)");
  // The sleep workload's answer counts the tasks that succeeded.
  r = RunProgram(Cli(), {"--workload=sleep", "--tasks=5", "--sleep-ms=0",
                         "--errors=collect", "--fail-task=4"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(FirstLine(r.out), "4 (partial: 1 of 5 tasks failed)");
}

TEST(CliErrors, CollectWithoutFailuresIsTheReference) {
  Result r = RunProgram(Cli(), {"--backend=process", "--errors=collect"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), kSum);
  EXPECT_TRUE(r.err.empty()) << r.err;
  // A task that fails its first attempt and is retried leaves no failure.
  r = RunProgram(Cli(), {"--backend=process", "--errors=collect",
                         "--fail-task=17", "--fail-attempts=1", "--retries=1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), kSum);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(CliErrors, FailFastIsTheDefault) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--fail-task=17"},
        std::vector<std::string>{"--fail-task=17", "--errors=fail-fast"}}) {
    std::vector<std::string> all = args;
    all.push_back("--backend=process");
    Result r = RunProgram(Cli(), all);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    const auto err = Lines(r.err);
    ASSERT_EQ(err.size(), 1u) << r.err;
    ExpectTask17Line(err[0], "process", "");
  }
}

TEST(CliErrors, RetriedFlakyTaskGivesTheReferenceOnEveryBackend) {
  for (const std::string& backend : Backends()) {
    Result r = RunProgram(Cli(), {"--backend=" + backend, "--fail-task=17",
                                  "--fail-attempts=1", "--retries=1"});
    EXPECT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    EXPECT_EQ(FirstLine(r.out), kSum) << backend;
    EXPECT_TRUE(r.err.empty()) << backend << ": " << r.err;
  }
}

TEST(CliErrors, TooFewRetriesFailNamingTheAttempts) {
  for (const std::string& backend : Backends()) {
    // Without retries the one failing attempt fails the run.
    Result r = RunProgram(Cli(), {"--backend=" + backend, "--fail-task=17",
                                  "--fail-attempts=1", "--retries=0"});
    EXPECT_EQ(r.exit_code, 1) << backend << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << backend << ": " << r.out;
    auto err = Lines(r.err);
    ASSERT_EQ(err.size(), 1u) << backend << ": " << r.err;
    ExpectTask17Line(err[0], backend, "");
    // Three failing attempts outlast two retries, however the attempts are
    // spread over forked workers.
    r = RunProgram(Cli(), {"--backend=" + backend, "--fail-task=17",
                           "--fail-attempts=3", "--retries=2"});
    EXPECT_EQ(r.exit_code, 1) << backend << ": " << r.err;
    err = Lines(r.err);
    ASSERT_EQ(err.size(), 1u) << backend << ": " << r.err;
    ExpectTask17Line(err[0], backend, " (failed 3 attempts)");
    r = RunProgram(Cli(), {"--backend=" + backend, "--fail-task=17",
                           "--fail-attempts=3", "--retries=3"});
    EXPECT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    EXPECT_EQ(FirstLine(r.out), kSum) << backend;
  }
}

TEST(CliErrors, EveryAttemptFailsByDefault) {
  Result r =
      RunProgram(Cli(), {"--backend=process", "--fail-task=17", "--retries=4"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto err = Lines(r.err);
  ASSERT_EQ(err.size(), 1u) << r.err;
  ExpectTask17Line(err[0], "process", " (failed 5 attempts)");
}

// Exit 2, nothing on stdout and exactly one line on stderr: `message`.
void ExpectUsageError(const std::vector<std::string>& args,
                      const std::string& message) {
  Result r = RunProgram(Cli(), args);
  EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
  EXPECT_TRUE(r.out.empty()) << args[0] << ": " << r.out;
  EXPECT_EQ(r.err, message + "\n") << args[0];
}

TEST(CliErrors, BadValuesAreUsageErrors) {
  const std::string retries =
      " is invalid; valid: how many times to run a failed task again, 0 to "
      "1000000 (in commands mode: runs of a failing command in all, 0 to "
      "1000)";
  ExpectUsageError({"--errors=bogus"},
                   "run: unknown --errors 'bogus'; valid: fail-fast, collect");
  ExpectUsageError({"--retries=-1"}, "run: --retries=-1" + retries);
  ExpectUsageError({"--retries=1000001"}, "run: --retries=1000001" + retries);
  ExpectUsageError({"--retries=-1", "echo", ":::", "a"},
                   "run: --retries=-1 is invalid; valid: runs of a failing "
                   "command in all, 0 to 1000 (0 and 1: once)");
  ExpectUsageError({"--fail-attempts=1"},
                   "run: --fail-attempts=1 says how many attempts of "
                   "--fail-task fail; valid: with --fail-task=N");
  ExpectUsageError({"--fail-task=3", "--fail-attempts=-1"},
                   "run: --fail-attempts=-1 is invalid; valid: how many "
                   "first attempts of --fail-task fail, 0 (every one) to "
                   "1000000");
  for (const char* other :
       {"--reduce", "--stream=ordered", "--compare=all", "--speedup"}) {
    const std::string name =
        std::string(other).substr(0, std::string(other).find('='));
    ExpectUsageError({"--errors=collect", other},
                     "run: --errors=collect and " + name +
                         " cannot be combined: the answer of a run with "
                         "failed tasks leaves them out; valid: one of them");
  }
  ExpectUsageError({"--retries=1", "--reduce"},
                   "run: --retries and --reduce cannot be combined: "
                   "map_reduce does not retry (a whole group of tasks would "
                   "run again); valid: one of them");
  ExpectUsageError({"--errors=collect", "echo", ":::", "a"},
                   "run: --errors is for workload mode: commands mode runs "
                   "every command and exits with the number that failed; "
                   "valid: --halt "
                   "to stop early");
}

// Issue 23 item 8: a flag of one mode given in the other did nothing, with
// exit 0 (--worker-memory=64M applied no limit to commands, --format=json
// printed text). Each is refused with one line naming the mode it belongs
// to, whatever its value, and nothing runs.
TEST(CliErrors, EachFlagOfTheOtherModeIsRefused) {
  const std::string valid =
      "; valid in commands mode: --jobs, --backend, --retries, --colsep, "
      "--null, --pipe, --block, --recend, --records (-N), --timeout, "
      "--timeout-ms, --halt, --delay, --keep-order, --line-buffer, --tag, "
      "--results, --joblog, --resume, --resume-failed, --dry-run, "
      "--progress, --verbose, --trace, --trace-summary";
  const std::string ran = std::string(std::getenv("TEST_TMPDIR")) + "/ran";
  for (const char* flag :
       {"--stream=ordered", "--reduce", "--worker-memory=64M",
        "--task-timeout-ms=100", "--seed=7", "--tasks=10", "--workload=fib",
        "--workload=sum", "--fail-task=0", "--fail-mode=segv",
        "--fail-attempts=1", "--speedup", "--nospeedup", "--compare=all",
        "--sleep-ms=5", "--batch-size=4", "--format=json", "--format=text"}) {
    const std::string f = flag;
    const std::string name = f.substr(2, f.find('=') - 2);
    ExpectUsageError({f, "touch", ran, ":::", "a"},
                     "run: --" + (name == "nospeedup" ? "speedup" : name) +
                         " is for workload mode (--workload=...), not "
                         "commands mode, where it would be ignored" +
                         valid);
    ExpectUsageError({f, "--commands=/dev/null"},
                     "run: --" + (name == "nospeedup" ? "speedup" : name) +
                         " is for workload mode (--workload=...), not "
                         "commands mode, where it would be ignored" +
                         valid);
  }
  ExpectUsageError({"--backend=process", "touch", ran, ":::", "a"},
                   "run: --backend=process cannot run commands yet (a "
                   "command launched from a forked worker would report its "
                   "end to that worker, not to this run); valid in commands "
                   "mode: --backend=sequential (one at a time), thread (the "
                   "default), tbb or mpi");
  EXPECT_NE(access(ran.c_str(), F_OK), 0) << "a command ran";
  // --backend=thread is what commands mode is: accepted.
  EXPECT_EQ(
      RunProgram(Cli(), {"--backend=thread", "true", ":::", "a"}).exit_code, 0);

  // The reverse: commands mode's flags in workload mode, even at their
  // default values.
  for (const auto& [flag, example] :
       std::vector<std::pair<std::string, std::string>>{
           {"--tag", "--tag"},
           {"--halt=never", "--halt=now,fail=1"},
           {"--timeout=0", "--timeout=2.5"},
           {"--delay=1", "--delay=0.5"},
           {"--results=out", "--results=out"},
           {"--joblog=run.log", "--joblog=run.log"},
           {"--dry-run", "--dry-run"},
           {"--nokeep-order", "--keep-order"}}) {
    const std::string name = flag == "--nokeep-order"
                                 ? "keep-order"
                                 : flag.substr(2, flag.find('=') - 2);
    ExpectUsageError({flag, "--workload=noop", "--tasks=1"},
                     "run: --" + name +
                         " is for commands mode, not workload mode; valid: "
                         "with --commands=FILE or arguments, as in: run " +
                         example + " echo ::: a b");
  }
  // --fail-mode without --fail-task: no task would fail.
  ExpectUsageError({"--fail-mode=oom", "--tasks=10"},
                   "run: --fail-mode=oom says how --fail-task fails, and no "
                   "task is to fail; valid: with --fail-task=N, as in "
                   "--fail-task=3 --fail-mode=oom");
}

}  // namespace
}  // namespace fanout::testing
