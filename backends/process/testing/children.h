// fanout/backends/process/testing/children.h — what the process tests check
// after a call: which processes are still children of a given process.
//
//   EXPECT_THAT(fanout::testing::ChildrenOf(getpid()), ::testing::IsEmpty());
//
// A zombie is still a child until it is reaped, so "no children" also means
// "no zombies".
#ifndef FANOUT_BACKENDS_PROCESS_TESTING_CHILDREN_H_
#define FANOUT_BACKENDS_PROCESS_TESTING_CHILDREN_H_

#include <dirent.h>
#include <sys/types.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fanout::testing {

// One process as /proc/PID/stat shows it.
struct ProcStat {
  pid_t pid = 0;
  char state = '?';  // R, S, Z (zombie), ...
  pid_t ppid = 0;
};

// Reads /proc/PID/stat; false when the process is gone.
inline bool ReadProcStat(pid_t pid, ProcStat* out) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  out->pid = pid;
  return static_cast<bool>(rest >> out->state >> out->ppid);
}

// The pids whose parent is `parent`, zombies included.
inline std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    ProcStat st;
    if (ReadProcStat(static_cast<pid_t>(pid), &st) && st.ppid == parent) {
      out.push_back(st.pid);
    }
  }
  closedir(dir);
  return out;
}

// True when `pid` no longer exists or is a zombie (dead, awaiting its reaper).
inline bool IsGoneOrZombie(pid_t pid) {
  ProcStat st;
  return !ReadProcStat(pid, &st) || st.state == 'Z' || st.state == 'X';
}

// Polls until `pred()` holds or `limit` passes; returns pred().
template <class Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace fanout::testing

#endif  // FANOUT_BACKENDS_PROCESS_TESTING_CHILDREN_H_
