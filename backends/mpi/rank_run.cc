// One rank's part of one call (see rank_run.h).
#include "backends/mpi/rank_run.h"

#include <mutex>
#include <utility>

#include "backends/mpi/check.h"
#include "backends/mpi/mpi.h"
#include "core/internal/thread_start.h"

namespace fanout::mpi::internal {

void RankRun::StopAndWake() {
  stop.store(true);
  std::lock_guard<std::mutex> lock(mu);
  work_cv.notify_all();
  comm_cv.notify_all();
}

void RankRun::Stop(StopReason reason) {
  control.RequestStop(reason);
  if (!stop.load()) StopAndWake();
}

bool RankRun::CheckStop() {
  if (!stop.load(std::memory_order_relaxed)) {
    if (options.stop->stop_requested()) {
      Stop(options.stop->reason());
    } else if (control.stopped() != StopReason::kNone) {
      StopAndWake();  // a failure under fail-fast, seen by a compute thread
    }
  }
  return stop.load(std::memory_order_relaxed);
}

void RankRun::RunChunk(Chunk c, RankSink& sink) {
  fanout::internal::ChunkRunner<RankSink> runner(
      job, control, options, options.progress, options.stop, sink);
  if (!runner.RunChunk(c.begin, c.end)) CheckStop();
}

RankSink::RankSink(RankRun& run, int thread)
    : run_(run),
      watch_(run.options.watch != nullptr
                 ? run.options.watch->Of(thread,
                                         [&run, thread] {
                                           return run.worker + " thread " +
                                                  std::to_string(thread);
                                         })
                 : nullptr),
      thread_(thread) {}

std::string RankSink::trace_name() const {
  return run_.worker + " thread " + std::to_string(thread_);
}

std::atomic<std::size_t>* RankSink::watch_slot() const {
  return watch_ != nullptr ? &watch_->task : nullptr;
}

void RankSink::Failed(std::size_t index, TaskFailure&& failure) {
  TaskError error = fanout::internal::task_error(index, "mpi", run_.worker,
                                                 std::move(failure));
  std::lock_guard<std::mutex> lock(run_.mu);
  run_.failures.push_back(std::move(error));
}

void RankSink::FailedJob(std::size_t job_index) {
  std::lock_guard<std::mutex> lock(run_.mu);
  run_.failed_jobs.push_back(job_index);
}

void RankSink::ChunkDone(std::size_t begin, std::size_t end) {
  run_.done.fetch_add(end - begin, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(run_.mu);
  run_.ranges.push_back({begin, end});
}

bool RankRun::TakeQueued(Chunk* c) {
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    if (stop.load(std::memory_order_relaxed)) return false;
    if (!queue.empty()) {
      *c = queue.front();
      queue.pop_front();
      if (queue.empty()) comm_cv.notify_all();  // time to read ahead
      return true;
    }
    if (no_more) return false;
    ++idle;
    comm_cv.notify_all();
    work_cv.wait(lock);
    --idle;
  }
}

Threads::~Threads() {
  if (threads_.empty()) return;
  run_.stop.store(true);
  {
    std::lock_guard<std::mutex> lock(run_.mu);
    run_.no_more = true;
    run_.work_cv.notify_all();
  }
  for (std::thread& t : threads_) t.join();
}

void Threads::CannotStart(int started, int count, int err) {
  {
    std::lock_guard<std::mutex> lock(run_.mu);
    run_.running -= count - started;
  }
  // Under mpirun the other ranks wait in this call for this one: exit
  // without MPI_Finalize waiting for them, and mpirun ends the job.
  if (under_launcher()) MarkBroken();
  throw Error(fanout::internal::ThreadStartError(
      "mpi backend (" + run_.worker + ")", "compute thread", started + 1, count,
      err));
}

void Threads::Join() {
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

}  // namespace fanout::mpi::internal
