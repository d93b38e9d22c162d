// fanout/backends/mpi/exchange.h — the end of a call on ranks: every rank
// encodes what it ran, one MPI_Allgatherv hands every rank every other
// rank's bytes, and each decodes them into its own result slots.
// IWYU pragma: private, include "backends/mpi/mpi.h"
//
// A rank's bytes: call, n, cancelled, tasks done, the chunks it ran, the
// tasks that threw (index, type, message), the tasks whose result could not
// be encoded, then the results of the chunks in order (a plain copy for
// trivially copyable results, length-prefixed codec bytes otherwise).
#ifndef FANOUT_BACKENDS_MPI_EXCHANGE_H_
#define FANOUT_BACKENDS_MPI_EXCHANGE_H_

#include <cstdint>

#include "backends/mpi/mpi.h"
#include "backends/mpi/rank_run.h"
#include "core/executor.h"

namespace fanout::mpi::internal {

// Gives every rank every result and every failure of call number `call`;
// every rank returns the same report (failures sorted by task index), and
// brings its progress counter to the tasks finished on all ranks. Collective.
RunReport Exchange(const World& w, RankRun& run, std::uint64_t call);

// Rank 0 traces the call: every rank ends its trace's job and sends its
// records to rank 0 (nothing from a rank that does not trace), which
// shifts them onto its own clock and adds them to its trace. Collective.
void GatherTrace(const World& w, RankRun& run);

}  // namespace fanout::mpi::internal

#endif  // FANOUT_BACKENDS_MPI_EXCHANGE_H_
