// Which thread may make calls on ranks (see thread_rule.h).
#include "backends/mpi/thread_rule.h"

#include <unistd.h>

#include <string>

#include "core/errors.h"

namespace fanout::mpi::internal {
namespace {

// The main thread when fanout started MPI (World::init_seconds > 0), else
// the thread the program called MPI_Init on: the same thread on every rank
// of an SPMD program, whatever the timing.
bool OnCallingThread(const World& w) {
  if (w.init_seconds > 0) return gettid() == getpid();
  int main = 0;
  return MPI_Is_thread_main(&main) == MPI_SUCCESS && main != 0;
}

}  // namespace

void CheckCallingThread(const World& w) {
  if (w.size <= 1 || OnCallingThread(w)) return;
  const std::string which = w.init_seconds > 0
                                ? "the program's main thread"
                                : "the thread that called MPI_Init";
  throw UsageError(
      "mpi backend: a parallel call was made from thread " +
      std::to_string(gettid()) + " on rank " + std::to_string(w.rank) +
      ", which is not " + which +
      "; under mpirun every call on the mpi "
      "backend must come from " +
      which +
      ", so that every rank makes the "
      "same calls in the same order (calls from several threads would pair "
      "up differently on each rank and mix their results). Nothing ran. "
      "Make the calls from that thread, one at a time, or use another "
      "backend for calls from other threads.");
}

}  // namespace fanout::mpi::internal
