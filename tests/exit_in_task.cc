// A program whose task 17 calls exit(STATUS) while a call runs on BACKEND:
// what a user's program does when a task "just exits". fanout must not let
// that pass as success, nor crash in TBB's shutdown (issue 14 item 9).
//
//   exit_in_task BACKEND STATUS
//   // fanout: a task called exit(0) while a call was running on backend
//   // 'tbb'; its results are lost     (exit status 70)
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "core/parallel.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: exit_in_task BACKEND STATUS\n");
    return 2;
  }
  const int status = std::atoi(argv[2]);
  try {
    fanout::Parallel p({.jobs = 4, .backend = argv[1]});
    const auto results = p.map(100, [status](std::size_t i) {
      if (i == 17) std::exit(status);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return static_cast<int>(i);
    });
    std::printf("finished %zu tasks\n", results.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
