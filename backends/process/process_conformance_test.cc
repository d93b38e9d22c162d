// The backend conformance suite (core/testing/conformance.h) for 'process'.
#include "core/testing/conformance.h"

namespace fanout::testing {
INSTANTIATE_TEST_SUITE_P(Process, Conformance, ::testing::Values("process"));
}  // namespace fanout::testing
