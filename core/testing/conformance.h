// fanout/core/testing/conformance.h — the contract every backend passes.
//
// One value-parameterized suite, instantiated once per backend. A backend
// whose tasks all run in one process (or in processes forked from it, which
// share the suite's MAP_SHARED counters) gives just its name:
//
//   #include "core/testing/conformance.h"
//   namespace fanout::testing {
//   INSTANTIATE_TEST_SUITE_P(Thread, Conformance, ::testing::Values("thread"));
//   }
//
// A backend whose tasks run in processes that share no memory with the
// caller (mpi ranks, possibly on other hosts) also says how a count kept in
// each process is summed over all of them. Every process then runs the same
// test, making the same calls (SPMD):
//
//   INSTANTIATE_TEST_SUITE_P(
//       MpiRanks, Conformance,
//       ::testing::Values(ConformanceBackend("mpi", &SumOverRanks)));
//
// Writing a case: count task runs in SharedCounters and read them through
// Summed(); with separate processes every process runs the case, so make
// the same calls on every process, and let ASSERT (which returns early)
// depend only on what every process sees alike (results, summed counts).
//
// Every case compares with what the sequential reference gives: exact
// results in task order for any batch size, each task run exactly once,
// errors naming the task index, type and message, fail-fast stopping early,
// collect-all returning every outcome, jobs -1 / 1 / more than the cores,
// nested calls, result types that are not trivially copyable, timeouts, a
// user cancel mid-call, and calls from several threads at once (each exact
// or refused, never another call's results). Counters the tasks touch live
// in MAP_SHARED memory (so forked workers count too) and are read through
// `sum` (so separate processes count too).
#ifndef FANOUT_CORE_TESTING_CONFORMANCE_H_
#define FANOUT_CORE_TESTING_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace fanout::testing {

// Adds `counts` element-wise over every process that runs tasks, in place,
// so that every process ends with the same totals. Collective: every process
// calls it at the same point of the same test.
using SumFn = void (*)(std::uint64_t* counts, std::size_t n);

// The suite's parameter: which backend, and how task runs are counted.
struct ConformanceBackend {
  // Implicit, so that ::testing::Values("thread") instantiates the suite.
  ConformanceBackend(const char* backend) : name(backend) {}  // NOLINT
  ConformanceBackend(const char* backend, SumFn sum_over)
      : name(backend), sum(sum_over) {}

  std::string name;
  // Null when every task runs in this process or in one forked from it
  // (MAP_SHARED counters see every run); set when tasks run in processes
  // that share no memory with this one.
  SumFn sum = nullptr;
};

inline void PrintTo(const ConformanceBackend& b, std::ostream* os) {
  *os << b.name << (b.sum != nullptr ? " (counts summed over processes)" : "");
}

class Conformance : public ::testing::TestWithParam<ConformanceBackend> {
 protected:
  const std::string& backend() const { return GetParam().name; }
  // Per-process counts summed over every process that runs tasks (as they
  // are for a backend in one process). Collective, like `sum`.
  std::vector<std::uint64_t> Summed(std::vector<std::uint64_t> counts) const {
    if (GetParam().sum != nullptr) GetParam().sum(counts.data(), counts.size());
    return counts;
  }
  // How many processes run the suite side by side (1 unless `sum` is set).
  std::size_t processes() const {
    return static_cast<std::size_t>(Summed({1})[0]);
  }
};

}  // namespace fanout::testing

#endif  // FANOUT_CORE_TESTING_CONFORMANCE_H_
