// fanout/core/testing/conformance.h — the contract every backend passes.
//
// One value-parameterized suite, instantiated once per backend name:
//
//   #include "core/testing/conformance.h"
//   namespace fanout::testing {
//   INSTANTIATE_TEST_SUITE_P(Thread, Conformance, ::testing::Values("thread"));
//   }
//
// Every case compares with what the sequential reference gives: exact
// results in task order, each task run exactly once, errors naming the task
// index, type and message, fail-fast stopping early, collect-all returning
// every outcome, jobs -1 / 1 / more than the cores, nested calls, and result
// types that are not trivially copyable. Counters the tasks touch live in
// MAP_SHARED memory so the same checks hold for forked workers.
#ifndef FANOUT_CORE_TESTING_CONFORMANCE_H_
#define FANOUT_CORE_TESTING_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <string>

namespace fanout::testing {

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
};

}  // namespace fanout::testing

#endif  // FANOUT_CORE_TESTING_CONFORMANCE_H_
