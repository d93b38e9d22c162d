#include "core/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/executor.h"
#include "core/shared.h"

namespace fanout::internal {

struct Launch::ThreadState {
  std::thread thread;
  std::atomic<bool> done{false};
  std::optional<TaskFailure> failure;
};

namespace {

constexpr char kValueTag = 'V';
constexpr char kErrorTag = 'E';

bool WriteAll(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

void AppendU32(std::string& out, std::uint32_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}

// "SIGKILL (Killed)", as the process backend names signals.
std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  const char* description = sigdescr_np(sig);
  return (abbrev != nullptr ? std::string("SIG") + abbrev
                            : "signal " + std::to_string(sig)) +
         " (" + (description != nullptr ? description : "unknown signal") + ")";
}

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
    AppendU32(message, static_cast<std::uint32_t>(failure.type.size()));
    message += failure.type;
    message += failure.message;
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
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) != 0) {
        started_ = false;
        throw Error(std::string("spawn: pipe failed: ") + strerror(errno));
      }
      std::fflush(nullptr);  // or the child would print the buffer again
      const pid_t pid = fork();
      if (pid < 0) {
        const int err = errno;
        close(fds[0]);
        close(fds[1]);
        started_ = false;
        throw Error(std::string("spawn: fork failed: ") + strerror(err));
      }
      if (pid == 0) {
        close(fds[0]);
        RunChild(fds[1], body);
      }
      close(fds[1]);
      pid_ = pid;
      read_fd_ = fds[0];
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
  char buf[65536];
  for (;;) {
    const ssize_t r = read(read_fd_, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    message.append(buf, static_cast<std::size_t>(r));
  }
  close(read_fd_);
  read_fd_ = -1;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }

  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    throw MakeError("", "child killed by " + SignalName(sig), sig, -1, nullptr);
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (message.empty() || code != 0) {
    throw MakeError("",
                    "child exited with status " + std::to_string(code) +
                        " before returning a result",
                    0, code, nullptr);
  }
  if (message[0] == kErrorTag && message.size() >= 1 + sizeof(std::uint32_t)) {
    std::uint32_t type_size = 0;
    std::memcpy(&type_size, message.data() + 1, sizeof(type_size));
    const std::size_t at = 1 + sizeof(type_size);
    if (at + type_size <= message.size()) {
      throw MakeError(message.substr(at, type_size),
                      message.substr(at + type_size), 0, -1, nullptr);
    }
  }
  if (message[0] != kValueTag) {
    throw MakeError("", "child sent a malformed result", 0, code, nullptr);
  }
  return message.substr(1);
}

}  // namespace fanout::internal

namespace fanout {

Process::Process(std::function<void()> target, std::string backend)
    : target_(std::move(target)),
      launch_(internal::Launch::KindOf(backend), backend) {}

Process::Process(std::string backend)
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
