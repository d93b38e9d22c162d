// fanout/backends/mpi/thread_rule.h — which thread may make calls on ranks.
// IWYU pragma: private, include "backends/mpi/mpi.h"
//
// Ranks pair their calls up by number: call #k on rank 0 is call #k on every
// other rank. Calls from several threads of a rank would be numbered in the
// order the threads happen to arrive, which differs between ranks, and the
// ranks would silently mix the results of different calls. No timing check
// can tell which thread on rank 1 matches which on rank 0, so the rule is
// fixed in advance, as MPI_THREAD_FUNNELED does: on ranks, every call comes
// from the program's main thread (or, when the program started MPI itself,
// from the thread that called MPI_Init). A call from any other thread is
// refused on every rank alike, before any work. Calls made from inside a
// task run inline and are not concerned; a world of one rank (no mpirun)
// takes calls from any thread, one at a time.
#ifndef FANOUT_BACKENDS_MPI_THREAD_RULE_H_
#define FANOUT_BACKENDS_MPI_THREAD_RULE_H_

#include "backends/mpi/mpi.h"

namespace fanout::mpi::internal {

// Throws fanout::UsageError, naming the rule, when `w` has more than one rank
// and the calling thread is not the one that may make calls.
void CheckCallingThread(const World& w);

}  // namespace fanout::mpi::internal

#endif  // FANOUT_BACKENDS_MPI_THREAD_RULE_H_
