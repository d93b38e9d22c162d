// The CLI as a user meets it: run as a process, answers on stdout, one clear
// line on stderr and exit code 2 for every kind of bad input.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

std::vector<std::string> Backends() { return ListedBackends(Cli()); }

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
       "run: unknown workload 'foo'; valid workloads: dag, fib, noop, pi, "
       "sleep, "
       "sum"},
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
  };
  for (const BadInput& c : cases) {
    Result r = RunProgram(Cli(), c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args[0] << ": " << r.out;
    auto err = Lines(r.err);
    ASSERT_EQ(err.size(), 1u) << c.args[0] << ": " << r.err;
    EXPECT_EQ(err[0].rfind(c.message, 0), 0u)
        << "got: " << err[0] << "\nwant: " << c.message;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
  }
}

// Whether `text` is `pattern`, where each '%' in the pattern stands for any
// run of characters.
bool Matches(const std::string& pattern, const std::string& text) {
  const std::size_t star = pattern.find('%');
  if (star == std::string::npos) return pattern == text;
  if (text.compare(0, star, pattern, 0, star) != 0) return false;
  const std::string rest = pattern.substr(star + 1);
  for (std::size_t at = star; at <= text.size(); ++at) {
    if (Matches(rest, text.substr(at))) return true;
  }
  return false;
}

// The first line of `text`, or "" when there is none.
std::string FirstLine(const std::string& text) {
  const auto lines = Lines(text);
  return lines.empty() ? "" : lines[0];
}

// Exit 2, nothing on stdout and exactly one line on stderr: `message`.
void ExpectUsageError(const std::vector<std::string>& args,
                      const std::string& message) {
  Result r = RunProgram(Cli(), args);
  const std::string what = args.empty() ? "" : args[0];
  EXPECT_EQ(r.exit_code, 2) << what << ": " << r.err;
  EXPECT_TRUE(r.out.empty()) << what << ": " << r.out;
  const auto err = Lines(r.err);
  ASSERT_EQ(err.size(), 1u) << what << ": " << r.err;
  EXPECT_TRUE(Matches(message, err[0]))
      << "got:  " << err[0] << "\nwant: " << message;
}

// Issue 14 item 6: arguments that are all dashes.
TEST(CliUsage, DashesAreUsageErrors) {
  ExpectUsageError(
      {"-"}, "run: unexpected argument '-'; flags look like --backend=thread");
  ExpectUsageError({"---"},
                   "run: '---' is not a flag: too many dashes; flags look "
                   "like --backend=thread");
  ExpectUsageError({"---backend=x"},
                   "run: '---backend=x' is not a flag: too many dashes; flags "
                   "look like --backend=thread");
  ExpectUsageError({"--=3"},
                   "run: '--=3' names no flag; flags look like "
                   "--backend=thread");
}

// Issue 14 item 7: a timeout must fit in the clocks it is added to.
TEST(CliUsage, HugeTimeoutIsRejected) {
  const std::string valid =
      "valid: milliseconds from 1 to 2147483647 (about 24.8 days), or 0 for "
      "none";
  ExpectUsageError(
      {"--timeout-ms=9223372036854775807"},
      "run: --timeout-ms=9223372036854775807 is invalid; " + valid);
  ExpectUsageError({"--timeout-ms=9223372036854776"},
                   "run: --timeout-ms=9223372036854776 is invalid; " + valid);
  ExpectUsageError(
      {"--timeout-ms=99999999999999999999"},
      "run: --timeout-ms=99999999999999999999 is invalid; " + valid);
  Result r = RunProgram(
      Cli(), {"--workload=noop", "--tasks=100", "--timeout-ms=2147483647"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), "4950");
}

