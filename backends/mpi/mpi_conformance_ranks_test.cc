// The backend conformance suite (core/testing/conformance.h) for 'mpi' on
// ranks: run under mpirun (see BUILD, mpirun_test.sh), every rank runs every
// case, making the same calls. The suite's counters live in each rank's own
// memory; the harness sums them over the ranks with MPI_Allreduce.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/mpi/mpi.h"
#include "core/errors.h"
#include "core/testing/conformance.h"

namespace fanout::testing {
namespace {

void SumOverRanks(std::uint64_t* counts, std::size_t n) {
  const mpi::World& w = mpi::world();
  if (!w.active || n == 0) return;
  std::vector<std::uint64_t> mine(counts, counts + n);
  if (MPI_Allreduce(mine.data(), counts, static_cast<int>(n), MPI_UINT64_T,
                    MPI_SUM, w.comm) != MPI_SUCCESS) {
    throw Error("conformance harness: MPI_Allreduce failed");
  }
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(MpiRanks, Conformance,
                         ::testing::Values(ConformanceBackend("mpi",
                                                              &SumOverRanks)));

}  // namespace fanout::testing
