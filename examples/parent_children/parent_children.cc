// Mirrors a parent that starts five child scripts at once (Python):
//
//   import os
//   for i in range(5):
//       os.system(f"python child.py {i} &")     # child.py: print, sleep, exit
//
// Here the five children are shell commands run side by side by the
// commands library (commands/commands.h, what `run ... ::: ...` uses): each
// in its own process group, its output collected, nothing of it left
// running once it ends. The parent prints each child's output and exit code
// in order once all have ended. Each child sleeps 0.2 s: run one after
// another they would take 1 s; the elapsed time goes to stderr.
//
// Run: ./bazelw run //examples/parent_children
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "commands/commands.h"
#include "core/errors.h"

int main() {
  try {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::string> children;
    for (int i = 0; i < 5; ++i) {
      children.push_back("echo 'child " + std::to_string(i) +
                         " started'; sleep 0.2; echo 'child " +
                         std::to_string(i) + " done'; exit " +
                         std::to_string(i));
    }
    const std::vector<fanout::commands::CommandResult> results =
        fanout::commands::RunAll(children, {.jobs = 5});
    for (std::size_t i = 0; i < results.size(); ++i) {
      std::printf("%schild %zu exit code %d\n", results[i].out.c_str(), i,
                  results[i].exit_code);
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
