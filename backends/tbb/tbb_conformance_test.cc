// The backend conformance suite (core/testing/conformance.h) for 'tbb'.
#include "core/testing/conformance.h"

namespace fanout::testing {
INSTANTIATE_TEST_SUITE_P(Tbb, Conformance, ::testing::Values("tbb"));
}  // namespace fanout::testing
