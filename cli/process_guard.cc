#include "cli/process_guard.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/wait_status.h"

namespace fanout::cli {
namespace {

constexpr int kMaxGroups = 1 << 16;
constexpr std::size_t kRecord = 1 + sizeof(std::int32_t);

// The watchdog: keeps the set of live process groups from the records on
// `fd`; at end of file (the runner is gone) kills them all. Only
// async-signal-safe calls: it was forked from a program with threads.
[[noreturn]] void Watchdog(int fd) {
  static pid_t groups[kMaxGroups];
  int count = 0;
  internal::ResetSignals();
  // Ctrl+C, a hangup or SIGTERM sent to the runner's process group must not
  // end the watchdog before it has done its job.
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) {
    signal(sig, SIG_IGN);
  }
  const int devnull = open("/dev/null", O_RDWR);
  for (int k = 0; k < 3; ++k) dup2(devnull, k);
  for (int k = 3; k < 4096; ++k) {
    if (k != fd) close(k);
  }
  char buf[kRecord * 512];
  std::size_t have = 0;
  for (;;) {
    const ssize_t got = read(fd, buf + have, sizeof(buf) - have);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    have += static_cast<std::size_t>(got);
    std::size_t at = 0;
    for (; at + kRecord <= have; at += kRecord) {
      std::int32_t pgid;
      std::memcpy(&pgid, buf + at + 1, sizeof(pgid));
      if (buf[at] == 'A' && count < kMaxGroups) {
        groups[count++] = pgid;
      } else if (buf[at] == 'R') {
        for (int k = 0; k < count; ++k) {
          if (groups[k] == pgid) {
            groups[k] = groups[--count];
            break;
          }
        }
      }
    }
    std::memmove(buf, buf + at, have - at);
    have -= at;
  }
  for (int k = 0; k < count; ++k) kill(-groups[k], SIGKILL);
  _exit(0);
}

// The pids of this process's children, from /proc/self/task/*/children.
std::vector<pid_t> Children() {
  std::vector<pid_t> pids;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return pids;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/children");
    for (long pid; f >> pid;) pids.push_back(static_cast<pid_t>(pid));
  }
  closedir(d);
  return pids;
}

}  // namespace

ProcessGuard::ProcessGuard() {
  int was = 0;
  prctl(PR_GET_CHILD_SUBREAPER, &was);
  was_subreaper_ = was != 0;
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  before_ = Children();
  internal::Pipe p;
  if (!internal::MakePipe(&p)) return;  // no watchdog: PDEATHSIG still holds
  const pid_t pid = fork();
  if (pid == 0) Watchdog(p.read);
  internal::CloseFd(&p.read);
  if (pid < 0) {
    internal::CloseFd(&p.write);
    return;
  }
  watchdog_ = pid;
  pipe_ = p.write;
}

ProcessGuard::~ProcessGuard() {
  KillAdopted();
  internal::CloseFd(&pipe_);
  if (watchdog_ > 0) {
    int status;
    internal::WaitPid(watchdog_, &status);
  }
  if (!was_subreaper_) prctl(PR_SET_CHILD_SUBREAPER, 0);
}

void ProcessGuard::Send(char op, pid_t pgid) {
  if (pipe_ < 0) return;
  char record[kRecord];
  record[0] = op;
  const std::int32_t value = pgid;
  std::memcpy(record + 1, &value, sizeof(value));
  // Records are smaller than PIPE_BUF: each write is atomic.
  internal::WriteAll(pipe_, record, sizeof(record));
}

void ProcessGuard::Add(pid_t pgid) { Send('A', pgid); }
void ProcessGuard::Remove(pid_t pgid) { Send('R', pgid); }

void ProcessGuard::KillAdopted() {
  for (const pid_t pid : Children()) {
    if (pid == watchdog_ ||
        std::find(before_.begin(), before_.end(), pid) != before_.end()) {
      continue;
    }
    kill(pid, SIGKILL);
    int status;
    internal::WaitPid(pid, &status);
  }
}

}  // namespace fanout::cli
