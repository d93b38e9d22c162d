// What ranks do when they no longer make the same calls (see protocol.h).
#include "backends/mpi/protocol.h"

#include <cstdio>
#include <cstdlib>

namespace fanout::mpi::internal {

void Diverged(const World& w, std::uint64_t call, std::uint64_t n, int other,
              std::uint64_t other_call, std::uint64_t other_n) {
  std::fprintf(stderr,
               "fanout mpi: ranks diverged: rank %d is in parallel call #%llu "
               "(%llu tasks) but rank %d is in call #%llu (%llu tasks); every "
               "rank must make the same parallel calls in the same order. "
               "Aborting the job.\n",
               w.rank, static_cast<unsigned long long>(call),
               static_cast<unsigned long long>(n), other,
               static_cast<unsigned long long>(other_call),
               static_cast<unsigned long long>(other_n));
  std::fflush(stderr);
  MPI_Abort(w.comm, 70);
  std::_Exit(70);
}

}  // namespace fanout::mpi::internal
