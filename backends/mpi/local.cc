// A world of one rank (no mpirun): the job on `jobs` threads of this process,
// the calling thread one of them.
#include <algorithm>
#include <mutex>
#include <utility>

#include "backends/mpi/rank_run.h"
#include "backends/mpi/roles.h"

namespace fanout::mpi::internal {

RunReport RunLocal(const Job& job, const RunOptions& options) {
  if (options.jobs <= 1 || job.n <= 1) {
    return fanout::internal::run_inline("mpi", job, options, "rank 0");
  }
  RankRun run(job, options, 0);
  const std::size_t batch = options.batch_size
                                ? options.batch_size
                                : auto_batch_size(job.n, options.jobs);
  Dispenser counter(job.n, batch);
  auto take = [&counter](Chunk* c) { return counter.Take(c); };
  {
    Threads threads(run);
    threads.Start(options.jobs - 1, take);
    {
      std::lock_guard<std::mutex> lock(run.mu);
      ++run.running;
    }
    run.ComputeLoop(take);
    threads.Join();
  }
  RunReport report;
  report.failures = std::move(run.failures);
  std::sort(report.failures.begin(), report.failures.end(),
            [](const TaskError& a, const TaskError& b) {
              return a.index() < b.index();
            });
  report.cancelled = run.cancelled.load();
  return report;
}

}  // namespace fanout::mpi::internal
