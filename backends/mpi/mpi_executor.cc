// The mpi backend: SPMD over Open MPI ranks (see mpi.h for the user's view).
//
// Every rank makes the same sequence of calls. A call on ranks is rank 0
// handing out chunks to every rank's compute threads (roles.h), then one
// exchange that gives every rank every result (exchange.h): every rank
// returns the same results and the same failures (worker "rank N"). Without
// mpirun the world is one rank and the job runs on threads (RunLocal).
// Only the calling thread talks MPI (MPI_THREAD_SERIALIZED), one call at a
// time per process; on ranks that thread is the main one (thread_rule.h).
// MPI errors are returned on fanout's communicator and thrown as
// fanout::Error (check.h); a rank that dies is seen by mpirun, which ends
// the job. Ranks that make different calls are caught (call number and task
// count travel with every message) and the job is aborted with a message
// (protocol.h).
//
// Files: world.cc (MPI start and finish), check.h (MPI errors), varint.h
// (bytes), rank_run.h (one rank's threads and chunks), backoff.h (polling
// pace), protocol.h (messages), thread_rule.cc (which thread calls),
// local.cc / root.cc / remote.cc (the three roles), exchange.cc (results to
// every rank), this file (the Executor).
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "backends/mpi/check.h"
#include "backends/mpi/mpi.h"
#include "backends/mpi/roles.h"
#include "backends/mpi/thread_rule.h"
#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/exit_hooks.h"
#include "core/internal/trace.h"

namespace fanout::mpi {
namespace {

std::mutex& CallMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}

// A job that says what its tasks are (a pool's generation): every rank must
// have built the same one, or each would run its own tasks under the
// others' indices. One allreduce; refused alike on every rank.
void CheckSameJob(const Job& job, std::uint64_t call) {
  const World& w = world();
  const std::uint64_t mine[2] = {job.fingerprint, ~job.fingerprint};
  std::uint64_t low[2] = {0, 0};
  internal::Check(MPI_Allreduce(mine, low, 2, MPI_UINT64_T, MPI_MIN, w.comm),
                  "MPI_Allreduce");
  if (low[0] != job.fingerprint || low[1] != ~job.fingerprint) {
    throw UsageError(
        "mpi backend: the ranks submitted different tasks to a pool before "
        "call #" +
        std::to_string(call) + " (" + std::to_string(job.n) +
        " tasks on rank " + std::to_string(w.rank) +
        "); every rank must make the same submits, with the same functions, "
        "in the same order (SPMD); nothing of this call ran");
  }
}

class MpiExecutor final : public Executor {
 public:
  explicit MpiExecutor(int jobs) : jobs_(jobs), world_(world()) {}
  std::string_view name() const override { return "mpi"; }
  int jobs() const override { return jobs_; }
  Capabilities capabilities() const override {
    // Every rank takes part in every call of a world of several ranks, and
    // the ranks must make the same calls in the same order.
    return {.shares_memory = false,
            .runs_small_calls_inline = world_.size == 1,
            .calls_from_any_thread = world_.size == 1};
  }
  bool is_primary() const override { return world_.rank == 0; }

 protected:
  std::string inline_worker() const override { return "rank 0"; }
  int total_workers(int jobs) const override { return jobs * world_.size; }

  RunReport RunParallel(const Job& job, const RunOptions& options) override {
    // Refused alike on every rank, before the call takes a number.
    internal::CheckCallingThread(world_);
    std::lock_guard<std::mutex> lock(CallMutex());
    static std::uint64_t calls = 0;
    const std::uint64_t call = ++calls;
    if (job.n == 0) return {};
    if (internal::Broken()) {
      throw Error("mpi backend: an earlier MPI call failed; MPI is unusable");
    }
    if (world_.size == 1) return internal::RunLocal(job, options);
    if (job.fingerprint != 0) CheckSameJob(job, call);
    if (options.trace != nullptr) {
      // The trace's name for this process: its rank and host.
      char host[256] = {};
      gethostname(host, sizeof(host) - 1);
      options.trace->SetProcessName("rank " + std::to_string(world_.rank) +
                                    " on " + host + " (pid " +
                                    std::to_string(getpid()) + ")");
    }
    // A task's exit() now would finalize MPI under this rank's other
    // threads (Open MPI then aborts the job with MPI_ERR_COMM and no word
    // of the task): say which task, end this rank at once, mpirun the job.
    fanout::internal::InProcessCallScope exit_guard(
        "mpi", job.indices_are_tasks, world_.rank);
    // Every rank returns the same report, stop reason included (a timeout
    // on one rank is a TimeoutError on every rank).
    return world_.rank == 0 ? internal::RunRoot(world_, job, options, call)
                            : internal::RunRemote(world_, job, options, call);
  }

 private:
  int jobs_;
  const World& world_;
};

}  // namespace
}  // namespace fanout::mpi

FANOUT_REGISTER_BACKEND(
    mpi,
    "Open MPI ranks (SPMD under mpirun): rank 0 hands out chunks, each rank "
    "runs them on `jobs` threads, every rank gets every result",
    [](const fanout::ExecutorOptions& options) {
      return std::make_unique<fanout::mpi::MpiExecutor>(options.jobs);
    })
