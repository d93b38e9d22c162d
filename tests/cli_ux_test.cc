// The CLI's user-facing modes, run as a process: JSON output that parses,
// the comparison table, commands mode (grouping, exit codes, Ctrl+C) and the
// progress bar drawn only on a terminal.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/subprocess.h"

extern char** environ;

namespace fanout::testing {
namespace {

// Evaluates a Python expression over the JSON document `json` (bound to d).
std::string PyJson(const std::string& json, const std::string& expr) {
  Result r = RunProgram(
      "/usr/bin/python3",
      {"-c", "import json,sys; d=json.load(sys.stdin); print(" + expr + ")"},
      json);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out.empty() ? "" : r.out.substr(0, r.out.size() - 1);
}

TEST(CliJson, OneObjectOnStdout) {
  Result r =
      RunProgram(Cli(), {"--format=json", "--backend=thread", "--jobs=2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_EQ(PyJson(r.out, "d['answer']"), "249972500250000000");
  EXPECT_EQ(PyJson(r.out, "d['backend'], d['jobs'], d['tasks'], d['workload']"),
            "thread 2 10000 sum");
  EXPECT_EQ(PyJson(r.out, "d['wall_seconds'] > 0"), "True");
  EXPECT_EQ(PyJson(r.out, "d['failed_tasks']"), "0");
}

// Under --errors=collect the object is still printed, with the partial
// answer and how many tasks failed; the exit code says some did.
TEST(CliJson, CollectedFailuresAreCounted) {
  Result r = RunProgram(Cli(), {"--format=json", "--errors=collect",
                                "--fail-task=3", "--tasks=10"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(PyJson(r.out, "d['failed_tasks'], d['tasks']"), "1 10");
  // The 10 tasks sum to 224997750000; task 3's 14999850000 is missing.
  EXPECT_EQ(PyJson(r.out, "d['answer']"),
            "209997900000 (partial: 1 of 10 tasks failed)");
}

TEST(CliJson, SpeedupFields) {
  Result r =
      RunProgram(Cli(), {"--format=json", "--workload=fib", "--speedup"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(PyJson(r.out, "d['answer']"),
            "39088169 24157817 14930352 9227465 5702887 3524578");
  EXPECT_EQ(PyJson(r.out, "d['sequential_seconds'] > 0 and d['speedup'] > 0"),
            "True");
}

TEST(CliJson, CompareRows) {
  Result r =
      RunProgram(Cli(), {"--format=json", "--compare=thread", "--tasks=300"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(PyJson(r.out, "' '.join(x['backend'] for x in d['rows'])"),
            "sequential thread");
  EXPECT_EQ(PyJson(r.out, "d['agree'], d['tasks'], d['rows'][0]['speedup']"),
            "True 300 1.0");
  EXPECT_EQ(PyJson(r.out, "len({x['answer'] for x in d['rows']})"), "1");
}

TEST(CliJson, ErrorsLeaveStdoutEmpty) {
  Result r =
      RunProgram(Cli(), {"--format=json", "--fail-task=3", "--tasks=10"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  r = RunProgram(Cli(), {"--format=yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Lines(r.err)[0], "run: unknown --format 'yaml'; valid: text, json");
}

TEST(CliCompare, AlignedTableWithEveryBackend) {
  Result list = RunProgram(Cli(), {"--list-backends"});
  std::vector<std::string> names;
  for (const auto& line : Lines(list.out))
    names.push_back(line.substr(0, line.find(' ')));
  Result r = RunProgram(Cli(), {"--compare=all", "--workload=fib", "--jobs=2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = Lines(r.out);
  ASSERT_EQ(lines.size(), names.size() + 2) << r.out;
  EXPECT_EQ(lines[0], "39088169 24157817 14930352 9227465 5702887 3524578");
  EXPECT_EQ(lines[1],
            "backend       jobs     wall (s)   speedup        tasks/s");
  EXPECT_EQ(lines[2].rfind("sequential       1 ", 0), 0u) << lines[2];
  EXPECT_NE(lines[2].find("    1.00x "), std::string::npos) << lines[2];
  for (std::size_t k = 2; k < lines.size(); ++k) {
    EXPECT_EQ(lines[k].size(), lines[1].size()) << "not aligned: " << lines[k];
    EXPECT_EQ(lines[k][lines[1].find("speedup") + 6], 'x') << lines[k];
  }
}

TEST(CliCompare, UnknownBackendInList) {
  Result r = RunProgram(Cli(), {"--compare=thread,turbo"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Lines(r.err)[0].rfind(
                "run: unknown backend 'turbo'; valid backends: ", 0),
            0u)
      << r.err;
}

TEST(CliCommands, OutputGroupedAndExitCodesSummarized) {
  // Two commands print three lines each with pauses between them, at the
  // same time: grouped output keeps each command's lines together.
  const std::string cmds =
      "echo a1; sleep 0.1; echo a2; sleep 0.1; echo a3\n"
      "# a comment, skipped\n"
      "\n"
      "echo b1; sleep 0.1; echo b2; sleep 0.1; echo b3\n"
      "echo oops >&2; exit 3\n"
      "kill -9 $$\n";
  Result r = RunProgram(Cli(), {"--commands=-", "--jobs=4"}, cmds);
  EXPECT_EQ(r.exit_code, 2) << r.err;  // two failed, as GNU parallel counts
  const std::string out = r.out;
  EXPECT_TRUE(out.find("a1\na2\na3\n") != std::string::npos) << out;
  EXPECT_TRUE(out.find("b1\nb2\nb3\n") != std::string::npos) << out;
  EXPECT_EQ(out.size(), 18u) << out;
  auto err = Lines(r.err);
  ASSERT_EQ(err.size(), 4u) << r.err;
  EXPECT_EQ(err[0], "oops");
  EXPECT_EQ(err[1].rfind("commands: 4 run, 2 ok, 2 failed, 4 at a time, ", 0),
            0u)
      << err[1];
  EXPECT_EQ(err[2], "  [3] exit 3: echo oops >&2; exit 3");
  EXPECT_EQ(err[3], "  [4] killed by signal 9 (Killed): kill -9 $$");
}

TEST(CliCommands, AllSucceedFromAFile) {
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR")) + "/cmds.txt";
  std::ofstream(path) << "true\necho x\n";
  Result r = RunProgram(Cli(), {"--commands=" + path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "x\n");
  r = RunProgram(Cli(), {"--commands=/nonexistent/cmds"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Lines(r.err)[0].rfind(
                "run: --commands=/nonexistent/cmds: cannot open: ", 0),
            0u)
      << r.err;
}

// Pids of processes whose command line contains `marker`.
std::vector<int> ProcessesWith(const std::string& marker) {
  std::vector<int> pids;
  DIR* d = opendir("/proc");
  while (dirent* e = readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    // Read with read(2): a process that exits while it is read makes the
    // read fail with ESRCH, which an ifstream turns into an exception.
    std::string cmdline;
    const int fd =
        open(("/proc/" + std::string(e->d_name) + "/cmdline").c_str(),
             O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[4096];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
      cmdline.append(buf, static_cast<size_t>(got));
    }
    close(fd);
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) != std::string::npos &&
        cmdline.find("--commands") == std::string::npos) {
      pids.push_back(pid);
    }
  }
  closedir(d);
  return pids;
}

TEST(CliCommands, CtrlCStopsThemAll) {
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR")) + "/long.txt";
  std::ofstream(path) << "sleep 31.25\nsleep 31.25\nsh -c 'sleep 31.25'\n";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::string arg1 = "--commands=" + path, arg2 = "--jobs=3";
  char* argv[] = {const_cast<char*>(Cli().c_str()), arg1.data(), arg2.data(),
                  nullptr};
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, Cli().c_str(), &fa, nullptr, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  // Wait until all three commands run.
  for (int i = 0; i < 100 && ProcessesWith("sleep 31.25").size() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(ProcessesWith("sleep 31.25").size(), 3u);
  const auto sent = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    ASSERT_LT(std::chrono::steady_clock::now() - sent, std::chrono::seconds(5))
        << "still running";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - sent, std::chrono::seconds(2));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(ProcessesWith("sleep 31.25").empty());
}

TEST(CliProgress, BarOnlyOnATerminal) {
  // script(1) gives the CLI a pseudo-terminal.
  Result tty = RunProgram(
      "/usr/bin/script",
      {"-qec", Cli() + " --workload=sleep --tasks=30 --sleep-ms=20 --progress",
       "/dev/null"});
  ASSERT_EQ(tty.exit_code, 0) << tty.err;
  EXPECT_NE(tty.out.find("\r\033[K["), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("] 100% 30/30 "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find(" tasks/s "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("ETA "), std::string::npos) << tty.out;

  Result pipe = RunProgram(
      Cli(), {"--workload=sleep", "--tasks=30", "--sleep-ms=20", "--progress"});
  ASSERT_EQ(pipe.exit_code, 0) << pipe.err;
  EXPECT_TRUE(pipe.err.empty()) << pipe.err;
  EXPECT_EQ(Lines(pipe.out)[0], "30");
}

}  // namespace
}  // namespace fanout::testing
