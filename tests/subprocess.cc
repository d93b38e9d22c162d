#include "tests/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <stdexcept>

#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/wait_status.h"

namespace fanout::testing {
namespace {

// Writes what the non-blocking pipe `fd` takes now of `input` from *fed on.
// True while more is to come; false once all is written or the program
// closed its stdin (EPIPE: it did not want the rest, which is no error of
// the test). SIGPIPE is blocked on this thread meanwhile and the pending
// one taken back, so it never ends the test.
bool FeedInput(int fd, const std::string& input, std::size_t* fed) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  bool more = true;
  while (*fed < input.size()) {
    const ssize_t n = write(fd, input.data() + *fed, input.size() - *fed);
    if (n > 0) {
      *fed += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0 && errno == EPIPE) {
      const timespec now = {0, 0};
      while (sigtimedwait(&pipe_only, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    more = false;
    break;
  }
  if (*fed >= input.size()) more = false;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return more;
}

// RunProgram's and RunProgramOnFile's: stdin is `input` through a pipe, or
// the file `stdin_path` when it is not empty.
Result Run(const std::string& program, const std::vector<std::string>& args,
           const std::string& input, const std::string& stdin_path) {
  using internal::CloseFd;
  internal::Pipe in, out, err;
  if (!stdin_path.empty()) {
    in.read = open(stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in.read < 0) throw std::runtime_error("cannot open " + stdin_path);
  }
  if ((stdin_path.empty() && !internal::MakePipe(&in)) ||
      !internal::MakePipe(&out) || !internal::MakePipe(&err)) {
    throw std::runtime_error("pipe failed");
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // The program dies with the test, should the test die first.
  const pid_t pid = internal::ForkChild({.flush_stdio = false});
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    dup2(in.read, 0);
    dup2(out.write, 1);
    dup2(err.write, 2);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  if (pid < 0) throw std::runtime_error("cannot run " + program);
  CloseFd(&in.read);
  CloseFd(&out.write);
  CloseFd(&err.write);
  // stdin is written as the program takes it, in the same poll loop that
  // reads its output: a program that writes much before it has read all of
  // its input would otherwise wait on us while we wait on it.
  internal::SetNonBlocking(out.read);
  internal::SetNonBlocking(err.read);
  if (in.write >= 0) internal::SetNonBlocking(in.write);
  std::size_t fed = 0;
  if (input.empty()) CloseFd(&in.write);
  Result r;
  pollfd fds[3] = {
      {out.read, POLLIN, 0}, {err.read, POLLIN, 0}, {in.write, POLLOUT, 0}};
  int open_fds = 2;
  while (open_fds > 0 || fds[2].fd >= 0) {
    if (poll(fds, 3, -1) < 0) continue;
    if (fds[2].fd >= 0 && fds[2].revents != 0 &&
        !FeedInput(fds[2].fd, input, &fed)) {
      CloseFd(&fds[2].fd);
    }
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP))) continue;
      if (!internal::ReadAvailable(fds[k].fd, k == 0 ? &r.out : &r.err)) {
        CloseFd(&fds[k].fd);
        --open_fds;
      }
    }
  }
  CloseFd(&fds[2].fd);
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  r.exit_code = internal::ShellExitCode(status);
  r.max_rss_kb = usage.ru_maxrss;
  return r;
}

}  // namespace

Result RunProgram(const std::string& program,
                  const std::vector<std::string>& args,
                  const std::string& input) {
  return Run(program, args, input, "");
}

Result RunProgramOnFile(const std::string& program,
                        const std::vector<std::string>& args,
                        const std::string& stdin_path) {
  return Run(program, args, "", stdin_path);
}

std::string Runfile(const std::string& path) {
  const char* dir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  if (dir == nullptr) return path;
  return std::string(dir) + "/" + (ws ? ws : "fanout") + "/" + path;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

const std::string& Cli() {
  static const std::string path = Runfile("cli/run");
  return path;
}

std::vector<std::string> ListedBackends(const std::string& program) {
  std::vector<std::string> names;
  for (const std::string& line :
       Lines(RunProgram(program, {"--list-backends"}).out)) {
    names.push_back(line.substr(0, line.find(' ')));
  }
  return names;
}

}  // namespace fanout::testing
