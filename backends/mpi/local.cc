// A world of one rank (no mpirun): the job on `jobs` threads of this process,
// the calling thread one of them.
#include <algorithm>
#include <mutex>
#include <utility>

#include "backends/mpi/rank_run.h"
#include "backends/mpi/roles.h"
#include "core/internal/exit_hooks.h"

namespace fanout::mpi::internal {

RunReport RunLocal(const Job& job, const RunOptions& options) {
  // Tasks run on threads of this process, as on the thread backend: a
  // task's exit() is reported, never success (core/internal/exit_hooks.h).
  fanout::internal::InProcessCallScope exit_guard("mpi", job.indices_are_tasks);
  RankRun run(job, options, 0);
  auto take = [&run](Chunk* c) {
    return run.control.Claim(&c->begin, &c->end);
  };
  {
    Threads threads(run, /*first_thread=*/1);
    threads.Start(options.jobs - 1, take);
    {
      std::lock_guard<std::mutex> lock(run.mu);
      ++run.running;
    }
    run.ComputeLoop(take, /*thread=*/0);
    threads.Join();
  }
  RunReport report;
  report.failures = std::move(run.failures);
  report.stopped = run.stopped();
  return report;
}

}  // namespace fanout::mpi::internal
