// fanout/backends/mpi/roles.h — the three parts a rank can play in one call.
// IWYU pragma: private, include "backends/mpi/mpi.h"
//
// - RunLocal: a world of one (no mpirun): `jobs` threads on one counter.
// - RunRoot: rank 0 owns the task counter. Its calling thread only
//   schedules: it answers chunk requests from the other ranks (polling MPI
//   paced by Backoff, so it costs almost no CPU), while `jobs` threads of
//   rank 0 take chunks off the same counter.
// - RunRemote: every other rank runs `jobs` compute threads fed from a local
//   queue; its calling thread asks rank 0 for the next chunk while the
//   current ones run (one chunk of read-ahead, declined by rank 0 near the
//   end of the job so no rank hoards work an idle rank could do).
// When the counter is exhausted (or a task failed under fail-fast, or a rank
// was cancelled) rank 0 answers "done", and root and remotes end with the
// result exchange (exchange.h): every rank returns the same report.
#ifndef FANOUT_BACKENDS_MPI_ROLES_H_
#define FANOUT_BACKENDS_MPI_ROLES_H_

#include <cstdint>

#include "backends/mpi/mpi.h"
#include "core/executor.h"

namespace fanout::mpi::internal {

RunReport RunLocal(const Job& job, const RunOptions& options);

// `call` numbers this process's calls from 1; every rank must be in the same.
RunReport RunRoot(const World& w, const Job& job, const RunOptions& options,
                  std::uint64_t call);
RunReport RunRemote(const World& w, const Job& job, const RunOptions& options,
                    std::uint64_t call);

}  // namespace fanout::mpi::internal

#endif  // FANOUT_BACKENDS_MPI_ROLES_H_
