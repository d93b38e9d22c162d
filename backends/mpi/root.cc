// Rank 0's part of a call on ranks: `jobs` compute threads on the task
// counter, and the calling thread answering the other ranks' requests for
// chunks until every rank was told "done" (see roles.h).
#include <mutex>
#include <vector>

#include "backends/mpi/backoff.h"
#include "backends/mpi/check.h"
#include "backends/mpi/exchange.h"
#include "backends/mpi/protocol.h"
#include "backends/mpi/rank_run.h"
#include "backends/mpi/roles.h"

namespace fanout::mpi::internal {
namespace {

class Root {
 public:
  Root(const World& w, RankRun& run, std::uint64_t call)
      : w_(w),
        run_(run),
        call_(call),
        all_threads_(run.options.jobs * w.size),
        requests_(w.size),
        pending_(w.size - 1, MPI_REQUEST_NULL),
        ready_(w.size - 1),
        remotes_(w.size - 1) {}

  // Runs rank 0's compute threads and answers requests until every rank
  // was told "done" and every local thread finished.
  void Serve() {
    Threads threads(run_);
    // Chunks come off core's counter (sized by Executor::run for every
    // compute thread of the job: ranks start alike).
    threads.Start(run_.options.jobs, [this](Chunk* c) {
      return run_.control.Claim(&c->begin, &c->end);
    });
    for (int r = 1; r < w_.size; ++r) Post(r);
    Backoff backoff;
    for (;;) {
      const bool activity = remotes_ > 0 && AnswerReady();
      if (run_.CheckStop()) {
        std::lock_guard<std::mutex> lock(run_.mu);
        run_.work_cv.notify_all();
      }
      {
        std::lock_guard<std::mutex> lock(run_.mu);
        if (remotes_ == 0 && run_.running == 0) break;
      }
      backoff.Pace(activity, run_);
    }
    threads.Join();
  }

 private:
  // Waits (without blocking) for rank r's next request.
  void Post(int r) {
    Check(MPI_Irecv(&requests_[r], kRequestWords, MPI_UINT64_T, r, kTagRequest,
                    w_.comm, &pending_[r - 1]),
          "MPI_Irecv");
  }

  // Answers every request that arrived; true when any did.
  bool AnswerReady() {
    int count = 0;
    Check(MPI_Testsome(w_.size - 1, pending_.data(), &count, ready_.data(),
                       MPI_STATUSES_IGNORE),
          "MPI_Testsome");
    if (count == MPI_UNDEFINED) count = 0;
    for (int k = 0; k < count; ++k) Answer(ready_[k] + 1);
    return count > 0;
  }

  // Takes in rank r's request (progress, failure, cancel) and replies with a
  // chunk, "not now" (near the end, to a rank with no idle thread) or "done".
  void Answer(int r) {
    const Request q = requests_[r];
    if (q.call != call_ || q.n != run_.job.n) {
      Diverged(w_, call_, run_.job.n, r, q.call, q.n);
    }
    if (run_.options.progress != nullptr) {
      run_.options.progress->fetch_add(q.done, std::memory_order_relaxed);
    }
    // Why that rank stopped (kNone: it did not): every rank then stops
    // for the same reason.
    if (q.stopped != 0) run_.Stop(static_cast<StopReason>(q.stopped));
    run_.CheckStop();
    // "done" carries why the call stopped, if it did.
    std::uint64_t reply[3] = {call_, kDone,
                              static_cast<std::uint64_t>(run_.stopped())};
    Chunk c;
    if (run_.stop.load()) {
      // done
    } else if (q.idle == 0 && run_.control.RemainingChunks() <=
                                  4 * static_cast<std::size_t>(all_threads_)) {
      reply[1] = reply[2] = kNotNow;  // near the end: no read-ahead
    } else if (run_.control.Claim(&c.begin, &c.end)) {
      reply[1] = c.begin;
      reply[2] = c.end;
    }
    Check(MPI_Send(reply, 3, MPI_UINT64_T, r, kTagReply, w_.comm), "MPI_Send");
    if (reply[1] == kDone) {
      --remotes_;
    } else {
      Post(r);
    }
  }

  const World& w_;
  RankRun& run_;
  const std::uint64_t call_;
  const int all_threads_;
  std::vector<Request> requests_;     // the last request of each rank
  std::vector<MPI_Request> pending_;  // ranks 1.. size-1: receives posted
  std::vector<int> ready_;            // MPI_Testsome's output
  int remotes_;                       // ranks not yet told "done"
};

}  // namespace

RunReport RunRoot(const World& w, const Job& job, const RunOptions& options,
                  std::uint64_t call) {
  RankRun run(job, options, 0);
  run.several_ranks = true;
  Root(w, run, call).Serve();
  return Exchange(w, run, call);
}

}  // namespace fanout::mpi::internal
