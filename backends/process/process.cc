// The process backend (see process.h): fork()ed workers per call, a control
// block in MAP_SHARED memory, and a caller that waits in poll() on a pidfd per
// worker, the result pipes and a signal self-pipe. The parts, one idea each:
//   shared_block.h   the memory a call shares with its workers, and its cache
//   wire.h           the messages a worker sends over its pipe
//   worker.h         the forked worker, from fork to _exit()
//   call.h           the caller's side of one call: fork, then supervise
//   cpu_budget.h     each worker's share of the CPUs for native threads
//   failure_text.h   what a failed call says
// This file holds the executor and its registration.
#include "backends/process/process.h"

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "backends/process/call.h"
#include "backends/process/cpu_budget.h"
#include "backends/process/shared_block.h"
#include "core/executor.h"

namespace fanout {
namespace {

using process_internal::BlockCache;
using process_internal::Call;
using process_internal::SharedBlock;

class ProcessExecutor final : public Executor {
 public:
  explicit ProcessExecutor(int jobs) : jobs_(jobs) {}
  std::string_view name() const override { return "process"; }
  int jobs() const override { return jobs_; }
  Capabilities capabilities() const override {
    return {
        .shares_memory = false,
        // Workers are processes: they can be killed (task_timeout) and
        // limited (worker_memory) from outside.
        .can_limit_tasks = true,
        // Trivial results are copied from the shared pages straight into
        // the caller's reserved result array (Call::CopyResults).
        .adopts_results = true,
        // A worker is a whole process: a fork (0.2 ms to 30 ms, as the
        // caller's memory grows), its own memory, a 64 KiB stage, a pipe
        // and a pidfd in the caller. Far beyond the CPUs they only take
        // turns.
        .jobs_limit = {.per_cpu = 64,
                       .why = "each worker is a forked process with its own "
                              "memory, pipe and pidfd: beyond the CPUs they "
                              "only take turns; for tasks that mostly wait, "
                              "use backend 'thread'"}};
  }

 protected:
  std::string inline_worker() const override {
    return "pid " + std::to_string(getpid());
  }
  RunReport RunParallel(const Job& job, const RunOptions& options) override {
    // A call with a task limit comes here even for jobs = 1 or one task
    // (see Executor::run); with no task there is nothing to fork.
    if (job.n == 0) return {};
    const int workers = static_cast<int>(
        std::min<std::size_t>(static_cast<std::size_t>(options.jobs), job.n));
    const std::size_t result_bytes = job.trivial_result_size * job.n;
    std::unique_ptr<SharedBlock> block = cache_.Take(workers, result_bytes);
    block->Reset(workers,
                 result_bytes != 0 ? job.result_slot(job.ctx, 0) : nullptr);
    block->control().Reset(job.n, options, workers);
    RunReport report;
    {
      const process_internal::CpuBudget budget(options.jobs);  // for forks
      Call call(job, options, workers, *block);
      report = call.Run();
    }  // every worker is reaped: the block is free again
    cache_.GiveBack(std::move(block));
    return report;
  }

 private:
  int jobs_;
  BlockCache cache_;
};

}  // namespace

std::unique_ptr<Executor> make_process_executor(int jobs) {
  return std::make_unique<ProcessExecutor>(std::max(jobs, 1));
}

}  // namespace fanout

FANOUT_REGISTER_BACKEND(
    process,
    "fork()ed workers per call; any closure works; survives crashes, "
    "timeouts and Ctrl+C and names the task that failed",
    [](const fanout::ExecutorOptions& options) {
      return fanout::make_process_executor(options.jobs);
    })
