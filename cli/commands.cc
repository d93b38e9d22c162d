#include "cli/commands.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/wait_status.h"
#include "core/parallel.h"

namespace fanout::cli {
namespace {

struct Outcome {
  int exit_code = 0;  // exit status, or 128 + signal
  int signal = 0;
};

// Appends what the ready descriptors of `fds` hold to out / err; closes the
// ones whose writers are gone. Returns how many it closed.
int ReadReady(pollfd (&fds)[2], std::string& out, std::string& err) {
  int closed = 0;
  for (int k = 0; k < 2; ++k) {
    if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    if (!internal::ReadAvailable(fds[k].fd, k == 0 ? &out : &err)) {
      internal::CloseFd(&fds[k].fd);
      ++closed;
    }
  }
  return closed;
}

// Runs one command, collecting its output; kills its process group when
// `cancel` is raised.
Outcome RunOne(const std::string& command, std::string& out, std::string& err,
               const std::atomic<bool>* cancel) {
  internal::Pipe po, pe;
  if (!internal::MakePipe(&po) || !internal::MakePipe(&pe)) {
    const int e = errno;
    for (int* fd : {&po.read, &po.write, &pe.read, &pe.write}) {
      internal::CloseFd(fd);
    }
    throw Error(std::string("cannot create a pipe: ") + std::strerror(e));
  }
  // The command leads its own process group (so a kill reaches what it
  // starts) and dies with this thread.
  const pid_t pid =
      internal::ForkChild({.new_process_group = true, .flush_stdio = false});
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    dup2(po.write, 1);
    dup2(pe.write, 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const int fork_errno = errno;
  internal::CloseFd(&po.write);
  internal::CloseFd(&pe.write);
  if (pid < 0) {
    internal::CloseFd(&po.read);
    internal::CloseFd(&pe.read);
    throw Error(std::string("cannot fork: ") + std::strerror(fork_errno));
  }
  internal::SetNonBlocking(po.read);
  internal::SetNonBlocking(pe.read);
  pollfd fds[2] = {{po.read, POLLIN, 0}, {pe.read, POLLIN, 0}};
  int open_fds = 2;
  bool killed = false;
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  while (open_fds > 0) {
    const int ready = poll(fds, 2, 50);
    if (cancel != nullptr && cancel->load() && !killed) {
      kill(-pid, SIGTERM);
      killed = true;
      kill_deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    }
    if (killed && std::chrono::steady_clock::now() > kill_deadline) {
      kill(-pid, SIGKILL);
      kill_deadline = std::chrono::steady_clock::time_point::max();
    }
    if (ready > 0) open_fds -= ReadReady(fds, out, err);
  }
  int status = 0;
  internal::WaitPid(pid, &status);
  if (killed) kill(-pid, SIGKILL);  // anything of its group still around
  return {internal::ShellExitCode(status),
          internal::DecodeWaitStatus(status).signal};
}

}  // namespace

std::vector<std::string> ParseCommands(const std::string& text) {
  std::vector<std::string> commands;
  std::string::size_type start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    commands.push_back(line);
  }
  return commands;
}

int RunCommands(const std::vector<std::string>& commands, int jobs,
                std::FILE* out, std::FILE* err,
                const std::atomic<bool>* cancel) {
  std::mutex print_mu;
  fanout::Parallel parallel(
      {.jobs = jobs, .backend = "thread", .batch_size = 1});
  const auto start = std::chrono::steady_clock::now();
  std::vector<Outcome> outcomes =
      parallel.map(commands.size(), [&](std::size_t i) {
        if (cancel != nullptr && cancel->load()) return Outcome{130, SIGINT};
        std::string o, e;
        Outcome outcome = RunOne(commands[i], o, e, cancel);
        std::lock_guard<std::mutex> lock(print_mu);
        std::fwrite(o.data(), 1, o.size(), out);
        std::fflush(out);
        std::fwrite(e.data(), 1, e.size(), err);
        std::fflush(err);
        return outcome;
      });
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::size_t failed = 0;
  for (const Outcome& o : outcomes) failed += o.exit_code != 0;
  std::fprintf(
      err, "commands: %zu run, %zu ok, %zu failed, %d at a time, %.2f s\n",
      commands.size(), commands.size() - failed, failed, parallel.jobs(), wall);
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    if (outcomes[i].exit_code == 0) continue;
    if (outcomes[i].signal != 0) {
      std::fprintf(err, "  [%zu] killed by signal %d (%s): %s\n", i + 1,
                   outcomes[i].signal,
                   internal::SignalDescription(outcomes[i].signal).c_str(),
                   commands[i].c_str());
    } else {
      std::fprintf(err, "  [%zu] exit %d: %s\n", i + 1, outcomes[i].exit_code,
                   commands[i].c_str());
    }
  }
  std::fflush(err);
  if (cancel != nullptr && cancel->load()) return 130;
  return failed == 0 ? 0 : 1;
}

}  // namespace fanout::cli
