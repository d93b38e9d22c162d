// A call stopped while a task on a thread does not return (issue: timeouts
// and Ctrl+C on the in-process backends): the CLI exits 1 at the deadline
// naming the stuck task, and after the first Ctrl+C says what it waits for.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tests/subprocess.h"

extern char** environ;

namespace fanout::testing {
namespace {

using Clock = std::chrono::steady_clock;

TEST(Stop, HungTaskTimesOutAtTheDeadlineNamingItOnEveryBackend) {
  for (const char* backend :
       {"thread", "tbb", "sequential", "mpi", "process"}) {
    const auto start = Clock::now();
    Result r = RunProgram(
        Cli(), {std::string("--backend=") + backend, "--jobs=2",
                "--fail-task=3", "--fail-mode=hang", "--timeout-ms=1000"});
    const auto took = Clock::now() - start;
    EXPECT_EQ(r.exit_code, 1) << backend << ": " << r.err;
    const std::vector<std::string> lines = Lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << backend << ": " << r.err;
    EXPECT_EQ(lines[0].rfind(std::string("run: error: call timed out after "
                                         "1000 ms on backend '") +
                                 backend + "'",
                             0),
              0u)
        << lines[0];
    EXPECT_NE(lines[0].find("still running: task 3 ("), std::string::npos)
        << lines[0];
    // At the deadline (plus the 100 ms the monitor gives a task to return),
    // not when the hung task ends: it never does.
    EXPECT_LT(took, std::chrono::seconds(10)) << backend;
  }
}

// The CLI as a child whose stderr is read while it runs.
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
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(Cli().c_str()));
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, Cli().c_str(), &actions, nullptr, argv.data(),
                          environ),
              0);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    err_ = fds[0];
    fcntl(err_, F_SETFL, O_NONBLOCK);
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(err_);
  }

  // Reads stderr until it holds `text` or `limit` passes; true when found.
  bool WaitFor(const std::string& text, std::chrono::milliseconds limit) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
      Read();
      if (err.find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Waits for the child to end; its exit code, or 128 + the signal.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    Read();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  void Signal(int sig) { kill(pid_, sig); }

  std::string err;

 private:
  void Read() {
    char buf[4096];
    for (ssize_t n; (n = read(err_, buf, sizeof(buf))) > 0;) err.append(buf, n);
  }

  pid_t pid_ = -1;
  int err_ = -1;
};

TEST(Stop, FirstCtrlCSaysWhatItWaitsForThenEnds130) {
  // Two tasks of 3 s on two threads: the first Ctrl+C cannot stop them.
  Child child({"--backend=thread", "--jobs=2", "--workload=sleep", "--tasks=4",
               "--sleep-ms=3000"});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto start = Clock::now();
  child.Signal(SIGINT);
  ASSERT_TRUE(child.WaitFor("Ctrl+C again to stop now",
                            std::chrono::milliseconds(2000)))
      << child.err;
  EXPECT_NE(child.err.find("run: interrupted: waiting for 2 running tasks "
                           "(task 0 on thread "),
            std::string::npos)
      << child.err;
  EXPECT_EQ(child.Wait(), 130) << child.err;
  // The running tasks end (3 s) and nothing else starts.
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST(Stop, SecondCtrlCStopsNow) {
  Child child({"--backend=thread", "--jobs=2", "--workload=sleep", "--tasks=4",
               "--sleep-ms=30000"});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  child.Signal(SIGINT);
  ASSERT_TRUE(child.WaitFor("Ctrl+C again to stop now",
                            std::chrono::milliseconds(2000)))
      << child.err;
  const auto start = Clock::now();
  child.Signal(SIGINT);
  EXPECT_EQ(child.Wait(), 128 + SIGINT) << child.err;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(Stop, TracedRunStoppedByCtrlCStillWritesItsTrace) {
  for (const char* backend : {"thread", "process"}) {
    const std::string path = std::string(std::getenv("TEST_TMPDIR")) +
                             "/stopped_" + backend + ".json";
    Child child({std::string("--backend=") + backend, "--jobs=2",
                 "--workload=sleep", "--tasks=400", "--sleep-ms=20",
                 "--trace=" + path});
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    child.Signal(SIGINT);
    EXPECT_EQ(child.Wait(), 130) << child.err;
    // Valid JSON (Python's json module), some tasks covered once, none
    // twice; process workers are killed mid-task: their spans end there.
    const std::string cmd =
        "/usr/bin/python3 " + Runfile("core/testing/trace_check.py") + " '" +
        path + "' --tasks=400 --partial --min-workers=2" +
        (std::string(backend) == "process" ? " --unfinished --notes=stop" : "");
    EXPECT_EQ(std::system(cmd.c_str()), 0) << backend << ": " << child.err;
  }
}

}  // namespace
}  // namespace fanout::testing
