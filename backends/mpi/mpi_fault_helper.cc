// A program for mpi_fault_test.sh: one parallel call on the mpi backend, then
// what the mode says. Counts its own MPI_Finalize calls (the profiling
// interface lets this program wrap MPI_Finalize) to show fanout finalizes
// exactly once at a normal exit.
//
//   mpi_fault_helper ok          every rank exits 0
//   mpi_fault_helper exit N      rank 1 returns N from main, the others 0
//   mpi_fault_helper segv        rank 1 dies of SIGSEGV inside a task
//   mpi_fault_helper _exit N     rank 1 calls _exit(N) inside a task
//   mpi_fault_helper diverge     rank 1 makes a call the others do not
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "backends/mpi/mpi.h"
#include "core/parallel.h"

namespace {
int g_finalize_calls = 0;
}  // namespace

extern "C" int MPI_Finalize() {
  ++g_finalize_calls;
  std::fprintf(stderr, "rank %d: MPI_Finalize call %d\n",
               fanout::mpi::world().rank, g_finalize_calls);
  return PMPI_Finalize();
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "ok";
  fanout::Parallel p({.jobs = 1, .backend = "mpi", .batch_size = 1});
  const int rank = fanout::mpi::world().rank;
  if (mode == "diverge" && rank == 1) {
    p.map(7, [](std::size_t i) { return i; });
  }
  std::vector<long> r = p.map(40, [&](std::size_t i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (fanout::mpi::world().rank == 1 && i >= 4) {
      if (mode == "segv") raise(SIGSEGV);
      if (mode == "_exit") _exit(argc > 2 ? std::atoi(argv[2]) : 3);
    }
    return long(i);
  });
  long sum = 0;
  for (long x : r) sum += x;
  if (p.executor().is_primary()) std::printf("sum %ld\n", sum);
  std::fflush(stdout);
  if (mode == "exit" && rank == 1) return argc > 2 ? std::atoi(argv[2]) : 1;
  return 0;
}
