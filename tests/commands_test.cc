// Commands mode, GNU parallel's daily core: the input forms and replacement
// strings as functions, then the CLI run as a process — output modes, job log
// and resume, retries, halt rules, timeouts, and that no command (nor what it
// started in the background) outlives its run.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "commands/halt.h"
#include "commands/input.h"
#include "commands/joblog.h"
#include "commands/process_guard.h"
#include "commands/run_command.h"
#include "core/errors.h"
#include "core/internal/fd.h"
#include "tests/subprocess.h"

extern char** environ;

namespace fanout::testing {
namespace {

using commands::BuildJobs;
using commands::CommandLine;
using commands::Job;
using Clock = std::chrono::steady_clock;

std::string Tmp(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)),
                     std::istreambuf_iterator<char>());
}

// /proc/PID/cmdline, or "" when the process is gone (reading the file of a
// process that is exiting fails with ESRCH).
std::string Cmdline(const char* pid) {
  const int fd = open(("/proc/" + std::string(pid) + "/cmdline").c_str(),
                      O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string text;
  char buf[4096];
  for (ssize_t got; (got = read(fd, buf, sizeof(buf))) > 0;) {
    text.append(buf, static_cast<std::size_t>(got));
  }
  close(fd);
  return text;
}

// Pids of live (not zombie) processes whose command line contains `marker`
// and is not the CLI's own.
std::vector<int> ProcessesWith(const std::string& marker) {
  std::vector<int> pids;
  DIR* d = opendir("/proc");
  while (dirent* e = readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::string cmdline = Cmdline(e->d_name);
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) != std::string::npos &&
        cmdline.find(Cli()) == std::string::npos &&
        cmdline.find("/bin/sh -c " + Cli()) == std::string::npos) {
      pids.push_back(pid);
    }
  }
  closedir(d);
  return pids;
}

// Pids of live processes whose command line is `words` (its arguments
// joined with spaces), such as "sleep 102.61".
std::vector<int> ProcessesRunning(const std::string& words) {
  std::vector<int> pids;
  for (const int pid : ProcessesWith(words)) {
    std::string cmdline = Cmdline(std::to_string(pid).c_str());
    if (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline == words) pids.push_back(pid);
  }
  return pids;
}

// Waits up to `limit` for no process to run `words`; kills any left, so
// that a failed test leaves nothing behind.
bool NoneRunningWithin(const std::string& words,
                       std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end && !ProcessesRunning(words).empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::vector<int> left = ProcessesRunning(words);
  for (const int pid : left) kill(pid, SIGKILL);
  return left.empty();
}

