// fanout/backends/mpi/rank_run.h — one rank's part of one call: its compute
// threads, the chunks they run, and what ran (ranges, failures, progress).
// IWYU pragma: private, include "backends/mpi/mpi.h"
//
// Rank 0's threads take chunks straight off a Dispenser; another rank's
// threads take them from the local queue its calling thread fills:
//
//   RankRun run(job, options, rank);
//   {
//     Threads threads(run);  // stopped and joined however the scope ends
//     threads.Start(options.jobs, [&](Chunk* c) { return counter.Take(c); });
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
#include <string>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "core/executor.h"

namespace fanout::mpi::internal {

// Tasks [begin, end).
struct Chunk {
  std::size_t begin = 0;
  std::size_t end = 0;
};

class RankRun {
 public:
  RankRun(const Job& job, const RunOptions& options, int rank)
      : job(job), options(options), worker("rank " + std::to_string(rank)) {}

  // True when this rank should take no new chunk (fail-fast or cancelled).
  bool CheckStop();

  // Runs one chunk on the calling thread and records what ran.
  void RunChunk(Chunk c);

  // A compute thread: chunks from `take` until it has none or the rank stops.
  template <class Take>
  void ComputeLoop(Take take) {
    {
      fanout::internal::InTaskScope in_task;  // nested calls run inline
      Chunk c;
      while (!CheckStop() && take(&c)) RunChunk(c);
    }
    std::lock_guard<std::mutex> lock(mu);
    --running;
    comm_cv.notify_all();
  }

  // The local queue of a rank other than 0.
  bool TakeQueued(Chunk* c);

  const Job& job;
  const RunOptions& options;
  const std::string worker;

  std::atomic<bool> stop{false};
  std::atomic<bool> cancelled{false};
  std::atomic<bool> failed_fast{false};
  std::atomic<std::size_t> done{0};  // tasks finished here, ok or failed

  std::mutex mu;
  std::condition_variable work_cv;  // compute threads wait for chunks
  std::condition_variable comm_cv;  // the calling thread waits for events
  std::vector<Chunk> ranges;        // chunks run here (up to a fail-fast stop)
  std::vector<TaskError> failures;  // tasks failed here
  int running = 0;                  // compute threads not yet finished
  std::deque<Chunk> queue;          // rank > 0: chunks granted, not started
  bool no_more = false;             // rank > 0: rank 0 said done
  int idle = 0;                     // rank > 0: compute threads waiting

 private:
  // Sets stop and wakes every waiting thread. Holds no lock on entry.
  void StopAndWake();
};

// Compute threads that are stopped and joined however the call ends.
class Threads {
 public:
  explicit Threads(RankRun& run) : run_(run) {}
  ~Threads();
  template <class Take>
  void Start(int count, Take take) {
    {
      std::lock_guard<std::mutex> lock(run_.mu);
      run_.running += count;
    }
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, take] { run_.ComputeLoop(take); });
    }
  }
  void Join();

 private:
  RankRun& run_;
  std::vector<std::thread> threads_;
};

// Rank 0's task counter.
class Dispenser {
 public:
  Dispenser(std::size_t n, std::size_t batch) : n_(n), batch_(batch) {}
  bool Take(Chunk* c) {
    const std::size_t begin =
        next_.fetch_add(batch_, std::memory_order_relaxed);
    if (begin >= n_) return false;
    *c = {begin, std::min(n_, begin + batch_)};
    return true;
  }
  std::size_t RemainingChunks() const {
    const std::size_t next = next_.load(std::memory_order_relaxed);
    return next >= n_ ? 0 : (n_ - next + batch_ - 1) / batch_;
  }

 private:
  const std::size_t n_;
  const std::size_t batch_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace fanout::mpi::internal

#endif  // FANOUT_BACKENDS_MPI_RANK_RUN_H_
