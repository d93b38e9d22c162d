// fanout/backends/mpi/check.h — how the mpi backend treats MPI's errors.
// IWYU pragma: private, include "backends/mpi/mpi.h"
//
// fanout's communicator returns errors instead of aborting. The first failed
// MPI call marks the world broken (a rank may have died: later calls and
// MPI_Finalize must not wait for it) and is thrown as a fanout::Error:
//
//   Check(MPI_Send(buf, n, MPI_CHAR, 0, tag, w.comm), "MPI_Send");
#ifndef FANOUT_BACKENDS_MPI_CHECK_H_
#define FANOUT_BACKENDS_MPI_CHECK_H_

#include <string>

namespace fanout::mpi::internal {

// MPI's text for an error code.
std::string ErrorString(int rc);

// Throws fanout::Error naming `what` and marks the world broken unless `rc`
// is MPI_SUCCESS.
void Check(int rc, const char* what);

// True once an MPI call failed: MPI is unusable in this process.
bool Broken();

// Marks the world broken without an MPI error: this rank left a call its
// peers still wait in (it could not start its compute threads), so
// MPI_Finalize must not wait for them; mpirun ends the job.
void MarkBroken();

}  // namespace fanout::mpi::internal

#endif  // FANOUT_BACKENDS_MPI_CHECK_H_
