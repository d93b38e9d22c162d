#include "tests/subprocess.h"

#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/wait_status.h"

namespace fanout::testing {

Result RunProgram(const std::string& program,
                  const std::vector<std::string>& args,
                  const std::string& input) {
  using internal::CloseFd;
  internal::Pipe in, out, err;
  if (!internal::MakePipe(&in) || !internal::MakePipe(&out) ||
      !internal::MakePipe(&err)) {
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
  if (!input.empty() &&
      !internal::WriteAll(in.write, input.data(), input.size())) {
    throw std::runtime_error("write to child failed");
  }
  CloseFd(&in.write);
  Result r;
  internal::SetNonBlocking(out.read);
  internal::SetNonBlocking(err.read);
  pollfd fds[2] = {{out.read, POLLIN, 0}, {err.read, POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) continue;
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP))) continue;
      if (!internal::ReadAvailable(fds[k].fd, k == 0 ? &r.out : &r.err)) {
        CloseFd(&fds[k].fd);
        --open_fds;
      }
    }
  }
  int status = 0;
  internal::WaitPid(pid, &status);
  r.exit_code = internal::ShellExitCode(status);
  return r;
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
