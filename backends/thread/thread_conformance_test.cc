// The backend conformance suite (core/testing/conformance.h) for 'thread'.
#include "core/testing/conformance.h"

namespace fanout::testing {
INSTANTIATE_TEST_SUITE_P(Thread, Conformance, ::testing::Values("thread"));
}  // namespace fanout::testing