// Waits up to `limit` for no process to carry `marker`.
bool GoneWithin(const std::string& marker, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (ProcessesWith(marker).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ProcessesWith(marker).empty();
}

// Starts the CLI with `args`, its output to /dev/null.
pid_t Spawn(const std::vector<std::string>& args) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> storage = args;
  std::vector<char*> argv = {const_cast<char*>(Cli().c_str())};
  for (std::string& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  posix_spawn(&pid, Cli().c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Waits until `count` processes carry `marker`.
bool Running(const std::string& marker, std::size_t count) {
  for (int i = 0; i < 200; ++i) {
    if (ProcessesWith(marker).size() >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

// A small tmpfs at a directory of its own, for a disk that fills up;
// unmounted when it goes. Mounting needs root: `error` says why it failed.
class SmallDisk {
 public:
  explicit SmallDisk(const std::string& name, const std::string& size)
      : dir_(Tmp(name)) {
    mkdir(dir_.c_str(), 0755);
    if (mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) !=
        0) {
      error_ = "cannot mount a tmpfs at " + dir_ + ": " + std::strerror(errno);
    }
  }
  ~SmallDisk() {
    if (error_.empty()) umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  const std::string& error() const { return error_; }
  const std::string& dir() const { return dir_; }
  // Gives it `size` in all (room for more once it is full).
  bool Grow(const std::string& size) {
    return mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT,
                 ("size=" + size).c_str()) == 0;
  }

 private:
  std::string dir_;
  std::string error_;
};

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// ---- the input forms and replacement strings, as functions ----

TEST(CommandInput, EveryReplacementString) {
  const Job job{.seq = 7, .args = {"dir/sub/file.tar.gz"}};
  EXPECT_EQ(CommandLine("x {}", job, 3), "x dir/sub/file.tar.gz");
  EXPECT_EQ(CommandLine("x {.}", job, 3), "x dir/sub/file.tar");
  EXPECT_EQ(CommandLine("x {/}", job, 3), "x file.tar.gz");
  EXPECT_EQ(CommandLine("x {//}", job, 3), "x dir/sub");
  EXPECT_EQ(CommandLine("x {/.}", job, 3), "x file.tar");
  EXPECT_EQ(CommandLine("x {#}", job, 3), "x 7");
  EXPECT_EQ(CommandLine("x {%}", job, 3), "x 3");
  EXPECT_EQ(CommandLine("x {1} {1/}", job, 3),
            "x dir/sub/file.tar.gz file.tar.gz");
  // GNU parallel's edge cases: no directory, a dot in a directory name.
  const Job plain{.seq = 1, .args = {"a.b/c"}};
  EXPECT_EQ(CommandLine("{.} {//}", plain, 1), "a.b/c a.b");
  const Job bare{.seq = 1, .args = {"file"}};
  EXPECT_EQ(CommandLine("{//} {.}", bare, 1), ". file");
  // Not replacement strings: left alone.
  EXPECT_EQ(CommandLine("awk '{print}' {}", bare, 1), "awk '{print}' file");
}

TEST(CommandInput, ArgumentAppendedWhenNoReplacement) {
  const Job job{.seq = 1, .args = {"a b"}};
  EXPECT_EQ(CommandLine("gzip -9", job, 1), "gzip -9 'a b'");
  // Any replacement string, {#} too, stops the appending (GNU parallel's
  // rule).
  EXPECT_EQ(CommandLine("echo {#}", job, 1), "echo 1");
  // Without a template the arguments are the command, unquoted.
  EXPECT_EQ(CommandLine("", {.seq = 1, .args = {"echo $HOME"}}, 1),
            "echo $HOME");
}

TEST(CommandInput, ShellQuoting) {
  EXPECT_EQ(commands::ShellQuote("plain-name_1.txt"), "plain-name_1.txt");
  EXPECT_EQ(commands::ShellQuote(""), "''");
  EXPECT_EQ(commands::ShellQuote("a b"), "'a b'");
  EXPECT_EQ(commands::ShellQuote("it's $HOME"), "'it'\\''s $HOME'");
}

TEST(CommandInput, GroupsGiveTheirCrossProduct) {
  commands::CommandInput in;
  in.groups = {{"a", "b"}, {"1", "2", "3"}};
  const std::vector<Job> jobs = BuildJobs(in);
  ASSERT_EQ(jobs.size(), 6u);
  std::vector<std::string> got;
  got.reserve(jobs.size());
  for (const Job& j : jobs) {
    got.push_back(std::to_string(j.seq) + j.args[0] + j.args[1]);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"1a1", "2a2", "3a3", "4b1", "5b2",
                                           "6b3"}));
  in.groups.push_back({});
  EXPECT_TRUE(BuildJobs(in).empty());
}

TEST(Joblog, FormatAndParse) {
  EXPECT_EQ(commands::JoblogHeader(),
            "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\t"
            "Signal\tCommand\n");
  const std::string row = commands::FormatJoblogRow({.seq = 3,
                                                     .start = 1700000000.25,
                                                     .runtime = 1.5,
                                                     .receive = 12,
                                                     .exitval = 2,
                                                     .command = "echo a\tb"});
  EXPECT_EQ(row, "3\t:\t1700000000.250\t     1.500\t0\t12\t2\t0\techo a\tb\n");
  const auto rows =
      commands::ParseJoblog(commands::JoblogHeader() + row + "junk\n");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows.at(3).command, "echo a\tb");
  EXPECT_EQ(rows.at(3).exitval, 2);
  EXPECT_FALSE(rows.at(3).ok());
}

TEST(Halt, Rules) {
  using commands::HaltRule;
  EXPECT_EQ(commands::ParseHalt("never").when, HaltRule::When::kNever);
  const HaltRule now = commands::ParseHalt("now,fail=1");
  EXPECT_EQ(now.when, HaltRule::When::kNow);
  EXPECT_FALSE(commands::ShouldHalt(now, {.total = 9, .succeeded = 5}));
  EXPECT_TRUE(commands::ShouldHalt(now, {.total = 9, .failed = 1}));
  const HaltRule pct = commands::ParseHalt("soon,fail=50%");
  EXPECT_FALSE(commands::ShouldHalt(pct, {.total = 4, .failed = 1}));
  EXPECT_TRUE(commands::ShouldHalt(pct, {.total = 4, .failed = 2}));
  const HaltRule ok = commands::ParseHalt("now,success=2");
  EXPECT_TRUE(
      commands::ShouldHalt(ok, {.total = 4, .failed = 1, .succeeded = 2}));
  EXPECT_TRUE(commands::ShouldHalt(commands::ParseHalt("soon,done=3"),
                                   {.total = 4, .failed = 1, .succeeded = 2}));
  EXPECT_EQ(commands::ParseHalt("2").when, HaltRule::When::kNow);
  for (const char* bad : {"now", "later,fail=1", "now,fail=0", "now,fail=x",
                          "soon,fail=101%", "now,oops=1"}) {
    EXPECT_THROW(commands::ParseHalt(bad), fanout::UsageError) << bad;
  }
}

// ---- the CLI ----

TEST(Commands, ArgumentsAfterTripleColonInInputOrder) {
  Result r = RunProgram(Cli(), {"-k", "--jobs=4", "echo", "{#}", "{}",
                                ":::", "a", "b", ":::", "1", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 a 1\n2 a 2\n3 b 1\n4 b 2\n");
  EXPECT_EQ(
      Lines(r.err)[0].rfind("commands: 4 run, 4 ok, 0 failed, 4 at a ", 0), 0u)
      << r.err;
}

TEST(Commands, GnuShortFlags) {
  // -k is --keep-order; -j N and -jN are --jobs.
  for (const auto& jobs : std::vector<std::vector<std::string>>{
           {"-j", "3"}, {"-j3"}, {"--jobs", "3"}}) {
    std::vector<std::string> args = jobs;
    args.insert(args.end(), {"-k", ":::", "sleep 0.2; echo a", "echo b"});
    Result r = RunProgram(Cli(), args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "a\nb\n");
    EXPECT_NE(r.err.find(", 3 at a time, "), std::string::npos) << r.err;
  }
}

TEST(Commands, NoTemplateRunsTheArguments) {
  Result r = RunProgram(Cli(), {"-k", ":::", "echo one", "echo two | tr o 0"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "one\ntw0\n");
}

TEST(Commands, FileNamesWithSpacesQuotesAndDollarRunAsThemselves) {
  const std::vector<std::string> names = {"a b",  "it's",       "$HOME",
                                          "x\"y", "semi;colon", "*"};
  std::vector<std::string> args = {"-k", "printf", "'[%s]\\n'", ":::"};
  args.insert(args.end(), names.begin(), names.end());
  Result r = RunProgram(Cli(), args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[a b]\n[it's]\n[$HOME]\n[x\"y]\n[semi;colon]\n[*]\n");
}

TEST(Commands, LinesOfStdinAreArguments) {
  Result r = RunProgram(Cli(), {"-k", "--", "echo", "got"}, "x 1\n\ny\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Each line one argument: echo sees "x 1" as one word, and an empty one.
  EXPECT_EQ(r.out, "got x 1\ngot \ngot y\n");
  r = RunProgram(Cli(), {"-k", "--", "printf", "'<%s>'"}, "x  1\n\n");
  EXPECT_EQ(r.out, "<x  1><>");
}

// The CLI with a pipe on its stdin and one on its stdout.
struct Piped {
  pid_t pid = -1;
  int in = -1;   // write end: the CLI's stdin
  int out = -1;  // read end: the CLI's stdout
};

Piped SpawnPiped(const std::vector<std::string>& args) {
  int in[2], out[2];
  EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> storage = args;
  std::vector<char*> argv = {const_cast<char*>(Cli().c_str())};
  for (std::string& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  Piped p;
  posix_spawn(&p.pid, Cli().c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  p.in = in[1];
  p.out = out[0];
  return p;
}

// What `fd` gives within `limit` (until end of file or the time is up).
std::string ReadFor(int fd, std::chrono::milliseconds limit) {
  std::string got;
  const auto end = Clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          end - Clock::now())
                          .count();
    pollfd p = {fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[256];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

TEST(Commands, StdinLinesRunAsTheyCome) {
  Piped p = SpawnPiped({"-k", "--", "echo", "got"});
  ASSERT_EQ(write(p.in, "a\n", 2), 2);
  // The first line runs while stdin is still open.
  EXPECT_EQ(ReadFor(p.out, std::chrono::milliseconds(1500)), "got a\n");
  ASSERT_EQ(write(p.in, "b\n# not a comment here\n", 23), 23);
  close(p.in);
  EXPECT_EQ(ReadFor(p.out, std::chrono::seconds(5)),
            "got b\ngot # not a comment here\n");
  close(p.out);
  EXPECT_EQ(WaitExit(p.pid), 0);
}

TEST(Commands, CtrlCWhileWaitingForStdin) {
  Piped p = SpawnPiped({"--commands=-"});
  ASSERT_EQ(write(p.in, "echo first\n", 11), 11);
  EXPECT_EQ(ReadFor(p.out, std::chrono::milliseconds(1500)), "first\n");
  const auto sent = Clock::now();
  kill(p.pid, SIGINT);
  EXPECT_EQ(WaitExit(p.pid), 130);
  EXPECT_LT(Clock::now() - sent, std::chrono::seconds(2));
  close(p.in);
  close(p.out);
}

TEST(Commands, QuadColonReadsArgumentsFromFiles) {
  std::ofstream(Tmp("args1")) << "a\nb\n";
  std::ofstream(Tmp("args2")) << "1\n";
  Result r =
      RunProgram(Cli(), {"-k", "echo", "{1}-{2}-{3}", "::::", Tmp("args1"),
                         Tmp("args2"), ":::", "z"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a-1-z\nb-1-z\n");
}

TEST(Commands, DryRunPrintsAndRunsNothing) {
  Result r =
      RunProgram(Cli(), {"--dry-run", "--jobs=2", "touch",
                         Tmp("never-") + "{%}", "{}", ":::", "a", "b", "c"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "touch " + Tmp("never-") + "1 a\ntouch " + Tmp("never-") +
                       "2 b\ntouch " + Tmp("never-") + "1 c\n");
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(access((Tmp("never-") + "1").c_str(), F_OK), 0);
}

TEST(Commands, KeepOrderPrintsInInputOrder) {
  Result r = RunProgram(Cli(), {"-k", "--jobs=3", ":::", "sleep 0.4; echo 1",
                                "echo 2", "sleep 0.2; echo 3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n2\n3\n");
  // Grouped (the default) prints as they finish.
  r = RunProgram(Cli(), {"--jobs=3", ":::", "sleep 0.4; echo 1", "echo 2",
                         "sleep 0.2; echo 3"});
  EXPECT_EQ(r.out, "2\n3\n1\n");
}

TEST(Commands, LineBufferInterleavesWholeLines) {
  Result r = RunProgram(
      Cli(), {"--line-buffer", "--jobs=2",
              ":::", "printf a; sleep 0.2; echo A; sleep 0.4; echo B",
              "sleep 0.4; echo c"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "aA\nc\nB\n");
}

TEST(Commands, TagPrefixesEachLine) {
  Result r = RunProgram(Cli(), {"-k", "--tag", "printf", "'%s\\n%s'", "{}",
                                "tail", ":::", "a", "b c"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "a\ta\na\ttail"
            "b c\tb c\nb c\ttail");
}

TEST(Commands, BinaryAndLongOutputIntact) {
  Result r = RunProgram(Cli(), {"--jobs=2", ":::", "printf 'x\\000\\377y'",
                                "head -c 3000000 /dev/zero"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.size(), 3000004u);
  EXPECT_NE(r.out.find(std::string("x\0\377y", 4)), std::string::npos);
}

TEST(Commands, ResultsKeepEachCommandsFiles) {
  const std::string dir = Tmp("results");
  Result r = RunProgram(
      Cli(), {"--results=" + dir, "--", "sh", "-c",
              "'echo out-$0; echo err-$0 >&2; exit $0'", ":::", "0", "3"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(Slurp(dir + "/1/stdout"), "out-0\n");
  EXPECT_EQ(Slurp(dir + "/1/stderr"), "err-0\n");
  EXPECT_EQ(Slurp(dir + "/1/exitval"), "0\n");
  EXPECT_EQ(Slurp(dir + "/2/exitval"), "3\n");
  EXPECT_EQ(Slurp(dir + "/2/cmd"),
            "sh -c 'echo out-$0; echo err-$0 >&2; exit $0' 3\n");
}

// Issue 23 item 2: --results on a disk that fills up. Each job whose files
// cannot all be written is reported and counted failed (the exit code),
// and leaves nothing half written; the jobs kept are complete.
TEST(Commands, ResultsOnAFullDiskAreReportedAndCountedFailed) {
  SmallDisk disk("small-results", "64k");
  if (!disk.error().empty()) GTEST_SKIP() << disk.error();
  const std::string dir = disk.dir() + "/r";
  Result r = RunProgram(
      Cli(), {"--jobs=1", "--results=" + dir, "head -c 30000 /dev/zero # {}",
              ":::", "1", "2", "3", "4", "5", "6"});
  std::size_t kept = 0, lost = 0;
  for (int seq = 1; seq <= 6; ++seq) {
    const std::string d = dir + "/" + std::to_string(seq);
    const std::string line = "  [" + std::to_string(seq) +
                             "] exit 0, but --results not kept (cannot write " +
                             d +
                             "/stdout: No space left on device): head -c "
                             "30000 /dev/zero # " +
                             std::to_string(seq);
    if (access(d.c_str(), F_OK) == 0) {
      ++kept;
      EXPECT_EQ(Slurp(d + "/stdout").size(), 30000u) << d;
      EXPECT_EQ(Slurp(d + "/exitval"), "0\n") << d;
      EXPECT_EQ(r.err.find(line), std::string::npos) << r.err;
    } else {
      ++lost;
      EXPECT_NE(r.err.find(line), std::string::npos) << r.err;
    }
  }
  EXPECT_GE(kept, 1u);
  EXPECT_GE(lost, 1u);
  EXPECT_EQ(static_cast<std::size_t>(r.exit_code), lost) << r.err;
  EXPECT_NE(r.err.find("commands: 6 run, " + std::to_string(kept) + " ok, " +
                       std::to_string(lost) + " failed"),
            std::string::npos)
      << r.err;
}

// A --results path that cannot hold results is refused before any command
// runs: a file, a directory that cannot be written (chattr +i, as root).
// One made immutable mid-run: every command after counts as failed.
TEST(Commands, ResultsThatCannotBeWrittenAreRefusedOrCountedFailed) {
  const std::string file = Tmp("results-file"), ran = Tmp("results-ran");
  std::ofstream(file) << "x";
  Result r = RunProgram(Cli(), {"--results=" + file, ":::", "touch " + ran});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err, "run: --results=" + file +
                       ": exists and is not a directory; valid: a directory "
                       "that can be written (made when missing), as in "
                       "--results=out\n");
  EXPECT_NE(access(ran.c_str(), F_OK), 0) << "a command ran";

  const std::string dir = Tmp("results-immutable");
  mkdir(dir.c_str(), 0755);
  if (std::system(("chattr +i " + dir + " 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << "chattr +i is refused here (it needs root and a file "
                    "system that has the attribute)";
  }
  r = RunProgram(Cli(), {"--results=" + dir, ":::", "touch " + ran});
  ASSERT_EQ(std::system(("chattr -i " + dir).c_str()), 0);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("run: --results=" + dir +
                            ": cannot create directories in it: Operation not "
                            "permitted; valid: a directory",
                        0),
            0u)
      << r.err;
  EXPECT_NE(access(ran.c_str(), F_OK), 0) << "a command ran";

  // The first command makes it immutable: no job's results can be kept.
  r = RunProgram(Cli(), {"--jobs=1", "--results=" + dir,
                         ":::", "chattr +i " + dir, "echo b", "echo c"});
  ASSERT_EQ(std::system(("chattr -i " + dir).c_str()), 0);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "b\nc\n");
  EXPECT_NE(r.err.find("  [2] exit 0, but --results not kept (cannot create " +
                       dir + "/2: Operation not permitted): echo b"),
            std::string::npos)
      << r.err;
}

// GNU parallel's exit code: the number of failed commands, 101 for more
// than 100.
TEST(Commands, ExitCodeCountsFailuresUpTo101) {
  std::vector<std::string> args = {"--jobs=8", ":::"};
  for (int i = 0; i < 3; ++i) args.push_back("false");
  args.push_back("true");
  EXPECT_EQ(RunProgram(Cli(), args).exit_code, 3);
  args.resize(2);
  for (int i = 0; i < 150; ++i) args.push_back(i % 3 == 0 ? "true" : "false");
  EXPECT_EQ(RunProgram(Cli(), args).exit_code, 100);
  for (int i = 0; i < 5; ++i) args.push_back("false");
  EXPECT_EQ(RunProgram(Cli(), args).exit_code, 101);
}

TEST(Commands, JoblogRowsParsed) {
  const std::string log = Tmp("joblog");
  Result r = RunProgram(Cli(), {"--joblog=" + log, "--jobs=2", ":::", "echo hi",
                                "exit 4", "kill -TERM $$"});
  EXPECT_EQ(r.exit_code, 2) << r.err;  // GNU parallel: the failures counted
  const std::string text = Slurp(log);
  EXPECT_EQ(text.rfind(commands::JoblogHeader(), 0), 0u) << text;
  EXPECT_EQ(Lines(text).size(), 4u) << text;
  const auto rows = commands::ParseJoblog(text);
  ASSERT_EQ(rows.size(), 3u) << text;
  EXPECT_EQ(rows.at(1).host, ":");
  EXPECT_EQ(rows.at(1).command, "echo hi");
  EXPECT_EQ(rows.at(1).receive, 3u);
  EXPECT_TRUE(rows.at(1).ok());
  EXPECT_EQ(rows.at(2).exitval, 4);
  EXPECT_EQ(rows.at(2).signal, 0);
  EXPECT_EQ(rows.at(3).exitval, 0);
  EXPECT_EQ(rows.at(3).signal, SIGTERM);
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  for (const auto& [seq, row] : rows) {
    EXPECT_LT(now - row.start, 60) << seq;
    EXPECT_GE(row.runtime, 0) << seq;
  }
}

TEST(Commands, ResumeAfterCtrlCRunsOnlyTheRest) {
  const std::string log = Tmp("resume.log"), flag = Tmp("resume.flag"),
                    cmds = Tmp("resume.txt");
  std::ofstream(cmds) << "echo 1\necho 2\ntest -e " << flag
                      << " || sleep 100.31; echo 3\necho 4\n";
  const pid_t pid =
      Spawn({"--commands=" + cmds, "--jobs=1", "--joblog=" + log});
  ASSERT_TRUE(Running("sleep 100.31", 1));
  kill(pid, SIGINT);
  EXPECT_EQ(WaitExit(pid), 130);
  EXPECT_TRUE(GoneWithin("sleep 100.31", std::chrono::seconds(2)));
  auto rows = commands::ParseJoblog(Slurp(log));
  ASSERT_EQ(rows.size(), 2u) << Slurp(log);
  std::ofstream(flag) << "";
  Result r = RunProgram(
      Cli(), {"--commands=" + cmds, "--jobs=1", "--joblog=" + log, "--resume"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "3\n4\n");
  EXPECT_NE(r.err.find("commands: 2 skipped, already in --joblog="),
            std::string::npos)
      << r.err;
  rows = commands::ParseJoblog(Slurp(log));
  EXPECT_EQ(rows.size(), 4u);
  EXPECT_EQ(Lines(Slurp(log)).size(), 5u);  // one header
}

// Issue 23 item 1: a job log on a disk that fills up keeps whole rows only,
// the run says so and exits non-zero (no "ok" for a command without its
// row), starts nothing more, and --resume then runs each command exactly
// once more than the log holds: none lost, none run twice.
TEST(Commands, JoblogOnAFullDiskIsAnErrorAndResumeLosesNothing) {
  SmallDisk disk("small-joblog", "64k");
  if (!disk.error().empty()) GTEST_SKIP() << disk.error();
  const std::string log = disk.dir() + "/jl";
  std::vector<std::string> args = {"--joblog=" + log, "echo", "{}", ":::"};
  for (int i = 1; i <= 2000; ++i) args.push_back(std::to_string(i));
  Result r = RunProgram(Cli(), args);
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_NE(
      r.err.find("run: error: --joblog=" + log + ": cannot write the row of ["),
      std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("]: No space left on device; no command started "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(", but its --joblog row was not written (No space left "
                       "on device): echo "),
            std::string::npos)
      << r.err;
  std::string text = Slurp(log);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "a torn last row";
  auto rows = commands::ParseJoblog(text);
  const std::size_t kept = rows.size();
  EXPECT_EQ(Lines(text).size(), kept + 1);  // the header and whole rows
  ASSERT_LT(kept, 2000u);
  ASSERT_GT(kept, 100u);
  // Every command that ran printed its line; those without a row count as
  // failed, and are the exit code.
  const std::size_t ran = Lines(r.out).size();
  EXPECT_GT(ran, kept);
  EXPECT_EQ(static_cast<std::size_t>(r.exit_code), ran - kept) << r.err;

  ASSERT_TRUE(disk.Grow("4m"));
  args.insert(args.begin(), "--resume");
  r = RunProgram(Cli(), args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 2000 - kept);
  text = Slurp(log);
  rows = commands::ParseJoblog(text);
  ASSERT_EQ(rows.size(), 2000u);
  EXPECT_EQ(Lines(text).size(), 2001u);  // no row twice
  for (const auto& [seq, row] : rows) {
    EXPECT_EQ(row.command, "echo " + std::to_string(seq));
  }
  r = RunProgram(Cli(), args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("commands: 2000 skipped"), std::string::npos) << r.err;
}

// A log whose last row was cut short (a kill in the middle of its write):
// --resume cuts it off and says so, and that row's command runs again with
// a row of its own, not written onto the torn one.
TEST(Commands, ResumeCutsATornLastRow) {
  const std::string log = Tmp("torn.log");
  const std::string torn = "3\t:\t1700000";
  std::ofstream(log, std::ios::binary)
      << commands::JoblogHeader()
      << commands::FormatJoblogRow({.seq = 1, .command = "echo 1"})
      << commands::FormatJoblogRow({.seq = 2, .command = "echo 2"}) << torn;
  Result r = RunProgram(Cli(), {"-k", "--jobs=1", "--joblog=" + log, "--resume",
                                "echo", "{}", ":::", "1", "2", "3", "4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "3\n4\n");
  EXPECT_NE(
      r.err.find("commands: --joblog=" + log + " ended in a row cut short (" +
                 std::to_string(torn.size()) +
                 " bytes): cut off, its command runs again"),
      std::string::npos)
      << r.err;
  const std::string text = Slurp(log);
  const auto rows = commands::ParseJoblog(text);
  ASSERT_EQ(rows.size(), 4u) << text;
  EXPECT_EQ(Lines(text).size(), 5u) << text;
  for (const auto& [seq, row] : rows) {
    EXPECT_EQ(row.command, "echo " + std::to_string(seq)) << text;
    EXPECT_EQ(row.exitval, 0) << text;
  }
}

// Issue 23 item 4: SIGTERM or SIGINT while commands end by themselves. Each
// command writes "E seq" when it has done its work, and "T seq" from its
// TERM trap when it was stopped. Every command that ended by itself (E, no
// T) has its job log row, so --resume does not run it again; no command
// without E has a row.
TEST(Commands, EveryCommandThatEndedBeforeASignalHasItsRow) {
  const std::string input = Tmp("signal-input"), side = Tmp("signal-side"),
                    log = Tmp("signal.log");
  {
    std::ofstream in(input);
    for (int i = 1; i <= 400; ++i) in << i << "\n";
  }
  const std::string cmd = "trap 'echo T {#} >> " + side +
                          "; exit 143' TERM; sleep 0.0$(( {} % 5 )); echo E "
                          "{#} >> " +
                          side;
  for (int cycle = 0; cycle < 12; ++cycle) {
    std::remove(side.c_str());
    const pid_t pid =
        Spawn({"--jobs=4", "--joblog=" + log, cmd, "::::", input});
    ASSERT_TRUE(Running("sleep 0.0", 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 40 * cycle));
    const int sig = cycle % 2 == 0 ? SIGTERM : SIGINT;
    kill(pid, sig);
    EXPECT_EQ(WaitExit(pid), 130);
    std::set<std::size_t> ended, stopped;
    for (const std::string& line : Lines(Slurp(side))) {
      const std::size_t seq = std::stoul(line.substr(2));
      (line[0] == 'E' ? ended : stopped).insert(seq);
    }
    const auto rows = commands::ParseJoblog(Slurp(log));
    for (const std::size_t seq : ended) {
      if (stopped.count(seq) == 0) {
        EXPECT_EQ(rows.count(seq), 1u)
            << "command " << seq << " ended by itself before "
            << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << " but has no row";
      }
    }
    for (const auto& [seq, row] : rows) {
      EXPECT_EQ(ended.count(seq), 1u) << "a row for unfinished " << seq;
      EXPECT_TRUE(row.ok()) << seq;
    }
  }
}

TEST(Commands, ResumeFailedRerunsOnlyFailures) {
  const std::string log = Tmp("rf.log"), flag = Tmp("rf.flag");
  const std::vector<std::string> args = {
      "-k",     "--joblog=" + log,         ":::",
      "echo a", "echo b; test -e " + flag, "echo c"};
  Result r = RunProgram(Cli(), args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "a\nb\nc\n");
  std::ofstream(flag) << "";
  std::vector<std::string> again = args;
  again.insert(again.begin(), "--resume-failed");
  r = RunProgram(Cli(), again);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "b\n");
  const auto rows = commands::ParseJoblog(Slurp(log));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(rows.at(2).ok());
  EXPECT_EQ(Lines(Slurp(log)).size(), 5u);  // header, 3 rows, the rerun
}

TEST(Commands, RetriesRunAFailingCommandUpToNTimes) {
  const std::string count = Tmp("tries");
  const std::string cmd =
      "echo x >> " + count + "; test $(wc -l < " + count + ") -ge 3";
  Result r = RunProgram(Cli(), {"--retries=2", ":::", cmd});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(Lines(Slurp(count)).size(), 2u);
  std::remove(count.c_str());
  r = RunProgram(Cli(), {"--retries=3", ":::", cmd});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(Slurp(count)).size(), 3u);
}

// Issue 23 item 5: `seq 8 | run --jobs=1000 --retries=2 --timeout=0.1 ...`
// lost the last attempts of some commands: 1000 launcher threads, made up
// front for lines that never came, left an attempt's shell no time to start
// before its timeout. Lines of stdin now start a thread each while none is
// idle, up to --jobs: with stdin kept open, the ninth line's command sees at
// most the 9 workers, the main thread and the reader. (Before: 1000 and
// more.)
TEST(Commands, StdinLinesStartOnlyTheThreadsTheyNeed) {
  Result r = RunProgram(
      "/bin/sh", {"-c", "(seq 8; sleep 1; echo 9; sleep 1) | " + Cli() +
                            " -k --jobs=1000 -- 'ls /proc/$PPID/task | wc -l "
                            "# {}'"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto counts = Lines(r.out);
  ASSERT_EQ(counts.size(), 9u) << r.out;
  for (const std::string& n : counts) EXPECT_LE(std::stoi(n), 11) << r.out;
  // Every attempt of every line runs: 8 lines of output, 16 attempts.
  std::string lines;
  for (int i = 1; i <= 8; ++i) lines += std::to_string(i) + "\n";
  const std::string side = Tmp("stdin-retries");
  r = RunProgram(Cli(),
                 {"-k", "--jobs=1000", "--retries=2", "--",
                  "echo {} >> " + side + "; echo {}; exit 1"},
                 lines);
  EXPECT_EQ(r.exit_code, 8) << r.err;
  EXPECT_EQ(r.out, lines);
  EXPECT_EQ(Lines(Slurp(side)).size(), 16u);
  // The issue's own case: every attempt is cut by --timeout; each line's
  // last attempt still runs (it did not for 1 to 3 of them), and prints.
  // The 0.1 s is too short here: on a loaded machine sh can take
  // that long to reach its first echo, and a kill before it is right.
  const std::string timed = Tmp("stdin-retries-timeout");
  r = RunProgram(Cli(),
                 {"-k", "--jobs=1000", "--retries=2", "--timeout=1", "--",
                  "echo {} >> " + timed + "; echo {}; sleep 5"},
                 lines);
  EXPECT_EQ(r.exit_code, 8) << r.err;
  EXPECT_EQ(r.out, lines);
  std::vector<std::string> attempts = Lines(Slurp(timed));
  std::sort(attempts.begin(), attempts.end());
  std::vector<std::string> want;
  for (int i = 1; i <= 8; ++i) want.insert(want.end(), 2, std::to_string(i));
  EXPECT_EQ(attempts, want);
  EXPECT_NE(r.err.find("commands: 8 run, 0 ok, 8 failed"), std::string::npos)
      << r.err;
}

// Issue 21: --backend means something in commands mode. sequential runs one
// command at a time whatever --jobs says: in the job log each command
// starts once the one before it ended.
// Issue 21 item 3: GNU parallel's idioms, as its users type them.
// A command with no ::: reads the lines of stdin when stdin is not a
// terminal (seq 3 | run echo); on a terminal (under script(1)) it is a
// usage error saying what to do, on a line of its own.
TEST(CommandsGnu, StdinWithoutDashes) {
  Result r = RunProgram(Cli(), {"-k", "echo"}, "1\n2\n3\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n2\n3\n");
  r = RunProgram(Cli(), {"stray"});  // empty stdin: nothing to run
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  r = RunProgram("/usr/bin/script",
                 {"-qec", Cli() + " echo; echo after", "/dev/null"});
  EXPECT_EQ(r.exit_code, 0) << r.out;  // the exit code of `echo after`
  EXPECT_NE(r.out.find("run: 'echo' has no ::: or :::: arguments, and stdin "
                       "is a terminal; valid: pipe its input (seq 3 | run "
                       "echo), or give them (run echo ::: a b), or a flag "
                       "(flags look like --backend=thread)\r\nafter\r\n"),
            std::string::npos)
      << r.out;
  r = RunProgram("/usr/bin/script", {"-qec", Cli() + " echo", "/dev/null"});
  EXPECT_EQ(r.exit_code, 2) << r.out;
}

// :::+ pairs a group with the one before it; other groups still multiply.
TEST(CommandsGnu, LinkedGroups) {
  Result r = RunProgram(Cli(), {"-k", "echo", "{1}-{2}-{3}", ":::", "a", "b",
                                ":::+", "1", "2", ":::", "x", "y"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a-1-x\na-1-y\nb-2-x\nb-2-y\n");
  r = RunProgram(Cli(), {"echo", ":::", "a", "b", ":::+", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "run: :::+ group 2 has 1 arguments and the group it links to 2; "
            "valid: linked groups of the same length (::: a b :::+ 1 2)\n");
  r = RunProgram(Cli(), {"echo", ":::+", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "run: ':::+' links its arguments to the group before it, and "
            "there is none; valid: ::: a b :::+ 1 2\n");
}

// The "N at a time" of a run's summary.
int AtATime(const std::vector<std::string>& args) {
  Result r = RunProgram(Cli(), args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string& e = r.err;
  const std::size_t end = e.find(" at a time");
  const std::size_t start = e.rfind(", ", end);
  return std::stoi(e.substr(start + 2, end - start - 2));
}

// -j0, +N, N% (GNU parallel's) beside -1 (joblib's: every usable CPU);
// -P as xargs spells it.
TEST(CommandsGnu, JobsForms) {
  const int cpus = AtATime({"--jobs=-1", "true", ":::", "a"});
  EXPECT_EQ(AtATime({"-j100%", "true", ":::", "a"}), cpus);
  EXPECT_EQ(AtATime({"-j", "+2", "true", ":::", "a"}), cpus + 2);
  EXPECT_EQ(AtATime({"-j0", "true", ":::", "a"}), 64 * cpus);
  EXPECT_EQ(AtATime({"-P3", "true", ":::", "a"}), 3);
  EXPECT_EQ(AtATime({"-P", "2", "true", ":::", "a"}), 2);
  Result r = RunProgram(Cli(), {"-j1%", "true", ":::", "a"});
  if (cpus < 100) {
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.err, "run: --jobs=1% is less than one job (" +
                         std::to_string(cpus) +
                         " usable CPUs here); valid: a share that gives at "
                         "least one, as 50%\n");
  }
}

// --joblog +FILE appends (one header); --jl, --dr and --lb are GNU's short
// names of --joblog, --dry-run and --line-buffer.
TEST(CommandsGnu, JoblogAppendAndShortNames) {
  const std::string log = Tmp("append.log");
  std::remove(log.c_str());
  for (int i = 0; i < 2; ++i) {
    Result r = RunProgram(Cli(), {"--joblog", "+" + log, "true", ":::", "a"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  auto lines = Lines(Slurp(log));
  ASSERT_EQ(lines.size(), 3u) << Slurp(log);
  EXPECT_EQ(lines[0], commands::JoblogHeader().substr(
                          0, commands::JoblogHeader().size() - 1));
  EXPECT_EQ(lines[1].substr(0, 2), "1\t");
  EXPECT_EQ(lines[2].substr(0, 2), "1\t");
  std::remove(log.c_str());
  Result r = RunProgram(Cli(), {"--jl", log, "--lb", "echo", ":::", "a"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a\n");
  EXPECT_EQ(Lines(Slurp(log)).size(), 2u);
  r = RunProgram(Cli(), {"--dr", "rm", "{}", ":::", "x"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "rm x\n");
}

// --colsep splits each input line (or argument) into {1} {2} ...; -0 reads
// NUL-ended items of stdin (find -print0).
TEST(CommandsGnu, ColsepAndNull) {
  Result r = RunProgram(Cli(), {"-k", "--colsep=,", "echo", "{2}", "{1}"},
                        "a,1\nb,2\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 a\n2 b\n");
  r = RunProgram(
      Cli(), {"-k", "--colsep", "[-:]", "echo", "{2}{1}", ":::", "x-y", "p:q"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "yx\nqp\n");
  r = RunProgram(Cli(), {"-0", "-k", "echo"}, std::string("a b\0c\nd\0", 8));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a b\nc\nd\n");
  r = RunProgram(Cli(), {"--colsep=(", "echo", ":::", "a"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("run: --colsep=( is not a regular expression (", 0), 0u)
      << r.err;
  r = RunProgram(Cli(), {"-0", "echo", ":::", "a"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "run: --null reads NUL-ended items from stdin as they come; "
            "valid: with stdin as the input (no :::, ::::, --commands=FILE), "
            "without --dry-run and --backend=mpi\n");
  r = RunProgram(Cli(), {"--null", "--workload=sum"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "run: --null is for commands mode, not workload mode; valid: with "
            "--commands=FILE or arguments, as in: run --null echo < items\n");
}

TEST(Commands, SequentialRunsOneAtATime) {
  const std::string log = Tmp("sequential.log");
  std::remove(log.c_str());
  Result r = RunProgram(
      Cli(), {"--backend=sequential", "--jobs=4", "-k", "--joblog=" + log,
              "sleep 0.1; echo {}", ":::", "a", "b", "c", "d"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a\nb\nc\nd\n");
  EXPECT_EQ(Lines(r.err)[0].rfind(
                "commands: 4 run, 4 ok, 0 failed, 1 at a time, ", 0),
            0u)
      << r.err;
  std::map<std::size_t, commands::JoblogRow> rows =
      commands::ParseJoblog(Slurp(log));
  ASSERT_EQ(rows.size(), 4u);
  for (std::size_t seq = 2; seq <= 4; ++seq) {
    // Starttime and JobRuntime are printed to the millisecond.
    EXPECT_GE(rows[seq].start + 0.0015,
              rows[seq - 1].start + rows[seq - 1].runtime)
        << Slurp(log);
  }
  // Lines of stdin too, read as they come.
  r = RunProgram(Cli(), {"--backend=sequential", "--", "echo"}, "1\n2\n3\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n2\n3\n");
}

// tbb launches commands from its arena's threads; a failure is counted as
// on thread; {%} is a slot of at most --jobs.
TEST(Commands, TbbRunsCommands) {
  Result r = RunProgram(Cli(), {"--backend=tbb", "--jobs=2", "-k",
                                "echo {} {%}; exit {}", ":::", "0", "3", "0"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto out = Lines(r.out);
  ASSERT_EQ(out.size(), 3u) << r.out;
  for (const std::string& line : out) {
    EXPECT_TRUE(line.size() == 3 && (line[2] == '1' || line[2] == '2')) << line;
  }
  EXPECT_EQ(out[1].substr(0, 1), "3");
  r = RunProgram(Cli(), {"--backend=tbb", "--jobs=2", "--", "echo"}, "x\ny\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.size(), 4u) << r.out;
}

TEST(Commands, HaltNowFailKillsTheRest) {
  const auto start = Clock::now();
  Result r = RunProgram(
      Cli(), {"--halt=now,fail=1", "--jobs=2", ":::", "sleep 0.2; exit 5",
              "sleep 100.41", "echo never"});
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  const auto err = Lines(r.err);
  ASSERT_EQ(err.size(), 3u) << r.err;
  EXPECT_EQ(err[0].rfind("commands: 1 run, 0 ok, 1 failed, 2 at a time, ", 0),
            0u);
  EXPECT_EQ(err[1], "  [1] exit 5: sleep 0.2; exit 5");
  EXPECT_EQ(err[2],
            "commands: halted after [1] (--halt=now,fail=1): 1 stopped, 1 not "
            "started");
  EXPECT_TRUE(GoneWithin("sleep 100.41", std::chrono::seconds(1)));
}

TEST(Commands, HaltSoonFailLetsRunningOnesFinish) {
  Result r =
      // The failing command waits a moment, so that with two slots the slow
      // one has started when the failure is seen, even on a loaded machine.
      RunProgram(Cli(),
                 {"--halt=soon,fail=1", "--jobs=2", ":::", "sleep 0.2; exit 1",
                  "sleep 0.6; echo slow", "echo never"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "slow\n");
  EXPECT_NE(r.err.find("halted after [1] (--halt=soon,fail=1): 0 stopped, 1 "
                       "not started"),
            std::string::npos)
      << r.err;
}

TEST(Commands, HaltNowSuccessExits0) {
  const auto start = Clock::now();
  Result r =
      RunProgram(Cli(), {"--halt=now,success=1", "--jobs=2",
                         ":::", "sleep 0.2; echo found", "sleep 100.42"});
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "found\n");
  EXPECT_TRUE(GoneWithin("sleep 100.42", std::chrono::seconds(1)));
}

TEST(Commands, HaltOnAPercentageOfFailures) {
  Result r =
      RunProgram(Cli(), {"-k", "--halt=soon,fail=50%", "--jobs=1",
                         ":::", "false", "echo ok", "false", "echo never"});
  EXPECT_EQ(r.exit_code, 2) << r.err;  // two failed
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_NE(r.err.find("halted after [3] (--halt=soon,fail=50%)"),
            std::string::npos)
      << r.err;
}

TEST(Commands, TimeoutKillsTheWholeGroupWithBackgroundGrandchild) {
  const auto start = Clock::now();
  Result r = RunProgram(
      Cli(), {"--timeout=0.5", ":::", "sleep 100.51 & sleep 100.52; echo no",
              "echo fast"});
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "fast\n");
  EXPECT_NE(r.err.find("  [1] timed out after 0.5s (--timeout): sleep 100.51"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(GoneWithin("sleep 100.5", std::chrono::seconds(1)));
}

TEST(Commands, RunTimeoutMsAppliesToCommands) {
  const auto start = Clock::now();
  Result r = RunProgram(Cli(), {"--timeout-ms=500", ":::", "sleep 100.61"});
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("run: error: commands timed out after 500 ms "
                       "(--timeout-ms): 1 stopped, 0 not started"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(GoneWithin("sleep 100.61", std::chrono::seconds(1)));
}

TEST(Commands, BackgroundChildHoldingStdoutDoesNotHoldTheRun) {
  const auto start = Clock::now();
  Result r = RunProgram(Cli(), {":::", "sleep 100.71 & echo started"});
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "started\n");
  EXPECT_TRUE(GoneWithin("sleep 100.71", std::chrono::seconds(1)));
}

TEST(Commands, NothingOutlivesACliKilledBySigkill) {
  const pid_t pid =
      Spawn({"--jobs=2", ":::", "sleep 100.81 & sleep 100.82", "sleep 100.83"});
  ASSERT_TRUE(Running("sleep 100.8", 3));
  kill(pid, SIGKILL);
  EXPECT_EQ(WaitExit(pid), 128 + SIGKILL);
  EXPECT_TRUE(GoneWithin("sleep 100.8", std::chrono::seconds(2)))
      << ProcessesWith("sleep 100.8").size();
}

// Issue 23 item 7: a command's child that leaves its process group and
// session (setsid) is held by the run's cgroup, killed when run is
// SIGKILLed; the cgroup is removed. Where no cgroup can be made, --verbose
// says so and the test is skipped with that line.
TEST(Commands, SetsidChildDoesNotOutliveASigkilledRun) {
  Result v = RunProgram(Cli(), {"--verbose=1", ":::", "true"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  const std::string said = Lines(v.err).at(0);
  if (said.rfind("commands: no cgroup holds the commands (", 0) == 0) {
    GTEST_SKIP() << said;
  }
  const std::string prefix =
      "commands: every command and what it starts run "
      "in cgroup ";
  ASSERT_EQ(said.rfind(prefix, 0), 0u) << said;
  const std::string tail = said.substr(prefix.size());
  const std::string dir =
      tail.substr(tail.find(' ') + 1, tail.find(',') - tail.find(' ') - 1);
  EXPECT_NE(access(dir.c_str(), F_OK), 0) << dir << " is left after the run";

  const pid_t pid = Spawn(
      {"--jobs=2", "setsid sleep 102.61 & sleep 102.62 # {}", ":::", "a", "b"});
  for (int i = 0; i < 200 && (ProcessesRunning("sleep 102.61").size() < 2 ||
                              ProcessesRunning("sleep 102.62").size() < 2);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_EQ(ProcessesRunning("sleep 102.61").size(), 2u);
  kill(pid, SIGKILL);
  EXPECT_EQ(WaitExit(pid), 128 + SIGKILL);
  EXPECT_TRUE(NoneRunningWithin("sleep 102.61", std::chrono::seconds(3)))
      << "a setsid child outlived the SIGKILLed run";
  EXPECT_TRUE(NoneRunningWithin("sleep 102.62", std::chrono::seconds(1)));
}

// The same with cgroup v1's freezer (the hierarchy of machines without v2),
// through the guard itself: a process that made one and runs a command is
// SIGKILLed.
TEST(ProcessGuard, V1FreezerCgroupHoldsASetsidChild) {
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(report[0]);
    commands::ProcessGuard guard(commands::CgroupChoice::kV1);
    const std::string said = guard.containment() + "\n";
    internal::WriteAll(report[1], said.data(), said.size());
    close(report[1]);
    if (guard.cgroup().empty()) _exit(0);
    commands::StopState stop;
    std::string out, err;
    commands::RunOne("setsid sleep 102.71 & sleep 102.72", 0, stop, guard, out,
                     err, {});
    _exit(0);
  }
  close(report[1]);
  std::string said;
  internal::ReadAll(report[0], &said);
  close(report[0]);
  const std::string prefix =
      "every command and what it starts run in cgroup "
      "v1 freezer ";
  if (said.rfind(prefix, 0) != 0) {
    WaitExit(pid);
    GTEST_SKIP() << said;
  }
  const std::string dir =
      said.substr(prefix.size(), said.find(',') - prefix.size());
  for (int i = 0; i < 200 && (ProcessesRunning("sleep 102.71").empty() ||
                              ProcessesRunning("sleep 102.72").empty());
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_EQ(ProcessesRunning("sleep 102.71").size(), 1u);
  EXPECT_EQ(Slurp(dir + "/cgroup.procs").empty(), false) << dir;
  kill(pid, SIGKILL);
  EXPECT_EQ(WaitExit(pid), 128 + SIGKILL);
  EXPECT_TRUE(NoneRunningWithin("sleep 102.71", std::chrono::seconds(3)))
      << "a setsid child outlived its runner in " << dir;
  EXPECT_TRUE(NoneRunningWithin("sleep 102.72", std::chrono::seconds(1)));
  for (int i = 0; i < 100 && access(dir.c_str(), F_OK) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(access(dir.c_str(), F_OK), 0) << dir << " is left";
}

TEST(Commands, NothingOutlivesACliEndedByHangup) {
  const pid_t pid = Spawn({":::", "sleep 100.91 & sleep 100.92"});
  ASSERT_TRUE(Running("sleep 100.9", 2));
  kill(pid, SIGHUP);
  EXPECT_EQ(WaitExit(pid), 128 + SIGHUP);
  EXPECT_TRUE(GoneWithin("sleep 100.9", std::chrono::seconds(2)));
}

TEST(Commands, NothingOutlivesACliEndedBySigpipe) {
  Result r = RunProgram(
      "/bin/sh",
      {"-c", Cli() + " --line-buffer ::: 'echo a; sleep 0.3; echo b; "
                     "sleep 101.01 & sleep 101.02' | head -1"});
  EXPECT_EQ(r.out, "a\n");
  EXPECT_TRUE(GoneWithin("sleep 101.0", std::chrono::seconds(2)));
}

TEST(Commands, CtrlCReachesBackgroundChildren) {
  const pid_t pid = Spawn({":::", "sleep 101.11 & sleep 101.12"});
  ASSERT_TRUE(Running("sleep 101.1", 2));
  kill(pid, SIGINT);
  EXPECT_EQ(WaitExit(pid), 130);
  EXPECT_TRUE(GoneWithin("sleep 101.1", std::chrono::seconds(1)));
}

TEST(Commands, DelaySpacesTheStarts) {
  const std::string log = Tmp("delay.log");
  Result r = RunProgram(Cli(), {"--delay=0.3", "--jobs=3", "--joblog=" + log,
                                ":::", "true", "true", "true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto rows = commands::ParseJoblog(Slurp(log));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_GE(rows.at(2).start - rows.at(1).start, 0.25);
  EXPECT_GE(rows.at(3).start - rows.at(2).start, 0.25);
}

TEST(Commands, ProgressOnlyOnATerminal) {
  // script(1) gives the CLI a pseudo-terminal.
  Result tty = RunProgram(
      "/usr/bin/script",
      {"-qec", Cli() + " --progress ::: true false true", "/dev/null"});
  EXPECT_NE(tty.out.find("\r\033[Kcommands: 3/3 done, 1 failed"),
            std::string::npos)
      << tty.out;
  Result pipe = RunProgram(Cli(), {"--progress", ":::", "true"});
  EXPECT_EQ(pipe.err.find("done,"), std::string::npos) << pipe.err;
}

// Exit 2, nothing on stdout and exactly one `run:` line on stderr.
void ExpectUsageError(const std::vector<std::string>& args,
                      const std::string& prefix, const std::string& in = "") {
  Result r = RunProgram(Cli(), args, in);
  EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const auto err = Lines(r.err);
  ASSERT_EQ(err.size(), 1u) << r.err;
  EXPECT_EQ(err[0].rfind(prefix, 0), 0u) << err[0];
}

TEST(Commands, BadInputIsOneLineAndExit2) {
  ExpectUsageError({"--commands=/tmp"}, "run: --commands=/tmp: is a directory");
  ExpectUsageError({"--commands=/proc/self/mem"},
                   "run: --commands=/proc/self/mem: cannot read: ");
  std::ofstream(Tmp("binary"), std::ios::binary)
      << std::string("echo a\n\0\1\2", 10);
  ExpectUsageError({"--commands=" + Tmp("binary")},
                   "run: --commands=" + Tmp("binary") +
                       ": is not text (a NUL byte at offset 7)");
  ExpectUsageError({"--commands=-"}, "run: --commands=-: is not text",
                   std::string("x\0", 2));
  ExpectUsageError({"echo", "::::", "/nonexistent/args"},
                   "run: :::: /nonexistent/args: cannot open: ");
  ExpectUsageError({"--halt=sometimes", ":::", "true"},
                   "run: --halt=sometimes is invalid; valid: never, ");
  ExpectUsageError({"--timeout=-1", ":::", "true"},
                   "run: --timeout=-1 is invalid; valid: seconds");
  ExpectUsageError({"--retries=x", ":::", "true"},
                   "run: --retries='x' is not a number");
  ExpectUsageError({"--resume", ":::", "true"},
                   "run: --resume needs the log of the run to resume");
  ExpectUsageError({"-k"}, "run: --keep-order is for commands mode");
  ExpectUsageError({"-k", "--line-buffer", ":::", "true"},
                   "run: --keep-order and --line-buffer cannot be combined");
  ExpectUsageError({"--commands=-", "echo", ":::", "a"},
                   "run: --commands=- and the arguments 'echo' both say");
  ExpectUsageError({"--joblog=/nonexistent/dir/log", ":::", "true"},
                   "run: --joblog=/nonexistent/dir/log: cannot open for "
                   "writing: ");
}

// Issue 23 item 9: input read without bound. /dev/zero is refused at its
// first byte (timeout only guards against the old endless read); a line
// longer than any command may be (Linux's MAX_ARG_STRLEN) is refused,
// naming the line and the bound, from a file, ::::, or stdin.
TEST(Commands, InputIsReadWithABoundOnALine) {
  const std::string bound =
      " is longer than 131071 bytes, the most one command may hold (Linux's "
      "limit on one argument of exec, MAX_ARG_STRLEN)";
  for (const auto& [args, line] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--commands=/dev/zero"},
            "run: --commands=/dev/zero: is not text (a NUL byte at offset 0)"},
           {{"echo", "::::", "/dev/zero"},
            "run: :::: /dev/zero: is not text (a NUL byte at offset 0)"}}) {
    std::vector<std::string> timed = {"20", Cli()};
    timed.insert(timed.end(), args.begin(), args.end());
    Result r = RunProgram("/usr/bin/timeout", timed);
    EXPECT_EQ(r.exit_code, 2) << args[0];
    EXPECT_EQ(r.err.rfind(line, 0), 0u) << r.err.substr(0, 300);
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err.substr(0, 300);
  }
  const std::string file = Tmp("long-line");
  std::ofstream(file) << "echo short\n" << std::string(200000, 'a') << "\n";
  Result r = RunProgram(Cli(), {"--commands=" + file});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "run: --commands=" + file + ": line 2" + bound +
                       "; valid: a text file with one item a line, or - for "
                       "stdin\n");
  r = RunProgram(Cli(), {"echo", "::::", file});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("run: :::: " + file + ": line 2" + bound, 0), 0u)
      << r.err.substr(0, 300);
  // Lines of stdin, as they come: the ones before it run, then it stops.
  r = RunProgram("/bin/sh",
                 {"-c",
                  "(echo a; head -c 300000 /dev/zero | tr '\\0' b; echo; "
                  "echo c) | " +
                      Cli() + " -k -- echo"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "a\n");
  EXPECT_NE(r.err.find("run: stdin: line 2" + bound +
                       "; the rest of it was not read"),
            std::string::npos)
      << r.err.substr(0, 300);
  // A command made longer than that by its template fails saying why, not
  // with a bare 127 from an exec that could not start.
  r = RunProgram(Cli(), {"true # " + std::string(200, 'p') + " {}",
                         ":::", std::string(131000, 'w')});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("run: the command is 131208 bytes long, more than the "
                        "131071 one argument of sh -c may hold (Linux's "
                        "MAX_ARG_STRLEN)\n",
                        0),
            0u)
      << r.err.substr(0, 300);
}

}  // namespace
}  // namespace fanout::testing
