#include "commands/process_guard.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/wait_status.h"

namespace fanout::commands {
namespace {

constexpr int kMaxGroups = 1 << 16;
constexpr std::size_t kRecord = 1 + sizeof(std::int32_t);

// The run's cgroup as the watchdog sees it: C strings made before it forks
// ("" for a file the hierarchy does not have).
struct CgroupFiles {
  const char* dir = "";
  const char* procs = "";
  const char* kill = "";    // v2: cgroup.kill
  const char* freeze = "";  // v2: cgroup.freeze; v1: freezer.state
  bool v2 = false;
};

// Writes `text` to the file `path`; false when it cannot. Async-signal-safe.
bool WriteFileText(const char* path, const char* text) {
  if (path[0] == '\0') return false;
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = internal::WriteAll(fd, text, std::strlen(text));
  close(fd);
  return ok;
}

// SIGKILLs every process in the cgroup (frozen first where the hierarchy
// can freeze, so that none forks or exits under us) and removes it once it
// is empty. Async-signal-safe: it runs in the watchdog.
void KillCgroup(const CgroupFiles& c) {
  if (c.dir[0] == '\0') return;
  WriteFileText(c.kill, "1");  // v2: every process, atomically with forks
  static char buf[1 << 16];
  for (int round = 0; round < 500; ++round) {
    if (rmdir(c.dir) == 0 || errno == ENOENT) return;
    WriteFileText(c.freeze, c.v2 ? "1" : "FROZEN");
    const int fd = open(c.procs, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      long pid = 0;
      bool digits = false;
      for (ssize_t got; (got = read(fd, buf, sizeof(buf))) > 0;) {
        for (ssize_t k = 0; k < got; ++k) {
          if (buf[k] >= '0' && buf[k] <= '9') {
            pid = pid * 10 + (buf[k] - '0');
            digits = true;
          } else {
            if (digits && pid > 0) kill(static_cast<pid_t>(pid), SIGKILL);
            pid = 0;
            digits = false;
          }
        }
      }
      if (digits && pid > 0) kill(static_cast<pid_t>(pid), SIGKILL);
      close(fd);
    }
    // A v1 frozen process dies of SIGKILL only once thawed.
    WriteFileText(c.freeze, c.v2 ? "0" : "THAWED");
    const timespec pause = {0, 10L * 1000 * 1000};
    nanosleep(&pause, nullptr);
  }
}

// The watchdog: keeps the set of live process groups from the records on
// `fd`; at end of file (the runner is gone or done) kills them all and the
// run's cgroup. Only async-signal-safe calls: it was forked from a program
// with threads.
[[noreturn]] void Watchdog(int fd, const CgroupFiles& cgroup) {
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
  KillCgroup(cgroup);
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

// Where this process's cgroup of hierarchy `kind` ("v2", or a v1
// controller such as "freezer") is in the file system: the mount point
// joined with the path /proc/self/cgroup names. "" (and `why`) when the
// hierarchy is not mounted or the path is outside the mount.
std::string OwnCgroupDir(const std::string& kind, std::string* why) {
  std::string mount_root, mount_point;
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    // id parent dev root mount-point options ... - fstype source options
    std::istringstream in(line);
    std::string id, parent, dev, root, point;
    in >> id >> parent >> dev >> root >> point;
    const std::size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype, source, options;
    tail >> fstype >> source >> options;
    const bool match = kind == "v2"
                           ? fstype == "cgroup2"
                           : fstype == "cgroup" &&
                                 ("," + options + ",").find("," + kind + ",") !=
                                     std::string::npos;
    if (match) {
      mount_root = root;
      mount_point = point;
      break;
    }
  }
  const std::string name = kind == "v2" ? "cgroup v2" : "cgroup v1 " + kind;
  if (mount_point.empty()) {
    *why += (why->empty() ? "" : "; ") + name + ": not mounted";
    return "";
  }
  std::string path;
  std::ifstream own("/proc/self/cgroup");
  for (std::string line; std::getline(own, line);) {
    // hierarchy-id:controllers:path; v2's id is 0, its controllers empty.
    const std::size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const bool match = kind == "v2"
                           ? line.compare(0, a, "0") == 0 && controllers.empty()
                           : ("," + controllers + ",").find("," + kind + ",") !=
                                 std::string::npos;
    if (match) {
      path = line.substr(b + 1);
      break;
    }
  }
  if (path.empty() || path.compare(0, mount_root.size(), mount_root) != 0) {
    *why += (why->empty() ? "" : "; ") + name + " at " + mount_point +
            ": this process's cgroup is not under it";
    return "";
  }
  path = path.substr(mount_root == "/" ? 0 : mount_root.size());
  return mount_point + (path == "/" ? "" : path);
}

}  // namespace

ProcessGuard::ProcessGuard(CgroupChoice choice) {
  int was = 0;
  prctl(PR_GET_CHILD_SUBREAPER, &was);
  was_subreaper_ = was != 0;
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  before_ = Children();
  std::string why;
  if (choice == CgroupChoice::kNone) {
    why = "none asked for";
  } else if ((choice == CgroupChoice::kV1 || !MakeCgroup("v2", &why)) &&
             MakeCgroup("freezer", &why)) {
    why.clear();
  }
  if (cgroup_dir_.empty()) {
    containment_ =
        "no cgroup holds the commands (" + why +
        "): a process that leaves its command's process group and outlives "
        "a SIGKILLed run escapes";
  } else {
    containment_ = "every command and what it starts run in cgroup " +
                   std::string(cgroup_v2_ ? "v2 " : "v1 freezer ") +
                   cgroup_dir_ + ", killed when run ends or dies";
  }
  const CgroupFiles files = {cgroup_dir_.c_str(), cgroup_procs_.c_str(),
                             cgroup_kill_.c_str(), cgroup_freeze_.c_str(),
                             cgroup_v2_};
  internal::Pipe p;
  if (!internal::MakePipe(&p)) return;  // no watchdog: PDEATHSIG still holds
  const pid_t pid = fork();
  if (pid == 0) Watchdog(p.read, files);
  internal::CloseFd(&p.read);
  if (pid < 0) {
    internal::CloseFd(&p.write);
    return;
  }
  watchdog_ = pid;
  pipe_ = p.write;
}

bool ProcessGuard::MakeCgroup(const std::string& kind, std::string* why) {
  const std::string parent = OwnCgroupDir(kind, why);
  if (parent.empty()) return false;
  static std::atomic<int> serial{0};
  const std::string dir = parent + "/fanout-run." + std::to_string(getpid()) +
                          "." + std::to_string(++serial);
  const std::string name = kind == "v2" ? "cgroup v2" : "cgroup v1 " + kind;
  const auto fail = [&](const std::string& what) {
    *why += (why->empty() ? "" : "; ") + name + ": " + what + ": " +
            std::strerror(errno);
    return false;
  };
  if (mkdir(dir.c_str(), 0755) != 0) return fail("cannot create " + dir);
  const int fd = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    const bool failed = fail("cannot open " + dir + "/cgroup.procs");
    rmdir(dir.c_str());
    return failed;
  }
  // A process moved in and out again: what each command will do, tried
  // once (a v2 hierarchy may refuse it, say for a threaded cgroup).
  const pid_t probe = fork();
  if (probe == 0) _exit(write(fd, "0", 1) == 1 ? 0 : errno);
  int status = 0;
  if (probe < 0 || internal::WaitPid(probe, &status) != probe ||
      !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (probe >= 0) {
      errno = WIFEXITED(status) && WEXITSTATUS(status) != 0
                  ? WEXITSTATUS(status)
                  : ECHILD;
    }
    const bool failed = fail("cannot move a process into " + dir);
    close(fd);
    rmdir(dir.c_str());
    return failed;
  }
  cgroup_dir_ = dir;
  cgroup_procs_ = dir + "/cgroup.procs";
  cgroup_v2_ = kind == "v2";
  cgroup_kill_ = cgroup_v2_ && access((dir + "/cgroup.kill").c_str(), W_OK) == 0
                     ? dir + "/cgroup.kill"
                     : "";
  cgroup_freeze_ = dir + (cgroup_v2_ ? "/cgroup.freeze" : "/freezer.state");
  procs_fd_ = fd;
  return true;
}

ProcessGuard::~ProcessGuard() {
  KillAdopted();
  internal::CloseFd(&pipe_);
  if (watchdog_ > 0) {
    int status;
    internal::WaitPid(watchdog_, &status);
  }
  internal::CloseFd(&procs_fd_);
  if (!cgroup_dir_.empty()) {
    // No watchdog (it could not start), or it gave up: what is left now.
    KillCgroup({cgroup_dir_.c_str(), cgroup_procs_.c_str(),
                cgroup_kill_.c_str(), cgroup_freeze_.c_str(), cgroup_v2_});
  }
  KillAdopted();  // reaps what the cgroup's kill left as our zombies
  if (!was_subreaper_) prctl(PR_SET_CHILD_SUBREAPER, 0);
}

bool ProcessGuard::JoinCgroup() const {
  return procs_fd_ < 0 || write(procs_fd_, "0", 1) == 1;
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

}  // namespace fanout::commands