// Issue 14 item 10: what absl's parser used to reject with exit 1.
TEST(CliUsage, FlagSyntaxErrorsExit2) {
  ExpectUsageError({"--backend"},
                   "run: --backend needs a value, as in --backend=process");
  ExpectUsageError({"--nobackend"},
                   "run: --nobackend is invalid: --backend is not a "
                   "true/false flag; give it a value, as in "
                   "--backend=process");
  ExpectUsageError({"--speedup=2"},
                   "run: --speedup=2 is invalid; valid: --speedup, "
                   "--nospeedup, --speedup=true or --speedup=false");
  ExpectUsageError({"--verbose=abc"},
                   "run: --verbose='abc' is not a number; valid: 0 (none) to "
                   "50 (every event)");
  ExpectUsageError({"--verbose="},
                   "run: --verbose='' is not a number; valid: 0 (none) to 50 "
                   "(every event)");
  ExpectUsageError({"--list-backends=maybe"},
                   "run: --list-backends=maybe is invalid; valid: "
                   "--list-backends, --nolist-backends, --list-backends=true "
                   "or --list-backends=false");
  ExpectUsageError({"--flagfile=/nonexistent"},
                   "run: --flagfile=/nonexistent: cannot open: No such file "
                   "or directory; valid: a file with one --flag=value a line");
  ExpectUsageError({"--fromenv=jobs"},
                   "run: --fromenv=jobs: FLAGS_jobs is not set; valid: names "
                   "of flags whose values are in FLAGS_<name> environment "
                   "variables");
}

