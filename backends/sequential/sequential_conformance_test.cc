// The backend conformance suite (core/testing/conformance.h) for 'sequential'.
#include "core/testing/conformance.h"

namespace fanout::testing {
INSTANTIATE_TEST_SUITE_P(Sequential, Conformance,
                         ::testing::Values("sequential"));
}  // namespace fanout::testing
