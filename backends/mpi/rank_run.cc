// One rank's part of one call (see rank_run.h).
#include "backends/mpi/rank_run.h"

#include <mutex>
#include <utility>

namespace fanout::mpi::internal {

void RankRun::StopAndWake() {
  stop.store(true);
  std::lock_guard<std::mutex> lock(mu);
  work_cv.notify_all();
  comm_cv.notify_all();
}

bool RankRun::CheckStop() {
  if (options.cancel != nullptr &&
      options.cancel->load(std::memory_order_relaxed) &&
      !cancelled.load(std::memory_order_relaxed)) {
    cancelled.store(true);
    StopAndWake();
  }
  return stop.load(std::memory_order_relaxed);
}

void RankRun::RunChunk(Chunk c) {
  TaskFailure failure;
  std::size_t begin = c.begin;
  std::size_t attempted_end = c.end;
  while (begin < c.end) {
    const std::size_t ok = job.run_range(job.ctx, begin, c.end, &failure);
    const std::size_t finished = ok + (begin + ok < c.end ? 1 : 0);
    if (options.progress != nullptr) {
      options.progress->fetch_add(finished, std::memory_order_relaxed);
    }
    done.fetch_add(finished, std::memory_order_relaxed);
    if (begin + ok == c.end) break;
    const std::size_t failed = begin + ok;
    {
      std::lock_guard<std::mutex> lock(mu);
      failures.push_back(fanout::internal::task_error(failed, "mpi", worker,
                                                      std::move(failure)));
    }
    failure = TaskFailure();
    if (options.errors == ErrorPolicy::kFailFast) {
      attempted_end = failed + 1;
      failed_fast.store(true);
      StopAndWake();
      break;
    }
    begin = failed + 1;
  }
  std::lock_guard<std::mutex> lock(mu);
  ranges.push_back({c.begin, attempted_end});
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

void Threads::Join() {
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

}  // namespace fanout::mpi::internal