// What absl's syntax allowed still works: a value in the next argument,
// --noflag, true/false values, underscores, a flag file, values from the
// environment.
TEST(CliUsage, AbslFlagSyntaxStillWorks) {
  Result r = RunProgram(
      Cli(), {"--workload", "noop", "--tasks", "10", "--jobs", "-1",
              "--nospeedup", "--progress=false", "--list_backends=no"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), "45");
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR")) + "/flags.txt";
  std::ofstream(path) << "# a comment\n--workload=noop\n\n  --tasks=20\n";
  r = RunProgram(Cli(), {"--flagfile=" + path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), "190");
  setenv("FLAGS_tasks", "30", 1);
  r = RunProgram(Cli(), {"--workload=noop", "--fromenv=tasks"});
  unsetenv("FLAGS_tasks");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), "435");
  r = RunProgram(Cli(), {"--workload=noop", "--tasks=3", "--tryfromenv=jobs",
                         "--undefok=turbo", "--turbo=1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FirstLine(r.out), "3");
  r = RunProgram(Cli(), {"--only_check_args", "--workload=noop"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

// Issue 14 item 11: values that do not fit an int are rejected, not cut.
TEST(CliUsage, ValuesBeyondIntAreRejected) {
  const std::string jobs =
      "valid: -1 for every usable CPU (% here), -2 for all but one, or a "
      "count from 1 to 2147483647";
  ExpectUsageError({"--jobs=4294967296"},
                   "run: --jobs=4294967296 is invalid; " + jobs);
  ExpectUsageError({"--jobs=4294967297"},
                   "run: --jobs=4294967297 is invalid; " + jobs);
  ExpectUsageError({"--jobs=-4294967297"},
                   "run: --jobs=-4294967297 is invalid; " + jobs);
  ExpectUsageError({"--workload=sleep", "--sleep-ms=2147483648"},
                   "run: --sleep-ms=2147483648 is invalid; valid: "
                   "milliseconds from 0 to 2147483647 (about 24.8 days)");
  ExpectUsageError({"--verbose=2147483648"},
                   "run: --verbose=2147483648 is invalid; valid: 0 (none) to "
                   "50 (every event)");
}

// Issue 14 item 12: task counts whose results cannot fit in memory. Issue
// 23 item 9: the memory this process may use (tests/memory_room_test holds
// each source to its numbers).
TEST(CliUsage, TooManyTasksForMemory) {
  const std::string may =
      "and this process may use % bytes (%) more: %; "
      "valid: a count from 0 to ";
  ExpectUsageError({"--tasks=1000000000000"},
                   "run: --tasks=1000000000000 is too many: their results "
                   "need 8000000000000 bytes (7.3 TiB) " +
                       may + "% for --workload=sum");
  ExpectUsageError({"--tasks=9223372036854775807"},
                   "run: --tasks=9223372036854775807 is too many: their "
                   "results need 73786976294838206456 bytes (64.0 EiB) " +
                       may + "% for --workload=sum");
  ExpectUsageError({"--workload=sleep", "--tasks=1000000000000"},
                   "run: --tasks=1000000000000 is too many: their results "
                   "need 4000000000000 bytes (3.6 TiB) " +
                       may + "% for --workload=sleep");
}

// Issue 14 item 12: a count that passes the check but finds too little
// memory left gets one line, not std::bad_alloc. Under --errors=collect
// each result is an Expected, larger than the 8 bytes the check counts.
TEST(CliUsage, OutOfMemoryForResultsIsOneLine) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers reserve more address space than ulimit -v "
                  "leaves";
#endif
  Result r =
      RunProgram("/bin/sh", {"-c", "ulimit -v 1000000 && exec " + Cli() +
                                       " --backend=sequential --workload=noop "
                                       "--errors=collect --tasks=100000000"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(r.err,
            "run: error: out of memory for the results of 100000000 tasks "
            "(8 bytes each); try fewer --tasks\n");
}

// Issue 23 item 11: --help says what commands mode's exit code is (GNU
// parallel's count of failed commands), not "1 if any failed".
TEST(CliUsage, HelpGivesCommandsModesExitCode) {
  Result r = RunProgram(Cli(), {"--help"});
  ASSERT_EQ(r.exit_code, 0);
  std::string help;  // words joined by single spaces, as if unwrapped
  for (std::size_t i = 0; i < r.out.size(); ++i) {
    const bool space = std::isspace(static_cast<unsigned char>(r.out[i]));
    if (!space) help += r.out[i];
    if (space && !help.empty() && help.back() != ' ') help += ' ';
  }
  const std::size_t at = help.find("--commands (");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string commands = help.substr(at, help.find("default:", at) - at);
  EXPECT_EQ(commands.find("1 if any failed"), std::string::npos) << commands;
  EXPECT_NE(
      commands.find("and the exit code is the number of commands that "
                    "failed (101 for more than 100; 0 when all succeeded), "
                    "as GNU parallel's."),
      std::string::npos)
      << r.out;
  EXPECT_NE(help.find("130 interrupted; commands mode: the number of commands "
                      "that failed (101 for more than 100)."),
            std::string::npos)
      << r.out;
}

// Issue 14 item 10: every way of asking for help exits 0 with the help.
TEST(CliUsage, EveryHelpFlagExits0) {
  const std::string help = RunProgram(Cli(), {"--help"}).out;
  ASSERT_NE(help.find("Flags from cli/run.cc:"), std::string::npos) << help;
  for (const char* flag : {"--helpfull", "--help=jobs", "--helpshort",
                           "--helpmatch=jobs", "-help"}) {
    Result r = RunProgram(Cli(), {flag});
    EXPECT_EQ(r.exit_code, 0) << flag << ": " << r.err;
    EXPECT_TRUE(r.err.empty()) << flag << ": " << r.err;
    EXPECT_EQ(r.out, help) << flag;
  }
}

// Runs the CLI held to RLIMIT_NPROC = `nproc` processes and threads for its
// user, as `ulimit -u` would. Root is not held to that limit, so as root the
// CLI runs under a uid of its own (setpriv) from a copy that uid may read;
// *skip says why it cannot run at all.
Result RunWithNproc(int nproc, const std::vector<std::string>& args,
                    std::string* skip) {
  const std::string prlimit = "/usr/bin/prlimit", setpriv = "/usr/bin/setpriv";
  if (access(prlimit.c_str(), X_OK) != 0) {
    *skip = "no " + prlimit;
    return {};
  }
  std::vector<std::string> argv = {"--nproc=" + std::to_string(nproc)};
  if (getuid() != 0) {
    argv.push_back(Cli());
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(prlimit, argv);
  }
  if (access(setpriv.c_str(), X_OK) != 0) {
    *skip = "running as root and no " + setpriv;
    return {};
  }
  char dir[] = "/tmp/fanout-nproc-XXXXXX";
  if (mkdtemp(dir) == nullptr || chmod(dir, 0755) != 0) {
    *skip = "cannot make a directory in /tmp";
    return {};
  }
  const std::string copy = std::string(dir) + "/run";
  std::filesystem::copy_file(Cli(), copy);
  chmod(copy.c_str(), 0755);
  // A uid no one else uses, so that only this run counts against the limit.
  const std::string uid = std::to_string(3000000 + getpid());
  argv = {"--reuid=" + uid,
          "--regid=" + uid,
          "--clear-groups",
          prlimit,
          "--nproc=" + std::to_string(nproc),
          copy};
  argv.insert(argv.end(), args.begin(), args.end());
  Result r = RunProgram(setpriv, argv);
  std::filesystem::remove_all(dir);
  return r;
}

// Issue 14 items 8 and 13: out of threads, every in-process backend says
// which thread of how many could not start and the limit that refused it,
// in one line with exit 1 (tbb used to abort: "terminate called ...
// pthread_create has failed"; thread and mpi said only "Resource
// temporarily unavailable").
TEST(Cli, OutOfThreadsNamesTheThreadAndTheLimit) {
  const std::string limit =
      ": Resource temporarily unavailable (RLIMIT_NPROC (ulimit -u) is 4 for "
      "this user, counting all of its processes and threads; this process "
      "has % threads; use fewer jobs)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"thread", "thread backend: cannot start worker thread % of 7"},
      {"tbb", "tbb backend: cannot start worker thread % of 7"},
      {"mpi", "mpi backend (rank 0): cannot start compute thread % of 7"},
  };
  for (const auto& [backend, what] : cases) {
    std::string skip;
    Result r = RunWithNproc(4, {"--backend=" + backend, "--jobs=8"}, &skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
    EXPECT_EQ(r.exit_code, 1) << backend << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << backend << ": " << r.out;
    const auto err = Lines(r.err);
    ASSERT_EQ(err.size(), 1u) << backend << ": " << r.err;
    std::string want = "run: error: " + what;
    want += limit;
    EXPECT_TRUE(Matches(want, err[0]))
        << "got:  " << err[0] << "\nwant: " << want;
    // Within the limit the same run works: the limit is the only cause.
    r = RunWithNproc(4, {"--backend=" + backend, "--jobs=2"}, &skip);
    EXPECT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    EXPECT_EQ(FirstLine(r.out), "249972500250000000") << backend;
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

// Issue 14 item 9: --fail-mode=exit calls exit(3) in the task, as user
// code would. On thread and tbb that used to end the run with status 3 and
// no word (and libtbb could segfault in its shutdown); now one line says so,
// naming the task (issue 23 item 11; mpi under mpirun: tests/mpi).
TEST(Cli, ExitInATaskIsReported) {
  for (const std::string backend : {"thread", "tbb", "mpi"}) {
    Result r = RunProgram(Cli(), {"--backend=" + backend, "--fail-task=17",
                                  "--fail-mode=exit", "--tasks=100"});
    EXPECT_EQ(r.exit_code, 3) << backend << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << backend << ": " << r.out;
    EXPECT_EQ(r.err,
              "fanout: task 17 called exit(3) while a call was running "
              "on backend '" +
                  backend + "'; its results are lost\n");
  }
}

// In a checkpointed call, a stream or map_reduce the backend runs jobs
// whose numbers are not the caller's tasks (windows, groups): the line does
// not name a task it cannot name right.
TEST(Cli, ExitInATaskOfAWindowOrGroupIsNotMisnamed) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir != nullptr ? dir : "/tmp") + "/exit_window.ckpt";
  for (const std::string& how :
       {"--checkpoint=" + path, std::string("--stream=ordered"),
        std::string("--reduce")}) {
    unlink(path.c_str());
    Result r = RunProgram(
        Cli(), {"--fail-task=17", "--fail-mode=exit", "--tasks=100", how});
    EXPECT_EQ(r.exit_code, 3) << how << ": " << r.err;
    EXPECT_EQ(r.err,
              "fanout: a task called exit(3) while a call was running on "
              "backend 'thread'; its results are lost\n")
        << how;
  }
  unlink(path.c_str());
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

TEST(Cli, ReduceGivesTheSameAnswerOnEveryBackend) {
  for (const std::string& backend : Backends()) {
    Result r = RunProgram(
        Cli(), {"--backend=" + backend, "--workload=sum", "--reduce"});
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    auto lines = Lines(r.out);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines[0], "249972500250000000") << backend;
  }
}

TEST(Cli, StreamPrintsEachResultAsItComes) {
  const std::vector<std::string> fib = {"39088169", "24157817", "14930352",
                                        "9227465",  "5702887",  "3524578"};
  for (const std::string& backend : Backends()) {
    Result r = RunProgram(Cli(), {"--backend=" + backend, "--workload=fib",
                                  "--jobs=2", "--stream=unordered"});
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    auto lines = Lines(r.out);
    ASSERT_GE(lines.size(), 7u) << r.out;
    std::vector<int> seen(6, 0);
    for (int k = 0; k < 6; ++k) {
      const std::size_t space = lines[k].find(' ');
      ASSERT_NE(space, std::string::npos) << lines[k];
      const int index = std::stoi(lines[k].substr(0, space));
      ASSERT_GE(index, 0);
      ASSERT_LT(index, 6);
      ++seen[index];
      EXPECT_EQ(lines[k].substr(space + 1), fib[index]) << backend;
    }
    EXPECT_EQ(seen, std::vector<int>(6, 1)) << backend;
    EXPECT_EQ(lines[6], "39088169 24157817 14930352 9227465 5702887 3524578");

    r = RunProgram(Cli(), {"--backend=" + backend, "--workload=fib", "--jobs=2",
                           "--stream=ordered"});
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    lines = Lines(r.out);
    ASSERT_GE(lines.size(), 7u);
    for (int k = 0; k < 6; ++k) EXPECT_EQ(lines[k], fib[k]) << backend;
  }
}

TEST(CliUsage, StreamAndReduceValues) {
  for (const auto& [args, line] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--stream=maybe"},
            "run: unknown --stream 'maybe'; valid: ordered, unordered"},
           {{"--workload=fib", "--reduce"},
            "run: --reduce works with --workload=sum (got --workload=fib); "
            "valid: --workload=sum --reduce"},
           // Issue 23 item 11: the valid combinations named.
           {{"--reduce", "--stream=ordered"},
            "run: --reduce and --stream cannot be used together: a reduction "
            "has no per-task results to print; valid: --reduce alone (the "
            "sum through map_reduce), or --stream=ordered or "
            "--stream=unordered alone (each task's result as it comes)"}}) {
    Result r = RunProgram(Cli(), args);
    EXPECT_EQ(r.exit_code, 2) << line;
    EXPECT_EQ(r.err, line + "\n");
  }
}

// --workload=pi: every task draws from task_rng(seed, i), so the printed
// answer is the same on every backend and jobs count, and differs by seed.
TEST(Cli, PiIsTheSameOnEveryBackendAndJobs) {
  std::string first;
  for (const std::string& backend : Backends()) {
    for (const char* jobs : {"1", "2", "3", "7"}) {
      Result r = RunProgram(
          Cli(), {"--backend=" + backend, "--jobs=" + std::string(jobs),
                  "--workload=pi", "--seed=7", "--tasks=200"});
      ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.err;
      const auto lines = Lines(r.out);
      ASSERT_FALSE(lines.empty());
      if (first.empty()) first = lines[0];
      EXPECT_EQ(lines[0], first) << backend << " jobs " << jobs;
    }
  }
  EXPECT_EQ(first.rfind("3.14", 0), 0u) << first;
  Result other =
      RunProgram(Cli(), {"--workload=pi", "--seed=8", "--tasks=200"});
  ASSERT_FALSE(Lines(other.out).empty());
  EXPECT_NE(Lines(other.out)[0], first);
}

TEST(Cli, HelpExplainsEveryFlag) {
  Result r = RunProgram(Cli(), {"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.err.empty()) << r.err;
  const std::string all = r.out;
  for (const char* flag : {"backend", "jobs", "workload", "tasks", "verbose",
                           "list_backends", "fail_task", "fail_mode", "speedup",
                           "pipe", "block", "recend", "records"}) {
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
  EXPECT_EQ(flags, 45u) << all;
  EXPECT_EQ(examples, flags) << all;
  EXPECT_EQ(RunProgram(Cli(), {"-h"}).out, r.out);
}

}  // namespace
}  // namespace fanout::testing
