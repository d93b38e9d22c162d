#include "core/spawn.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends/process/testing/children.h"
#include "core/executor.h"

namespace fanout {
namespace {

int g_global = 0;

// No child is left behind: nothing remains to be reaped.
void ExpectNoChildren() {
  errno = 0;
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

class SpawnTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SpawnTest, JoinGivesTheResult) {
  auto h = spawn(GetParam(), [] { return std::string("forty-two"); });
  EXPECT_EQ(h.backend(), GetParam());
  EXPECT_EQ(h.join(), "forty-two");
  auto v = spawn(GetParam(), [] { return std::vector<int>{1, 2, 3}; });
  EXPECT_EQ(v.join(), (std::vector<int>{1, 2, 3}));
  auto n = spawn(GetParam(), [] { return 7LL * 6; });
  EXPECT_EQ(n.join(), 42);
  ExpectNoChildren();
}

// Issue 23 item 12: a result without a default constructor, built by
// cereal's load_and_construct when it comes back from a child process.
struct Label {
  explicit Label(std::string t) : text(std::move(t)) {}
  std::string text;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(text);
  }
  template <class Archive>
  static void load_and_construct(Archive& ar,
                                 cereal::construct<Label>& construct) {
    std::string t;
    ar(t);
    construct(std::move(t));
  }
};

TEST_P(SpawnTest, JoinGivesAResultWithoutADefaultConstructor) {
  auto h = spawn(GetParam(), [] { return Label("forty-two"); });
  EXPECT_EQ(h.join().text, "forty-two");
  ExpectNoChildren();
}

TEST_P(SpawnTest, JoinThrowsTheTaskError) {
  auto h = spawn(GetParam(), []() -> int { throw std::runtime_error("boom"); });
  try {
    h.join();
    FAIL() << "join() did not throw";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 0u);
    EXPECT_EQ(e.backend(), GetParam());
    EXPECT_EQ(e.type(), "std::runtime_error");
    EXPECT_EQ(e.message(), "boom");
    EXPECT_EQ(e.signal(), 0);
    EXPECT_EQ(std::string(e.what()), "task 0 failed on backend '" + GetParam() +
                                         "' (" + e.worker() +
                                         "): std::runtime_error: boom");
  }
  ExpectNoChildren();
}

TEST_P(SpawnTest, VoidTasksAndProcesses) {
  auto h = spawn(GetParam(), [] {});
  h.join();
  Process p([] {}, GetParam());
  p.start();
  p.join();
  Process bad([] { throw std::logic_error("bad"); }, GetParam());
  bad.start();
  EXPECT_THROW(bad.join(), TaskError);
  ExpectNoChildren();
}

class Worker : public Process {
 public:
  explicit Worker(const std::string& backend) : Process(backend) {}
  int fd = -1;

 protected:
  void run() override {
    const char msg[] = "ran";
    (void)!write(fd, msg, 3);
  }
};

TEST_P(SpawnTest, SubclassRun) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  Worker w(GetParam());
  w.fd = fds[1];
  w.start();
  w.join();
  close(fds[1]);
  char buf[8] = {};
  EXPECT_EQ(read(fds[0], buf, sizeof(buf)), 3);
  EXPECT_EQ(std::string(buf), "ran");
  close(fds[0]);
  EXPECT_THROW(w.join(), UsageError);
  EXPECT_THROW(w.start(), UsageError);
}

TEST_P(SpawnTest, SpawnOnAnExecutor) {
  auto ex = make_executor(GetParam(), {.jobs = 2});
  auto h = spawn(*ex, [] { return 5; });
  EXPECT_EQ(h.join(), 5);
}

INSTANTIATE_TEST_SUITE_P(Backends, SpawnTest,
                         ::testing::Values("sequential", "thread", "process"),
                         [](const auto& info) { return info.param; });

TEST(SpawnProcessTest, RunsInItsOwnAddressSpace) {
  g_global = 1;
  auto h = spawn("process", [] {
    g_global = 2;
    return getpid();
  });
  const pid_t child = h.pid();
  EXPECT_GT(child, 0);
  EXPECT_NE(child, getpid());
  EXPECT_EQ(h.join(), child);
  EXPECT_EQ(g_global, 1);
}

