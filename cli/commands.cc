#include "cli/commands.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "core/parallel.h"

namespace fanout::cli {
namespace {

struct Outcome {
  int exit_code = 0;  // exit status, or 128 + signal
  int signal = 0;
};

// Runs one command, collecting its output; kills its process group when
// `cancel` is raised.
Outcome RunOne(const std::string& command, std::string& out, std::string& err,
               const std::atomic<bool>* cancel) {
  int po[2], pe[2];
  if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
    throw Error(std::string("cannot create a pipe: ") + std::strerror(errno));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw Error(std::string("cannot fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);  // also from here, so a kill right away finds the group
  close(po[1]);
  close(pe[1]);
  pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
  int open_fds = 2;
  bool killed = false;
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  char buf[65536];
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
    if (ready <= 0) continue;
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      const ssize_t got = read(fds[k].fd, buf, sizeof(buf));
      if (got > 0) {
        (k == 0 ? out : err).append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds[k].fd);
        fds[k].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (killed) kill(-pid, SIGKILL);  // anything of its group still around
  Outcome o;
  if (WIFEXITED(status)) {
    o.exit_code = WEXITSTATUS(status);
  } else {
    o.signal = WTERMSIG(status);
    o.exit_code = 128 + o.signal;
  }
  return o;
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
                   outcomes[i].signal, strsignal(outcomes[i].signal),
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
