// run --checkpoint=FILE as a user would use it: Ctrl+C halfway (exit 130,
// nothing left running), then the same command again prints the reference
// answer, says how many tasks it read back and runs only the rest.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/subprocess.h"

extern char** environ;

namespace fanout::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  unlink(path.c_str());
  return path;
}

// The CLI in its own process group, its stderr read while it runs.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(Cli().c_str()));
    for (const std::string& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, Cli().c_str(), &actions, &attr, argv.data(),
                          environ),
              0);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    err_ = fds[0];
    fcntl(err_, F_SETFL, O_NONBLOCK);
  }
  ~Child() {
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(err_);
  }

  // Reads stderr until a verbose line says `tasks` are done; true then.
  bool WaitForDone(std::size_t tasks, std::chrono::seconds limit) {
    static const std::regex kDone(R"(Done +([0-9]+) )");
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
      Read();
      for (std::sregex_iterator it(err.begin(), err.end(), kDone), end;
           it != end; ++it) {
        if (std::stoul((*it)[1]) >= tasks) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

  void Signal(int sig) { kill(pid_, sig); }

  // Waits for the child; its exit code, or 128 + the signal.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    Read();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // True once no process of the child's group is left (its workers too).
  bool GroupGone() {
    const auto until = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < until) {
      if (kill(-pid_, 0) != 0 && errno == ESRCH) {
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::string err;

 private:
  void Read() {
    char buf[4096];
    for (ssize_t n; (n = read(err_, buf, sizeof(buf))) > 0;) err.append(buf, n);
  }

  pid_t pid_ = -1;
  int err_ = -1;
};

// The count in "run: resumed from FILE: N of TOTAL tasks already done".
std::size_t Resumed(const std::string& err, const std::string& path,
                    std::size_t total) {
  static const std::regex kLine(
      R"(run: resumed from (.*): ([0-9]+) of ([0-9]+) tasks already done\n)");
  std::smatch m;
  if (!std::regex_search(err, m, kLine)) return 0;
  EXPECT_EQ(m[1].str(), path);
  EXPECT_EQ(std::stoul(m[3]), total);
  return std::stoul(m[2]);
}

TEST(CheckpointCli, SumInterruptedThenResumedGivesTheReferenceAnswer) {
  const std::string path = TempPath("sum.ckpt");
  const std::vector<std::string> flags = {"--workload=sum", "--backend=process",
                                          "--jobs=2", "--checkpoint=" + path};
  {
    std::vector<std::string> verbose = flags;
    verbose.push_back("--verbose=50");
    Child child(verbose);
    ASSERT_TRUE(child.WaitForDone(1000, std::chrono::seconds(60))) << child.err;
    child.Signal(SIGINT);
    EXPECT_EQ(child.Wait(), 130) << child.err;
    EXPECT_NE(child.err.find("run: interrupted: "), std::string::npos)
        << child.err;
    EXPECT_TRUE(child.GroupGone()) << "a worker outlived the run";
  }
  Result r = RunProgram(Cli(), flags);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(Lines(r.out)[0], "249972500250000000");
  // Fewer tasks ran than a fresh run's 10000: those read back did not.
  const std::size_t resumed = Resumed(r.err, path, 10000);
  EXPECT_GT(resumed, 0u) << r.err;
  EXPECT_LT(resumed, 10000u) << r.err;
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;

  // Complete now: the file alone gives the answer.
  r = RunProgram(Cli(), flags);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out)[0], "249972500250000000");
  EXPECT_EQ(Resumed(r.err, path, 10000), 10000u) << r.err;

  // Another run's parameters: refused before any task runs.
  r = RunProgram(Cli(),
                 {"--workload=sum", "--tasks=500", "--checkpoint=" + path});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "run: checkpoint " + path +
                       " was written for 10000 tasks of long long (map, key "
                       "'run --workload=sum --tasks=10000'); this call has 500 "
                       "tasks of long long (map, key 'run --workload=sum "
                       "--tasks=500'); valid: the same call, or another "
                       "checkpoint file (delete " +
                       path + " to start over)\n");
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(CheckpointCli, SleepInterruptedOnThreadsThenResumed) {
  const std::string path = TempPath("sleep.ckpt");
  const std::vector<std::string> flags = {
      "--workload=sleep", "--tasks=300",  "--sleep-ms=5",
      "--jobs=2",         "--verbose=50", "--checkpoint=" + path};
  {
    Child child(flags);
    ASSERT_TRUE(child.WaitForDone(100, std::chrono::seconds(60))) << child.err;
    child.Signal(SIGINT);
    EXPECT_EQ(child.Wait(), 130) << child.err;
    EXPECT_TRUE(child.GroupGone());
  }
  Result r = RunProgram(Cli(), flags);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out)[0], "300");
  const std::size_t resumed = Resumed(r.err, path, 300);
  EXPECT_GT(resumed, 0u) << r.err;
  EXPECT_LT(resumed, 300u) << r.err;
  // Progress counts the tasks read back as done from the start.
  static const std::regex kDone(R"(Done +([0-9]+) )");
  std::size_t lines = 0;
  for (std::sregex_iterator it(r.err.begin(), r.err.end(), kDone), end;
       it != end; ++it, ++lines) {
    EXPECT_GE(std::stoul((*it)[1]), resumed) << r.err;
  }
  EXPECT_GT(lines, 0u) << r.err;
}

