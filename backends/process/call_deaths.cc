// The caller's side of a worker's death (see call.h): what the dead worker
// finished is kept, the task it was running is run again or fails (retries,
// then quarantine), a replacement takes the rest of its chunk; or the call
// ends with an error naming the death.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <string>
#include <utility>

#include "backends/process/call.h"
#include "backends/process/failure_text.h"
#include "backends/process/wire.h"
#include "core/errors.h"
#include "core/internal/wait_status.h"

namespace fanout::process_internal {

// ---------------------------------------------------------------------------
// A worker that died: what it finished is kept, the task it was running is
// run again or fails, and a replacement takes the rest of its chunk.

bool Call::Replace(int k, std::size_t* running) {
  Worker& w = workers_[k];
  WorkerSlot& slot = shared_.slot(k);
  const internal::WaitOutcome ended = internal::DecodeWaitStatus(w.status);
  // Deaths that cannot be survived without losing or repeating work end
  // the call: status unknown, a lost result pipe.
  if (!w.status_known ||
      (ended.exit_status == kLostPipeExitStatus &&
       slot.lost_pipe_fd.load(std::memory_order_acquire) >= 0)) {
    ThrowDeath(k, slot.current.load(std::memory_order_relaxed));
  }
  if (slot.claiming.load(std::memory_order_acquire) != 0) {
    const std::string worker = WorkerName(k);
    const long long oom_kills = OomKillsSinceStart(k);
    KillAll();
    throw Error("process backend: worker " +
                internal::DescribeWaitStatus(w.status, oom_kills) + " (" +
                worker +
                ") while it took a chunk of tasks; which tasks it took is "
                "unknown, so the call cannot go on without losing some");
  }
  if (!ReadStage(k)) {
    --*running;
    return false;
  }
  // Its chunk, as its slot records it; before it recorded one (it died
  // right after its fork, before its first task), the tasks it was handed
  // at the fork, if any: no task of it finished. Nothing else was claimed
  // (`claiming` is clear), so a replacement loses and repeats nothing.
  const bool recorded =
      slot.chunk_begin.load(std::memory_order_relaxed) != kNoTask;
  const std::size_t begin =
      recorded ? slot.chunk_begin.load(std::memory_order_relaxed)
               : w.handed_begin;
  const std::size_t end =
      recorded ? slot.chunk_end.load(std::memory_order_relaxed) : w.handed_end;
  // The task it was running, if any; every task of its chunk before that
  // one (or before `done`, between tasks) finished and was delivered.
  const std::size_t running_task = recorded ? TaskRunningIn(slot) : kNoTask;
  std::size_t rest =
      running_task != kNoTask ? running_task
      : recorded
          ? std::clamp(slot.done.load(std::memory_order_acquire), begin, end)
          : begin;
  // The trace: the dead worker's row ends with its death, its open span
  // (the tasks it finished of its chunk, and the one it died in) closed now.
  if (options_.trace != nullptr) {
    w.death_noted = true;
    const std::uint64_t t = internal::TraceNow();
    options_.trace->CloseOpen(w.trace, t,
                              running_task != kNoTask ? running_task + 1 : rest,
                              internal::kTraceDied);
    Note(k,
         "worker " + internal::DescribeWaitStatus(w.status) +
             (running_task != kNoTask
                  ? " running task " + std::to_string(running_task)
                  : std::string(" between tasks")),
         "death", t, t,
         "\"pid\":" + std::to_string(w.pid) + ",\"task\":" +
             (running_task != kNoTask ? std::to_string(running_task)
                                      : std::string("null")));
  }
  std::size_t blamed = kNoTask;
  if (w.cancelled != kNoTask && running_task == w.cancelled) {
    // Killed because its task was cancelled: that task fails as cancelled
    // (never run again), and the replacement starts after it.
    rest = running_task + 1;
    report_.failures.push_back(TaskError(TaskError::Details{
        running_task, "process", WorkerName(k), "fanout::CancelledError",
        "cancelled (its worker was killed)", SIGKILL, -1, nullptr}));
  } else if (w.cancelled != kNoTask) {
    // It finished the cancelled task just before the kill: nobody to blame.
  } else if (w.timed_out != kNoTask) {
    // Killed for task_timeout: the task that ran too long, unless it
    // finished just before the kill (then the task running, if any, runs
    // again in the replacement, not counted as an attempt).
    if (running_task == w.timed_out) blamed = running_task;
  } else if (running_task != kNoTask) {
    blamed = running_task;
  } else if (ended.exit_status != kRetireExitStatus &&
             ++unblamed_deaths_ > kMaxUnblamedDeaths) {
    // (A worker that left after a task ran into the memory limit is not a
    // death to count: that task failed, and it does so at most once.)
    ThrowDeath(k, kNoTask);
  }
  if (blamed != kNoTask) {
    const int deaths = ++deaths_[blamed];
    if (deaths > options_.retries) {
      // Quarantined: it fails, and the replacement starts after it.
      rest = blamed + 1;
      TaskError error = DeathError(k, blamed, deaths);
      if (options_.errors == ErrorPolicy::kFailFast) {
        const std::size_t failed = report_.failures.size() + 1;
        KillAll();
        throw error.with_failed_tasks(failed);
      }
      report_.failures.push_back(std::move(error));
    }
  }
  // The tasks before `rest` ended (succeeded, failed, or quarantined): the
  // dead worker counted none of its chunk, unless it died sending it.
  if (rest > begin && slot.counted.load(std::memory_order_acquire) != begin) {
    shared_.control().progress.fetch_add(rest - begin,
                                         std::memory_order_relaxed);
  }
  WorkerPlan plan = MakePlan();
  if (rest < end) {
    plan.handed_begin = rest;
    plan.handed_end = end;
  }
  if (blamed != kNoTask && rest == blamed) {
    plan.retry_task = blamed;  // its next attempt
    plan.retry_attempt = deaths_[blamed] + 1;
  }
  const Control& control = shared_.control();
  if (control.stopped() != StopReason::kNone ||
      (plan.handed_begin == plan.handed_end && !control.Unclaimed())) {
    WorkerGone(running);  // nothing left for a replacement
    return true;
  }
  internal::CloseFd(&w.read_fd);
  new (&slot) WorkerSlot;
  std::fflush(nullptr);
  Fork(static_cast<std::size_t>(k), plan, w.pid);
  pidfds_ = pidfds_ && workers_[k].pidfd >= 0;
  return true;
}

bool Call::ReadStage(int k) {
  Worker& w = workers_[k];
  const WorkerSlot& slot = shared_.slot(k);
  // A message the death cut short in the pipe is whole in the stage.
  w.inbox.clear();
  const std::uint64_t base = slot.stage_base.load(std::memory_order_acquire);
  const std::uint32_t staged = slot.staged.load(std::memory_order_acquire);
  if (staged == 0 || w.handled < base || w.handled - base >= staged) {
    return true;
  }
  const std::uint64_t from = w.handled - base;
  w.inbox.assign(shared_.stage(k) + from, staged - from);
  return HandleMessages(k);
}

long long Call::OomKillsSinceStart(int k) const {
  const Worker& w = workers_[k];
  if (!w.status_known ||
      internal::DecodeWaitStatus(w.status).signal != SIGKILL ||
      oom_kills_at_start_ < 0) {
    return -1;
  }
  const long long now = internal::OomKillCount();
  return now < oom_kills_at_start_ ? -1 : now - oom_kills_at_start_;
}

TaskError Call::DeathError(int k, std::size_t task, int attempts) const {
  const Worker& w = workers_[k];
  Death death{WorkerName(k), w.status_known,         w.status, -1,
              task,          report_.failures.size()};
  death.attempts = attempts;
  death.peak_kib = w.peak_kib;
  death.oom_kills = OomKillsSinceStart(k);
  if (w.timed_out != kNoTask) death.timed_out = options_.task_timeout;
  return process_internal::DeathError(death);
}

void Call::ThrowDeath(int k, std::size_t task) {
  const Worker& w = workers_[k];
  const WorkerSlot& slot = shared_.slot(k);
  Death death{WorkerName(k), w.status_known,
              w.status,      slot.lost_pipe_fd.load(std::memory_order_acquire),
              task,          report_.failures.size()};
  death.peak_kib = w.peak_kib;
  if (options_.trace != nullptr && !w.death_noted) {
    const std::uint64_t t = internal::TraceNow();
    options_.trace->CloseOpen(
        w.trace, t, death.current != kNoTask ? death.current + 1 : kNoTask,
        internal::kTraceDied);
    Note(k,
         "worker " + internal::DescribeWaitStatus(w.status) +
             " (the call fails)",
         "death", t, t, "\"pid\":" + std::to_string(w.pid));
  }
  death.oom_kills = OomKillsSinceStart(k);
  death.unblamed_deaths = unblamed_deaths_;
  KillAll();
  process_internal::ThrowDeath(death);
}

}  // namespace fanout::process_internal