TEST(SpawnProcessTest, DeathBySignal) {
  auto h = spawn("process", []() -> int {
    raise(SIGKILL);
    return 0;
  });
  const pid_t child = h.pid();
  try {
    h.join();
    FAIL() << "join() did not throw";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.signal(), SIGKILL);
    EXPECT_EQ(e.worker(), "pid " + std::to_string(child));
    EXPECT_EQ(std::string(e.what()),
              "task 0 failed on backend 'process' (pid " +
                  std::to_string(child) +
                  "): child killed by SIGKILL (Killed), possibly out of "
                  "memory (see the kernel log for the OOM killer)");
  }
  ExpectNoChildren();
}

// Issue 14 item 5: a child must not outlive a caller killed by SIGKILL,
// which can run no handler and no destructor (the child has PDEATHSIG).
TEST(SpawnProcessTest, ChildDiesWithAKilledCaller) {
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t caller = fork();
  ASSERT_GE(caller, 0);
  if (caller == 0) {
    close(report[0]);
    auto h = spawn("process", [] {
      std::this_thread::sleep_for(std::chrono::hours(1));
      return 0;
    });
    const pid_t child = h.pid();
    [[maybe_unused]] ssize_t w = write(report[1], &child, sizeof(child));
    pause();  // until killed
    _exit(0);
  }
  close(report[1]);
  pid_t child = 0;
  ASSERT_EQ(read(report[0], &child, sizeof(child)),
            static_cast<ssize_t>(sizeof(child)));
  close(report[0]);
  ASSERT_GT(child, 0);
  EXPECT_FALSE(testing::IsGoneOrZombie(child));
  kill(caller, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(caller, &status, 0), caller);
  EXPECT_TRUE(testing::WaitFor([&] { return testing::IsGoneOrZombie(child); },
                               std::chrono::seconds(2)));
  if (!testing::IsGoneOrZombie(child)) kill(child, SIGKILL);  // no orphan
}

TEST(SpawnProcessTest, ExitWithoutResult) {
  auto h = spawn("process", []() -> int { _exit(3); });
  try {
    h.join();
    FAIL() << "join() did not throw";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.exit_status(), 3);
    EXPECT_EQ(e.message(),
              "child exited with status 3 before returning a result");
  }
}

TEST(SpawnProcessTest, LargeResultDoesNotDeadlock) {
  auto h = spawn("process", [] { return std::string(1 << 20, 'x'); });
  EXPECT_EQ(h.join().size(), 1u << 20);
}

TEST(SpawnProcessTest, IsAliveAndDestructorWaits) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  {
    Process p([fd = fds[0]] {
      char c;
      (void)!read(fd, &c, 1);  // waits for the parent
    });
    p.start();
    EXPECT_TRUE(p.is_alive());
    EXPECT_TRUE(p.is_alive());  // looking does not reap
    (void)!write(fds[1], "x", 1);
    p.join();
    EXPECT_FALSE(p.is_alive());
  }
  {
    Process unjoined([] {});
    unjoined.start();
  }  // waited for here
  close(fds[0]);
  close(fds[1]);
  ExpectNoChildren();
}

struct NotSerializable {
  int* p;
  std::string s;
};

TEST(SpawnTest, ResultsTheCodecCannotCarryStayInProcess) {
  int x = 4;
  auto h = spawn("thread", [&x] { return NotSerializable{&x, "here"}; });
  EXPECT_EQ(*h.join().p, 4);
  try {
    spawn("process", [&x] { return NotSerializable{&x, "there"}; });
    FAIL() << "spawn did not throw";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "spawn: the task's result type cannot come back from a child "
              "process: make it trivially copyable or give it a serialize() "
              "(core/codec.h), or use the thread backend");
  }
  ExpectNoChildren();
}

TEST(SpawnTest, UnknownBackend) {
  try {
    spawn("mpi", [] { return 1; });
    FAIL() << "spawn did not throw";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "spawn: unknown backend 'mpi'; valid backends: process, "
              "sequential, thread");
  }
  EXPECT_THROW(Process([] {}, "thred"), UsageError);
  Process never([] {});
  EXPECT_THROW(never.join(), UsageError);
}

}  // namespace
}  // namespace fanout
