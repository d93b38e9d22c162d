// Mirrors a parent that starts five child scripts at once (Python):
//
//   import os
//   for i in range(5):
//       os.system(f"python child.py {i} &")     # child.py: print, sleep, exit
//
// Here the five children are shell commands, started together (one fork+exec
// each, through popen on five spawned threads) and then waited for; the
// parent prints each child's output and exit code in order once all have
// ended. Each child sleeps 0.2 s: run one after another they would take 1 s;
// the elapsed time goes to stderr.
//
// Run: ./bazelw run //examples/parent_children
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/spawn.h"

namespace {

struct Finished {
  std::string output;
  int exit_code = -1;
};

// Runs `command` with /bin/sh, capturing its stdout; waits for it.
Finished Run(const std::string& command) {
  Finished f;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw fanout::Error("popen failed for: " + command);
  char buf[256];
  while (std::fgets(buf, sizeof(buf), pipe) != nullptr) f.output += buf;
  const int status = pclose(pipe);
  f.exit_code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return f;
}

}  // namespace

int main() {
  try {
    const auto start = std::chrono::steady_clock::now();
    std::vector<fanout::SpawnHandle<Finished>> children;
    for (int i = 0; i < 5; ++i) {
      const std::string command = "echo 'child " + std::to_string(i) +
                                  " started'; sleep 0.2; echo 'child " +
                                  std::to_string(i) + " done'; exit " +
                                  std::to_string(i);
      children.push_back(
          fanout::spawn("thread", [command] { return Run(command); }));
    }
    for (int i = 0; i < 5; ++i) {
      const Finished f = children[i].join();
      std::printf("%schild %d exit code %d\n", f.output.c_str(), i,
                  f.exit_code);
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::fprintf(stderr, "5 children of 0.2 s each ran in %.2f s\n", elapsed);
  } catch (const fanout::Error& e) {
    std::fprintf(stderr, "parent_children: %s\n", e.what());
    return 1;
  }
  return 0;
}
