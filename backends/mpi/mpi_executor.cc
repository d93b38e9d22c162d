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
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

#include "backends/mpi/check.h"
#include "backends/mpi/mpi.h"
#include "backends/mpi/roles.h"
#include "backends/mpi/thread_rule.h"
#include "core/errors.h"
#include "core/executor.h"

namespace fanout::mpi {
namespace {

std::mutex& CallMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}

class MpiExecutor final : public Executor {
 public:
  explicit MpiExecutor(int jobs) : jobs_(jobs), world_(world()) {}
  std::string_view name() const override { return "mpi"; }
  bool shares_memory() const override { return false; }
  int jobs() const override { return jobs_; }
  bool is_primary() const override { return world_.rank == 0; }

  RunReport run(const Job& job, const RunOptions& options) override {
    if (in_task()) {
      // A call from inside a task: the compute threads are busy with the
      // outer call, and only the outer call talks to the other ranks.
      return fanout::internal::run_inline("mpi", job, options, "nested call");
    }
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
    const auto start = std::chrono::steady_clock::now();
    RunReport report = world_.rank == 0
                           ? internal::RunRoot(world_, job, options, call)
                           : internal::RunRemote(world_, job, options, call);
    if (report.cancelled) AwaitOwnTimeout(options, start);
    return report;
  }

 private:
  // When another rank's timeout ended the call, this rank's own deadline is
  // at most the start skew away: wait for it, so that every rank reports a
  // TimeoutError rather than some of them a plain cancellation. A deadline
  // further away means the call was cancelled for another reason: no wait.
  static void AwaitOwnTimeout(const RunOptions& options,
                              std::chrono::steady_clock::time_point start) {
    if (options.timeout.count() <= 0 || options.cancel == nullptr) return;
    const auto own = start + options.timeout;
    if (own - std::chrono::steady_clock::now() > std::chrono::seconds(1))
      return;
    const auto deadline = own + std::chrono::milliseconds(500);
    while (!options.cancel->load() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

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
