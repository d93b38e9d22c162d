// --fail-attempts counts the attempts of --fail-task in one place that every
// attempt sees, wherever it runs: here the first attempt runs in a forked
// child (as a process-backend worker, or a worker forked again after one
// died), and the attempt after it, in the parent, must be the second.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

#include "cli/faults.h"

namespace fanout::cli {
namespace {

// Runs attempt `task` of `inject` in a forked child; its exit status says
// 1 when the attempt failed (threw), 0 when it succeeded.
int AttemptInChild(const FaultInjector& inject, std::size_t task) {
  const pid_t pid = fork();
  if (pid == 0) {
    try {
      inject.MaybeFail(task);
    } catch (const std::runtime_error&) {
      _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

TEST(FaultInjector, CountsAttemptsAcrossForks) {
  const FaultInjector inject(/*task=*/3, FailMode::kThrow, /*attempts=*/2);
  EXPECT_EQ(AttemptInChild(inject, 3), 1);  // attempt 1 fails
  EXPECT_EQ(AttemptInChild(inject, 3), 1);  // attempt 2 fails
  EXPECT_EQ(AttemptInChild(inject, 2), 0);  // another task: not injected
  EXPECT_NO_THROW(inject.MaybeFail(3));     // attempt 3 succeeds
  EXPECT_EQ(AttemptInChild(inject, 3), 0);  // and so does every later one
}

TEST(FaultInjector, ZeroAttemptsFailsEveryAttempt) {
  const FaultInjector inject(/*task=*/0, FailMode::kThrow, /*attempts=*/0);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(AttemptInChild(inject, 0), 1);
    EXPECT_THROW(inject.MaybeFail(0), std::runtime_error);
  }
}

TEST(FaultInjector, NoTaskInjectsNothing) {
  const FaultInjector inject(/*task=*/-1, FailMode::kThrow, /*attempts=*/0);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_NO_THROW(inject.MaybeFail(i));
}

}  // namespace
}  // namespace fanout::cli
