// End to end: //cli:run --backend=process as a child process, interrupted,
// killed and made to fail in each way it can.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "backends/process/testing/children.h"
#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Clock = std::chrono::steady_clock;

// The CLI started in the background, its stderr in a file.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    char path[] = "/tmp/process_cli_test_XXXXXX";
    err_fd_ = mkstemp(path);
    unlink(path);
    const std::string& program = Cli();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(err_fd_, 2);
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(program.c_str()));
      for (const std::string& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(program.c_str(), argv.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(err_fd_);
  }

  pid_t pid() const { return pid_; }

  // Waits up to `limit` for the child to end; its wait status, or -1.
  int WaitFor(std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return status;
      }
      if (Clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::string Stderr() const {
    std::string s;
    char buf[4096];
    for (off_t at = 0;;) {
      const ssize_t r = pread(err_fd_, buf, sizeof(buf), at);
      if (r <= 0) break;
      s.append(buf, static_cast<std::size_t>(r));
      at += r;
    }
    return s;
  }

 private:
  pid_t pid_ = -1;
  int err_fd_ = -1;
  bool reaped_ = false;
};

// 2000 tasks of 50 ms on 2 workers: 50 s unless stopped.
const std::vector<std::string> kLongRun = {"--backend=process", "--jobs=2",
                                           "--workload=sleep", "--tasks=2000",
                                           "--sleep-ms=50"};

// The CLI's workers, once both are running.
std::vector<pid_t> WorkersOf(pid_t cli) {
  std::vector<pid_t> workers;
  WaitFor([&] { return (workers = ChildrenOf(cli)).size() == 2; },
          std::chrono::seconds(10));
  return workers;
}

void ExpectInterruptedExit(int sig) {
  Child cli(kLongRun);
  const std::vector<pid_t> workers = WorkersOf(cli.pid());
  ASSERT_EQ(workers.size(), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // mid-run
  const auto sent = Clock::now();
  kill(cli.pid(), sig);
  const int status = cli.WaitFor(std::chrono::seconds(2));
  ASSERT_NE(status, -1) << "the CLI did not exit within 2 s of the signal";
  EXPECT_LT(Clock::now() - sent, std::chrono::seconds(2));
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_THAT(cli.Stderr(), HasSubstr("interrupted"));
  for (pid_t w : workers) EXPECT_TRUE(IsGoneOrZombie(w)) << w;
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

TEST(ProcessCli, SigintMidRunExits130WithNoLeftovers) {
  ExpectInterruptedExit(SIGINT);
}

TEST(ProcessCli, SigtermMidRunExits130WithNoLeftovers) {
  ExpectInterruptedExit(SIGTERM);
}

TEST(ProcessCli, WorkersDieWhenTheCliIsKilled) {
  Child cli(kLongRun);
  const std::vector<pid_t> workers = WorkersOf(cli.pid());
  ASSERT_EQ(workers.size(), 2u);
  kill(cli.pid(), SIGKILL);
  const int status = cli.WaitFor(std::chrono::seconds(2));
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(WaitFor(
      [&] { return IsGoneOrZombie(workers[0]) && IsGoneOrZombie(workers[1]); },
      std::chrono::seconds(2)));
}

struct FailCase {
  std::string mode;
  std::vector<std::string> expected;  // substrings of stderr
};

TEST(ProcessCli, EachFailModeExits1NamingTaskAndCause) {
  const std::vector<FailCase> cases = {
      {"throw",
       {"task 17 failed on backend 'process' (pid ",
        "std::runtime_error: injected failure in task 17"}},
      {"segv",
       {"task 17 failed on backend 'process' (pid ",
        "worker killed by SIGSEGV"}},
      {"abort",
       {"task 17 failed on backend 'process' (pid ",
        "worker killed by SIGABRT"}},
      {"exit",
       {"task 17 failed on backend 'process' (pid ",
        "worker exited with status 3"}},
      {"hang",
       {"call timed out after 1000 ms on backend 'process'",
        "still running: task 17 (pid "}},
  };
  for (const FailCase& c : cases) {
    const auto start = Clock::now();
    Result r = RunProgram(
        Cli(),
        {"--backend=process", "--jobs=2", "--workload=sleep", "--tasks=40",
         "--sleep-ms=5", "--fail-task=17", "--fail-mode=" + c.mode,
         // Only the hang needs the deadline: a worker's
         // exit() under a sanitizer can take a second.
         c.mode == "hang" ? "--timeout-ms=1000" : "--timeout-ms=0"});
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(10)) << c.mode;
    EXPECT_EQ(r.exit_code, 1) << c.mode << "\n" << r.err;
    for (const std::string& s : c.expected) {
      EXPECT_THAT(r.err, HasSubstr(s)) << c.mode;
    }
  }
  EXPECT_THAT(ChildrenOf(getpid()), IsEmpty());
}

TEST(ProcessCli, AnswersMatchSequential) {
  for (const std::string workload : {"sum", "fib", "sleep", "noop"}) {
    Result seq =
        RunProgram(Cli(), {"--backend=sequential", "--workload=" + workload});
    Result proc = RunProgram(
        Cli(), {"--backend=process", "--jobs=2", "--workload=" + workload});
    ASSERT_EQ(seq.exit_code, 0) << seq.err;
    ASSERT_EQ(proc.exit_code, 0) << proc.err;
    ASSERT_FALSE(Lines(seq.out).empty());
    ASSERT_FALSE(Lines(proc.out).empty());
    EXPECT_EQ(Lines(proc.out)[0], Lines(seq.out)[0]) << workload;
  }
  EXPECT_EQ(
      Lines(RunProgram(Cli(), {"--backend=process", "--workload=sum"}).out)[0],
      "249972500250000000");
}

}  // namespace
}  // namespace fanout::testing
