// A program linked with OpenMP: libgomp read OMP_NUM_THREADS when it loaded,
// so a forked worker would ignore the variable; the worker's share must
// reach OpenMP through omp_set_num_threads, and only when the user did not
// set the variable.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "core/executor.h"
#include "core/parallel.h"

namespace fanout {
namespace {

// What a parallel region in each of 4 process tasks sees: the threads
// OpenMP would use, and the threads a region actually had.
std::vector<std::vector<int>> SeenInWorkers() {
  Parallel p({.jobs = 2, .backend = "process", .batch_size = 1});
  return p.map(4, [](std::size_t) {
    int team = 0;
#pragma omp parallel
    {
#pragma omp single
      team = omp_get_num_threads();
    }
    return std::vector<int>{omp_get_max_threads(), team};
  });
}

TEST(CpuBudgetOpenMp, WorkersRunTheirShareOfThreads) {
  unsetenv("OMP_NUM_THREADS");  // read at load already: only the setter helps
  const int caller = omp_get_max_threads();
  const int share = std::max(1, usable_cpus() / 2);
  for (const auto& seen : SeenInWorkers()) {
    EXPECT_EQ(seen, (std::vector<int>{share, share}));
  }
  // The caller's OpenMP is untouched.
  EXPECT_EQ(omp_get_max_threads(), caller);
  if (usable_cpus() >= 2) {
    EXPECT_NE(caller, share);  // so the check can fail
  }
}

TEST(CpuBudgetOpenMp, TheUsersVariableIsLeftAlone) {
  // Set after libgomp loaded: neither OpenMP nor the budget changes the
  // count, in the caller or in a worker.
  setenv("OMP_NUM_THREADS", "3", 1);
  const int caller = omp_get_max_threads();
  for (const auto& seen : SeenInWorkers()) EXPECT_EQ(seen[0], caller);
  unsetenv("OMP_NUM_THREADS");
}

}  // namespace
}  // namespace fanout
