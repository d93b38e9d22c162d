#include "core/spawn.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <optional>
#include <string_view>
#include <thread>

#include "core/executor.h"
#include "core/internal/failure_wire.h"
#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/rank_task.h"
#include "core/internal/wait_status.h"

namespace fanout::internal {

struct Launch::ThreadState {
  std::thread thread;
  std::atomic<bool> done{false};
  std::optional<TaskFailure> failure;
};

namespace {

// A child's message: kValueTag and the encoded result, or kErrorTag and the
// failure (core/internal/failure_wire.h).
constexpr char kValueTag = 'V';
constexpr char kErrorTag = 'E';

// The child's side: runs the body, sends the outcome, never returns.
[[noreturn]] void RunChild(int write_fd, const Launch::Body& body) {
  std::string message;
  try {
    std::string bytes;
    body(&bytes);
    message.push_back(kValueTag);
    message += bytes;
  } catch (...) {
    TaskFailure failure = describe_current_exception();
    message.clear();
    message.push_back(kErrorTag);
    AppendFailure(message, failure.type, failure.message);
  }
  RunExitHooks();
  std::fflush(nullptr);
  const bool sent = WriteAll(write_fd, message.data(), message.size());
  close(write_fd);
  _exit(sent ? 0 : 3);
}

}  // namespace

Launch::Kind Launch::KindOf(std::string_view backend) {
  if (backend == "process") return Kind::kProcess;
  if (backend == "thread") return Kind::kThread;
  if (backend == "sequential") return Kind::kSequential;
  throw UsageError("spawn: unknown backend '" + std::string(backend) +
                   "'; valid backends: process, sequential, thread");
}

Launch::Kind Launch::KindOf(const Executor& executor) {
  const std::string_view name = executor.name();
  if (name == "process" || name == "thread" || name == "sequential") {
    return KindOf(name);
  }
  if (executor.shares_memory()) return Kind::kThread;
  throw UsageError("spawn: backend '" + std::string(name) +
                   "' cannot start a single task; valid backends: process, "
                   "sequential, thread (or any backend that shares memory)");
}

Launch::~Launch() {
  if (started_ && !waited_) {
    try {
      Wait();
    } catch (...) {
      // The outcome of a task nobody joined is dropped, as documented.
    }
  }
}

void Launch::Start(Body body) {
  if (started_) throw UsageError("spawn: task already started");
  started_ = true;
  switch (kind_) {
    case Kind::kSequential:
      try {
        SequentialSpawnScope inside;  // a Queue wait here would never end
        body(nullptr);
      } catch (...) {
        inline_failure_ = describe_current_exception();
      }
      return;
    case Kind::kThread: {
      auto state = std::make_shared<ThreadState>();
      state->thread =
          std::thread([state_ptr = state.get(), body = std::move(body)] {
            InTaskScope in_task;
            try {
              body(nullptr);
            } catch (...) {
              state_ptr->failure = describe_current_exception();
            }
            state_ptr->done.store(true, std::memory_order_release);
          });
      thread_ = std::move(state);
      return;
    }
    case Kind::kProcess: {
      Pipe pipe;
      if (!MakePipe(&pipe)) {
        started_ = false;
        throw Error(std::string("spawn: pipe failed: ") + strerror(errno));
      }
      // The child dies with this thread, as the process backend's workers
      // do, and starts with default signal handling.
      const int close_in_child[] = {pipe.read};
      const pid_t pid = ForkChild({.close_fds = close_in_child});
      if (pid == 0) RunChild(pipe.write, body);
      const int err = errno;
      CloseFd(&pipe.write);
      if (pid < 0) {
        CloseFd(&pipe.read);
        started_ = false;
        throw Error(std::string("spawn: fork failed: ") + strerror(err));
      }
      pid_ = pid;
      read_fd_ = pipe.read;
      return;
    }
  }
}

bool Launch::Running() const {
  if (!started_ || waited_) return false;
  switch (kind_) {
    case Kind::kSequential:
      return false;
    case Kind::kThread:
      return !thread_->done.load(std::memory_order_acquire);
    case Kind::kProcess: {
      siginfo_t info{};
      // WNOWAIT: look without reaping, so Wait() still gets the status.
      if (waitid(P_PID, static_cast<id_t>(pid_), &info,
                 WEXITED | WNOHANG | WNOWAIT) != 0) {
        return false;
      }
      return info.si_pid == 0;
    }
  }
  return false;
}

TaskError Launch::MakeError(std::string type, std::string message, int signal,
                            int exit_status,
                            std::exception_ptr original) const {
  TaskError::Details d;
  d.index = 0;
  d.backend = backend_;
  d.worker = kind_ == Kind::kProcess  ? "pid " + std::to_string(pid_)
             : kind_ == Kind::kThread ? "thread"
                                      : "caller";
  d.type = std::move(type);
  d.message = std::move(message);
  d.signal = signal;
  d.exit_status = exit_status;
  d.original = std::move(original);
  return TaskError(std::move(d));
}

std::string Launch::Wait() {
  if (!started_) throw UsageError("spawn: join() before start()");
  if (waited_) throw UsageError("spawn: join() called twice");
  waited_ = true;
  switch (kind_) {
    case Kind::kSequential:
      if (inline_failure_) {
        TaskFailure f = std::move(*inline_failure_);
        throw MakeError(std::move(f.type), std::move(f.message), 0, -1,
                        std::move(f.exception));
      }
      return {};
    case Kind::kThread:
      thread_->thread.join();
      if (thread_->failure) {
        TaskFailure f = std::move(*thread_->failure);
        throw MakeError(std::move(f.type), std::move(f.message), 0, -1,
                        std::move(f.exception));
      }
      return {};
    case Kind::kProcess:
      break;
  }

  // Read everything first: a child blocked on a full pipe never exits.
  std::string message;
  ReadAll(read_fd_, &message);
  CloseFd(&read_fd_);
  int status = 0;
  WaitPid(pid_, &status);

  const WaitOutcome outcome = DecodeWaitStatus(status);
  if (outcome.signal != 0) {
    throw MakeError("", "child " + DescribeWaitStatus(status), outcome.signal,
                    -1, nullptr);
  }
  if (message.empty() || outcome.exit_status != 0) {
    throw MakeError(
        "",
        "child " + DescribeWaitStatus(status) + " before returning a result", 0,
        outcome.exit_status, nullptr);
  }
  if (message[0] == kErrorTag) {
    if (std::optional<WireFailure> f =
            ParseFailure(std::string_view(message).substr(1))) {
      throw MakeError(std::move(f->type), std::move(f->message), 0, -1,
                      nullptr);
    }
  }
  if (message[0] != kValueTag) {
    throw MakeError("", "child sent a malformed result", 0, 0, nullptr);
  }
  return message.substr(1);
}

}  // namespace fanout::internal

namespace fanout {

Process::Process(std::function<void()> target, const std::string& backend)
    : target_(std::move(target)),
      launch_(internal::Launch::KindOf(backend), backend) {}

Process::Process(const std::string& backend)
    : launch_(internal::Launch::KindOf(backend), backend) {}

Process::~Process() = default;

void Process::start() {
  launch_.Start([this](std::string*) { run(); });
}

void Process::join() { launch_.Wait(); }

bool Process::is_alive() const { return launch_.Running(); }

pid_t Process::pid() const { return launch_.pid(); }

void Process::run() {
  if (target_) target_();
}

}  // namespace fanout
