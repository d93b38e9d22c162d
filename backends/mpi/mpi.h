// fanout/backends/mpi/mpi.h — the MPI world as fanout's `mpi` backend sees
// it: rank, size and a communicator, for programs that also talk MPI.
//
// Linking //backends/mpi registers the `mpi` backend. Every rank runs the
// same program (SPMD); a map spreads its tasks over the ranks and every rank
// gets every result, in task order. Only rank 0 should print:
//
//   fanout::Parallel p({.jobs = -1, .backend = "mpi"});   // starts MPI here
//   std::vector<long long> r = p.map(10000, process);      // on every rank
//   if (p.executor().is_primary()) std::printf("%lld\n", sum(r));
//
// Run it with the launcher that sets fast defaults (see the README):
//
//   ./bazelw run //backends/mpi:mpirun -- -np 4 $PWD/bazel-bin/my/program
//
// A program may also send its own messages; `world()` starts MPI the same
// way the backend does and hands out fanout's communicator (a duplicate of
// MPI_COMM_WORLD whose errors are returned, not fatal):
//
//   const fanout::mpi::World& w = fanout::mpi::world();
//   if (w.rank == 0) MPI_Send(buf, len, MPI_CHAR, 1, 0, w.comm);
//
// When to start MPI: under a launcher (mpirun, mpiexec, srun — detected by
// OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK or PMI_SIZE in the environment),
// or when the program already called MPI_Init itself. Otherwise the process
// is one rank of one and MPI is never started: `--backend=mpi` without
// mpirun runs every task in this process on `jobs` threads, at no MPI cost
// (a singleton MPI_Init costs 120-340 ms here and forks a helper daemon).
// fanout calls MPI_Finalize once at exit when it was fanout that started MPI.
//
// Threads: under mpirun every parallel call on the mpi backend must come from
// the program's main thread (or, when the program called MPI_Init itself,
// from that thread), as with MPI_THREAD_FUNNELED. Ranks pair their calls up
// by order; calls from several threads would arrive in a different order on
// each rank and mix the results of different calls, so a call from another
// thread throws fanout::UsageError on every rank before anything runs. Calls
// made from inside a task run inline on that task's thread. Without mpirun
// (one rank) calls may come from any thread; they run one at a time.
#ifndef FANOUT_BACKENDS_MPI_MPI_H_
#define FANOUT_BACKENDS_MPI_MPI_H_

#include <mpi.h>

#include <string>

namespace fanout::mpi {

struct World {
  int rank = 0;         // this process's rank in MPI_COMM_WORLD
  int size = 1;         // ranks in MPI_COMM_WORLD
  bool active = false;  // MPI is running (false: a lone process, no MPI)
  // fanout's duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN; the null
  // communicator when !active.
  MPI_Comm comm = MPI_COMM_NULL;
  // Seconds this process spent in MPI_Init_thread (0 when fanout did not
  // start MPI).
  double init_seconds = 0;
};

// Starts MPI the first time it is called, when this process runs under a
// launcher (see above), and returns the world. Collective on first call under
// a launcher: every rank must call it (making an `mpi` executor calls it).
// Throws fanout::Error when MPI cannot start.
const World& world();

// True when this process was started by an MPI launcher.
bool under_launcher();

// The name of the machine this rank runs on (MPI_Get_processor_name, or the
// host name when MPI is not running). Calls world() first.
std::string processor_name();

}  // namespace fanout::mpi

#endif  // FANOUT_BACKENDS_MPI_MPI_H_
