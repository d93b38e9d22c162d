// fanout/backends/mpi/rank_run.h — one rank's part of one call: its compute
// threads, the chunks they run, and what ran (ranges, failures, progress).
// IWYU pragma: private, include "backends/mpi/mpi.h"
//
// Rank 0's threads claim chunks straight off core's counter (run.control);
// another rank's threads take them from the local queue its calling thread
// fills:
//
//   RankRun run(job, options, rank);
//   {
//     Threads threads(run);  // stopped and joined however the scope ends
//     threads.Start(options.jobs, [&](Chunk* c) {
//       return run.control.Claim(&c->begin, &c->end);
//     });
//     ...                    // the calling thread talks MPI meanwhile
//     threads.Join();
//   }
//   // run.ranges, run.failures: what this rank ran
#ifndef FANOUT_BACKENDS_MPI_RANK_RUN_H_
#define FANOUT_BACKENDS_MPI_RANK_RUN_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/rank_task.h"
#include "core/internal/scheduler.h"

namespace fanout::mpi::internal {

// Tasks [begin, end).
struct Chunk {
  std::size_t begin = 0;
  std::size_t end = 0;
};

class RankRun;

// Where a compute thread's task outcomes go, for core's scheduler
// (fanout::internal::ChunkRunner): failures into the rank's list, the chunks
// that ran into its ranges (what the exchange sends), finished tasks into
// its count for rank 0.
class RankSink {
 public:
  static constexpr bool kPerTask = false;
  RankSink(RankRun& run, int thread);
  std::atomic<std::size_t>* watch_slot() const;
  // The compute thread's track in a traced call.
  int trace_worker() const { return thread_; }
  std::string trace_name() const;
  void Failed(std::size_t index, TaskFailure&& failure);
  // The job index of the task that just failed (Failed names the user's).
  void FailedJob(std::size_t job_index);
  void ChunkDone(std::size_t begin, std::size_t end);
  void Started(std::size_t) {}
  bool Finished(std::size_t) { return true; }

 private:
  RankRun& run_;
  fanout::internal::TaskWatch::Slot* const watch_;
  const int thread_;
};

class RankRun {
 public:
  RankRun(const Job& job, const RunOptions& options, int rank)
      : job(job), options(options), worker("rank " + std::to_string(rank)) {
    control.Reset(job.n, options, options.total_workers);
  }

  // True when this rank should take no new chunk: the call stopped (a
  // failure under fail-fast, this rank's token, or a reason from another
  // rank), or the threads are being torn down.
  bool CheckStop();
  // Stops the rank's threads for `reason` (the first reason stays).
  void Stop(StopReason reason);

  // Runs one chunk on the calling thread through core's scheduler.
  void RunChunk(Chunk c, RankSink& sink);

  // A compute thread: chunks from `take` until it has none or the rank stops.
  template <class Take>
  void ComputeLoop(Take take, int thread) {
    {
      fanout::internal::InTaskScope in_task;  // nested calls run inline
      // On several ranks, SharedValue and Queue refuse to be used in a task:
      // each rank would silently change only its own copy.
      std::optional<fanout::internal::RankTaskScope> across_ranks;
      if (several_ranks) across_ranks.emplace();
      RankSink sink(*this, thread);
      Chunk c;
      while (!CheckStop() && take(&c)) RunChunk(c, sink);
    }
    std::lock_guard<std::mutex> lock(mu);
    --running;
    comm_cv.notify_all();
  }

  // Why the call stopped, as rank 0 and the exchange pass it on (kNone when
  // it did not).
  StopReason stopped() const { return control.stopped(); }

  // The local queue of a rank other than 0.
  bool TakeQueued(Chunk* c);

  const Job& job;
  const RunOptions& options;
  const std::string worker;

  // The call's chunks (rank 0 claims off it) and its stop reason.
  fanout::internal::CallControl control;
  bool several_ranks = false;        // set before threads start
  std::atomic<bool> stop{false};     // no more chunks here, for any reason
  std::atomic<std::size_t> done{0};  // tasks finished here, ok or failed

  std::mutex mu;
  std::condition_variable work_cv;  // compute threads wait for chunks
  std::condition_variable comm_cv;  // the calling thread waits for events
  std::vector<Chunk> ranges;        // chunks run here (up to a fail-fast stop)
  std::vector<TaskError> failures;  // tasks failed here
  // The job indices of those failures (a failure of a group of the user's
  // tasks, map_reduce's, names the user's task): which results are missing.
  std::vector<std::size_t> failed_jobs;
  int running = 0;          // compute threads not yet finished
  std::deque<Chunk> queue;  // rank > 0: chunks granted, not started
  bool no_more = false;     // rank > 0: rank 0 said done
  int idle = 0;             // rank > 0: compute threads waiting

 private:
  // Sets stop and wakes every waiting thread. Holds no lock on entry.
  void StopAndWake();
};

// Compute threads that are stopped and joined however the call ends.
class Threads {
 public:
  // Threads are numbered from `first_thread` (in errors and the watch).
  explicit Threads(RankRun& run, int first_thread = 0)
      : run_(run), first_thread_(first_thread) {}
  ~Threads();
  template <class Take>
  void Start(int count, Take take) {
    {
      std::lock_guard<std::mutex> lock(run_.mu);
      run_.running += count;
    }
    for (int i = 0; i < count; ++i) {
      const int thread = first_thread_ + i;
      try {
        threads_.emplace_back(
            [this, take, thread] { run_.ComputeLoop(take, thread); });
      } catch (const std::system_error& e) {
        CannotStart(i, count, e.code().value());
      }
    }
  }
  void Join();

 private:
  // Thread `started` of `count` could not start: the threads already
  // running are stopped and joined (by the destructor) and the call throws
  // fanout::Error naming the thread, the count and the limit.
  [[noreturn]] void CannotStart(int started, int count, int err);

  RankRun& run_;
  const int first_thread_;
  std::vector<std::thread> threads_;
};

}  // namespace fanout::mpi::internal

#endif  // FANOUT_BACKENDS_MPI_RANK_RUN_H_
