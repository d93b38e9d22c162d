// The backend conformance suite (core/testing/conformance.h) for 'mpi',
// without mpirun: one rank, tasks on threads in this process.
#include "core/testing/conformance.h"

namespace fanout::testing {
INSTANTIATE_TEST_SUITE_P(Mpi, Conformance, ::testing::Values("mpi"));
}  // namespace fanout::testing
