// fanout/commands/mpi.h — commands mode across MPI ranks
// (--backend=mpi under fanout-mpirun): every rank runs commands on its
// `jobs` slots; rank 0 alone prints their output in input order, the
// summary and the job log, whose Host column names the host each command
// ran on.
//
//   int code = fanout::commands::RunJobsOnMpi(options, stdout, stderr, &cancel);
#ifndef FANOUT_COMMANDS_MPI_H_
#define FANOUT_COMMANDS_MPI_H_

#include <atomic>
#include <cstdio>

#include "commands/options.h"

namespace fanout::commands {

// Every rank calls it with the same options (SPMD); ranks other than 0
// print nothing and return 0.
int RunJobsOnMpi(const CommandsOptions& o, std::FILE* out, std::FILE* err,
                 const std::atomic<bool>* cancel);

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_MPI_H_