// Issue 23 item 11: a --checkpoint path that cannot be a journal exits 2
// with one line naming what is wrong and what is valid, before any task
// runs (it was exit 1 with the system's words, after the start).
TEST(CheckpointCli, BadPathsAreRefusedBeforeAnyTaskRuns) {
  const std::string fifo = TempPath("ckpt.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string valid =
      "; valid: a regular file that can be read and written, or a new file's "
      "path in a directory that exists and can be written, as in "
      "--checkpoint=sum.ckpt\n";
  const std::string huge(100000, 'c');
  for (const auto& [path, line] :
       std::vector<std::pair<std::string, std::string>>{
           {"/tmp", "run: --checkpoint=/tmp: is a directory" + valid},
           {"/nonexistent/x",
            "run: --checkpoint=/nonexistent/x: cannot be created: "
            "/nonexistent does not exist" +
                valid},
           {"/dev/null",
            "run: --checkpoint=/dev/null: is a character device" + valid},
           {fifo, "run: --checkpoint=" + fifo + ": is a FIFO" + valid},
           {"/etc/passwd/x",
            "run: --checkpoint=/etc/passwd/x: Not a directory" + valid},
           {huge, "run: --checkpoint=" + huge.substr(0, 60) +
                      "... (100000 characters): the path is too long (100000 "
                      "characters, its longest name 100000); valid: a path of "
                      "up to 4095 characters, each name up to 255, to a "
                      "regular file or a new file, as in "
                      "--checkpoint=sum.ckpt\n"}}) {
    // A sleep of a minute per task: a run that started would not end here.
    Result r = RunProgram(Cli(), {"--workload=sleep", "--tasks=1",
                                  "--sleep-ms=60000", "--checkpoint=" + path});
    EXPECT_EQ(r.exit_code, 2) << line;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, line);
  }
  // A good path still works: a new file, then the same file again.
  const std::string good = TempPath("good.ckpt");
  for (int run = 0; run < 2; ++run) {
    Result r = RunProgram(
        Cli(), {"--workload=sum", "--tasks=100", "--checkpoint=" + good});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Lines(r.out).at(0), "24749752500000");
  }
}

TEST(CheckpointCli, RefusedWhereAResumedRunWouldMislead) {
  Result r = RunProgram(Cli(), {"--checkpoint=x.ckpt", "--speedup"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "run: --checkpoint cannot be combined with --speedup: a run that "
            "reads results back from the file is not a timing; valid: "
            "--checkpoint=FILE on a single run\n");
  r = RunProgram(Cli(), {"--checkpoint=x.ckpt", "echo", ":::", "a"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "run: --checkpoint is for workloads; commands mode resumes with "
            "--joblog=FILE --resume\n");
}

}  // namespace
}  // namespace fanout::testing
