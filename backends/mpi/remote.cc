// The part of a rank other than 0 in a call on ranks: `jobs` compute threads
// fed from a local queue, and the calling thread asking rank 0 for chunks,
// one request at a time, until rank 0 says "done" (see roles.h).
#include <cstdint>
#include <mutex>

#include "backends/mpi/backoff.h"
#include "backends/mpi/check.h"
#include "backends/mpi/exchange.h"
#include "backends/mpi/protocol.h"
#include "backends/mpi/rank_run.h"
#include "backends/mpi/roles.h"

namespace fanout::mpi::internal {
namespace {

class Remote {
 public:
  Remote(const World& w, RankRun& run, std::uint64_t call)
      : w_(w), run_(run), call_(call) {}

  // Runs this rank's compute threads and feeds them until rank 0 said
  // "done" and every local thread finished.
  void Serve() {
    Threads threads(run_);
    threads.Start(run_.options.jobs,
                  [this](Chunk* c) { return run_.TakeQueued(c); });
    Backoff backoff;
    for (;;) {
      bool activity = outstanding_ && TakeReply();
      run_.CheckStop();
      if (!outstanding_ && !got_done_) activity = Ask() || activity;
      if (got_done_) {
        std::unique_lock<std::mutex> lock(run_.mu);
        run_.comm_cv.wait(lock, [&] { return run_.running == 0; });
        break;
      }
      backoff.Pace(activity, run_);
    }
    threads.Join();
  }

 private:
  // Takes in rank 0's reply if it arrived: a chunk for the queue, "not now"
  // or "done". True when it arrived.
  bool TakeReply() {
    int complete = 0;
    Check(MPI_Test(&pending_, &complete, MPI_STATUS_IGNORE), "MPI_Test");
    if (complete == 0) return false;
    outstanding_ = false;
    if (reply_[0] != call_) Diverged(w_, call_, run_.job.n, 0, reply_[0], 0);
    std::lock_guard<std::mutex> lock(run_.mu);
    if (reply_[1] == kDone) {
      // Rank 0 says why the call stopped, if it did.
      if (reply_[2] != 0)
        run_.control.RequestStop(static_cast<StopReason>(reply_[2]));
      got_done_ = true;
      run_.no_more = true;
      run_.work_cv.notify_all();
    } else if (reply_[1] == kNotNow) {
      not_now_ = true;
    } else {
      not_now_ = false;
      run_.queue.push_back({reply_[1], reply_[2]});
      run_.work_cv.notify_one();
    }
    return true;
  }

  // Sends rank 0 a request when this rank wants a chunk (fewer queued than
  // idle threads, or one of read-ahead unless told "not now") or must report
  // a stop. True when it sent one.
  bool Ask() {
    bool want;
    int idle;
    {
      std::lock_guard<std::mutex> lock(run_.mu);
      idle = run_.idle;
      const std::size_t queued = run_.queue.size();
      want =
          run_.stop.load() || queued < static_cast<std::size_t>(idle > 0 ? idle
                                                                : not_now_ ? 0
                                                                           : 1);
    }
    if (!want) return false;
    const std::size_t done = run_.done.load();
    Request q;
    q.call = call_;
    q.n = run_.job.n;
    q.done = done - reported_;
    q.idle = static_cast<std::uint64_t>(idle);
    q.threads = static_cast<std::uint64_t>(run_.options.jobs);
    q.stopped = static_cast<std::uint64_t>(run_.stopped());
    reported_ = done;
    Check(MPI_Irecv(reply_, 3, MPI_UINT64_T, 0, kTagReply, w_.comm, &pending_),
          "MPI_Irecv");
    Check(MPI_Send(&q, kRequestWords, MPI_UINT64_T, 0, kTagRequest, w_.comm),
          "MPI_Send");
    outstanding_ = true;
    return true;
  }

  const World& w_;
  RankRun& run_;
  const std::uint64_t call_;
  std::uint64_t reply_[3] = {0, 0, 0};  // {call, begin, end} or kDone/kNotNow
  MPI_Request pending_ = MPI_REQUEST_NULL;
  bool outstanding_ = false;  // a request sent, its reply not yet in
  bool got_done_ = false;     // rank 0 said "done"
  bool not_now_ = false;      // rank 0 declined read-ahead
  std::size_t reported_ = 0;  // tasks done already reported to rank 0
};

}  // namespace

RunReport RunRemote(const World& w, const Job& job, const RunOptions& options,
                    std::uint64_t call) {
  RankRun run(job, options, w.rank);
  run.several_ranks = true;
  Remote(w, run, call).Serve();
  return Exchange(w, run, call);
}

}  // namespace fanout::mpi::internal
