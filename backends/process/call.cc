#include "backends/process/call.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <optional>
#include <utility>

#include "backends/process/failure_text.h"
#include "backends/process/wire.h"
#include "core/errors.h"
#include "core/internal/failure_wire.h"
#include "core/internal/fork.h"
#include "core/internal/signal_scope.h"
#include "core/internal/spin.h"
#include "core/internal/wait_status.h"

namespace fanout::process_internal {
namespace {

using Clock = std::chrono::steady_clock;

// How often the caller wakes to mirror progress, look at cancel and time
// tasks (task_timeout).
constexpr int kTickMs = 10;

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kTimedOut:
      return "timed out";
    case StopReason::kInterrupted:
      return "interrupted";
    case StopReason::kCancelled:
      return "cancelled";
    default:
      return "stopped";
  }
}

}  // namespace

Call::Call(const Job& job, const RunOptions& options, int workers,
           SharedBlock& shared)
    : job_(job),
      options_(options),
      stop_(*options.stop),
      shared_(shared),
      workers_(workers) {}

Call::~Call() {
  KillAll();
  RestoreFork();
  for (Worker& w : workers_) {
    internal::CloseFd(&w.pidfd);
    internal::CloseFd(&w.read_fd);
  }
  internal::CloseFd(&wake_.read);
  internal::CloseFd(&wake_.write);
}

RunReport Call::Run() {
  if (!internal::MakePipe(&wake_, O_NONBLOCK)) ThrowErrno("pipe2");
  internal::SignalScope signals_scope(wake_.write);
  Start();
  Supervise();
  MirrorProgress();
  const bool kept_out_of_fork = dontfork_bytes_ != 0;
  RestoreFork();
  if (job_.trivial_result_size != 0 && !report_.workers_stopped) {
    const std::uint64_t t0 =
        options_.trace != nullptr ? internal::TraceNow() : 0;
    CopyResults(kept_out_of_fork);
    Note(-1, "copy results", "move", t0, internal::TraceNow(),
         "\"bytes\":" + std::to_string(job_.n * job_.trivial_result_size));
  }
  ReapLeaving();
  return std::move(report_);
}

// ---------------------------------------------------------------------------
// Starting.

void Call::Start() {
  oom_kills_at_start_ = internal::OomKillCount();
  KeepResultsOutOfFork();
  const WorkerPlan plan = MakePlan();
  std::fflush(nullptr);  // nothing buffered is printed twice
  for (std::size_t k = 0; k < workers_.size(); ++k) {
    // Ctrl+C, the deadline or a cancel while the workers are forked (each
    // fork takes 0.2 ms to 30 ms): no more are forked, and those running
    // are stopped.
    if (StopArrived()) {
      workers_.resize(k);
      StopFromOutside();
      break;
    }
    if (k > 0 && !NeedAnotherWorker(k)) {
      // Places never used are free for other work at once.
      if (options_.place_freed != nullptr) {
        for (std::size_t j = k; j < workers_.size(); ++j) {
          options_.place_freed(options_.place_ctx);
        }
      }
      workers_.resize(k);
      break;
    }
    Fork(k, plan);
  }
  for (const Worker& w : workers_) pidfds_ = pidfds_ && w.pidfd >= 0;
}

bool Call::StopArrived() {
  if (const int sig = internal::TakeSignal(wake_.read); sig != 0) {
    stop_.RequestStop(StopReason::kInterrupted, sig);
  }
  return stop_.CheckDeadline();
}

WorkerPlan Call::MakePlan() const {
  return WorkerPlan{&job_,
                    &options_,
                    &shared_.control(),
                    nullptr,
                    job_.trivial_result_size != 0 ? shared_.results() : nullptr,
                    contiguous_,
                    dontfork_bytes_ != 0,
                    -1};
}

void Call::Fork(std::size_t k, WorkerPlan plan, pid_t replaces) {
  Worker& w = workers_[k];
  w = Worker{};
  // A traced call: the worker records into a track of its own, in memory
  // the caller reads after it ends (or dies).
  std::uint64_t fork_start = 0;
  if (options_.trace != nullptr) {
    plan.trace = options_.trace->NewProcessTrack(static_cast<int>(k),
                                                 "worker " + std::to_string(k));
    if (plan.retry_task != kNoTask) {
      plan.trace->retry_task = plan.retry_task;
      plan.trace->retry_attempt =
          static_cast<std::uint32_t>(plan.retry_attempt);
    }
    w.trace = plan.trace;
    fork_start = internal::TraceNow();
  }
  internal::Pipe pipe;
  if (!internal::MakePipe(&pipe)) ThrowErrno("pipe2");
  // Descriptors of this call the worker must not hold.
  std::vector<int> close_fds = {pipe.read, wake_.read, wake_.write};
  for (std::size_t j = 0; j < workers_.size(); ++j) {
    if (j == k) continue;
    if (workers_[j].read_fd >= 0) close_fds.push_back(workers_[j].read_fd);
    if (workers_[j].pidfd >= 0) close_fds.push_back(workers_[j].pidfd);
  }
  plan.slot = &shared_.slot(static_cast<int>(k));
  plan.stage = shared_.stage(static_cast<int>(k));
  plan.write_fd = pipe.write;
  const pid_t pid =
      internal::ForkChild({.close_fds = close_fds, .flush_stdio = false});
  if (pid == 0) WorkerMain(plan);
  const int fork_errno = errno;
  internal::CloseFd(&pipe.write);
  if (pid < 0) {
    internal::CloseFd(&pipe.read);
    errno = fork_errno;
    ThrowErrno("fork");
  }
  w.pid = pid;
  if (w.trace != nullptr) {
    options_.trace->SetPid(w.trace, pid);
    std::string args = "\"pid\":" + std::to_string(pid);
    if (replaces > 0) args += ",\"replaces_pid\":" + std::to_string(replaces);
    Note(-1,
         replaces > 0 ? "fork worker " + std::to_string(k) +
                            " (replacing pid " + std::to_string(replaces) + ")"
                      : "fork worker " + std::to_string(k),
         "fork", fork_start, internal::TraceNow(), args);
    if (replaces > 0) {
      Note(static_cast<int>(k), "replaces pid " + std::to_string(replaces),
           "replace", fork_start, fork_start, args);
    }
  }
  w.handed_begin = plan.handed_begin;
  w.handed_end = plan.handed_end;
  w.read_fd = pipe.read;
  internal::SetNonBlocking(w.read_fd);
  w.pidfd = internal::PidfdOpen(pid);
  w.seen_at = Clock::now();
}

void Call::Note(int k, std::string name, const char* cat, std::uint64_t t0,
                std::uint64_t t1, std::string args) const {
  if (options_.trace == nullptr) return;
  options_.trace->Note(k < 0 ? nullptr : workers_[k].trace, std::move(name),
                       cat, t0, t1, std::move(args));
}

bool Call::NeedAnotherWorker(std::size_t k) const {
  const Control& control = shared_.control();
  const auto unclaimed = [&] { return control.Unclaimed(); };
  if (!unclaimed()) return false;
  // A big job needs every worker; only a small one (a few tasks per worker)
  // may be finished off by the workers already running.
  if (job_.n > 4 * workers_.size()) return true;
  // Give the previous worker a moment to start (bounded: on a busy machine
  // it may not be scheduled soon) and then a little longer to claim what is
  // left. Tiny tasks are then all claimed and another fork would be pure
  // cost; a task that runs longer leaves work unclaimed and gets a worker.
  // Yield rather than spin: on a busy machine the worker may need this CPU.
  const WorkerSlot& previous = shared_.slot(static_cast<int>(k - 1));
  internal::YieldUntil(
      [&] {
        return previous.current.load(std::memory_order_relaxed) != kNoTask ||
               !unclaimed();
      },
      Clock::now() + std::chrono::microseconds(300));
  internal::YieldUntil([&] { return !unclaimed(); },
                       Clock::now() + std::chrono::microseconds(50));
  return unclaimed();
}

// ---------------------------------------------------------------------------
// Supervising.

void Call::Supervise() {
  std::size_t running = workers_.size();
  while (running > 0) {
    if (StopRequested()) return;
    MirrorProgress();
    if (options_.task_timeout.count() > 0) KillOverdue();
    if (job_.cancelled != nullptr) KillCancelled();
    const int ready = Poll();
    // Results and failures first, then exits (a worker that exits has
    // nothing more to say once its pipe is drained).
    if (!DrainReady(ready) || !ReapExited(&running)) {
      // A failure under kFailFast: nothing else is needed.
      shared_.control().RequestStop(StopReason::kFailed);
      KillAll();
      return;
    }
  }
}

bool Call::StopRequested() {
  if (!StopArrived()) return false;
  StopFromOutside();
  return true;
}

int Call::PollTimeoutMs() const {
  // Every tick: the token may be raised from outside (cancel) at any time,
  // and progress is mirrored; sooner when the deadline is nearer.
  int timeout_ms = kTickMs;
  if (stop_.has_deadline()) {
    const long long left =
        std::chrono::duration_cast<std::chrono::milliseconds>(stop_.deadline() -
                                                              Clock::now())
            .count() +
        1;
    timeout_ms = static_cast<int>(
        std::clamp<long long>(left, 0, static_cast<long long>(kTickMs)));
  }
  return timeout_ms;
}

int Call::Poll() {
  fds_.clear();
  owner_.clear();
  fds_.push_back({wake_.read, POLLIN, 0});
  owner_.push_back(-1);
  for (std::size_t k = 0; k < workers_.size(); ++k) {
    const Worker& w = workers_[k];
    if (w.reaped || w.leaving) continue;
    if (w.pidfd >= 0) {
      fds_.push_back({w.pidfd, POLLIN, 0});
      owner_.push_back(static_cast<int>(k));
    }
    if (w.read_fd >= 0) {
      fds_.push_back({w.read_fd, POLLIN, 0});
      owner_.push_back(static_cast<int>(k));
    }
  }
  const int ready = poll(fds_.data(), fds_.size(), PollTimeoutMs());
  if (ready < 0 && errno != EINTR) ThrowErrno("poll");
  return ready;
}

bool Call::DrainReady(int ready) {
  bool stop = false;
  exited_.assign(workers_.size(), !pidfds_);
  for (std::size_t i = 1; ready > 0 && i < fds_.size(); ++i) {
    if (fds_[i].revents == 0) continue;
    if (fds_[i].fd == workers_[owner_[i]].pidfd) {
      exited_[owner_[i]] = true;
    } else if (!stop) {
      stop = !Drain(owner_[i]);
    }
  }
  return !stop;
}

bool Call::ReapExited(std::size_t* running) {
  for (std::size_t k = 0; k < workers_.size(); ++k) {
    Worker& w = workers_[k];
    if (w.reaped || w.leaving) continue;
    if (!exited_[k] || !Reap(w, /*block=*/false)) {
      // Its pipe is closed and it says it finished: every outcome it had is
      // in shared memory or was read from the pipe. What is left is its
      // exit, which need not hold up the call (ReapLeaving).
      if (w.read_fd < 0 && shared_.slot(static_cast<int>(k))
                               .finished.load(std::memory_order_acquire)) {
        w.leaving = true;
        WorkerGone(running);
      }
      continue;
    }
    internal::CloseFd(&w.pidfd);
    const int worker = static_cast<int>(k);
    if (!Drain(worker)) {
      --*running;
      return false;
    }
    if (FinishedCleanly(worker)) {
      WorkerGone(running);
    } else if (!Replace(worker, running)) {
      return false;
    }
  }
  return true;
}

bool Call::FinishedCleanly(int k) const {
  const Worker& w = workers_[k];
  const bool finished =
      shared_.slot(k).finished.load(std::memory_order_acquire);
  if (!w.status_known) return finished;
  const internal::WaitOutcome ended = internal::DecodeWaitStatus(w.status);
  return ended.signal == 0 && ended.exit_status == 0 && finished;
}

void Call::KillOverdue() {
  const auto now = Clock::now();
  for (std::size_t k = 0; k < workers_.size(); ++k) {
    Worker& w = workers_[k];
    if (w.pid <= 0 || w.reaped || w.leaving || w.timed_out != kNoTask) {
      continue;
    }
    const WorkerSlot& slot = shared_.slot(static_cast<int>(k));
    const std::uint64_t started = slot.started.load(std::memory_order_relaxed);
    if (started != w.seen_started) {
      w.seen_started = started;
      w.seen_at = now;
      continue;
    }
    const std::size_t current = TaskRunningIn(slot);
    if (started == 0 || current == kNoTask) continue;  // between tasks
    if (now - w.seen_at >= options_.task_timeout) {
      w.timed_out = current;
      kill(w.pid, SIGKILL);
      if (options_.trace != nullptr) {
        const std::uint64_t t = internal::TraceNow();
        Note(static_cast<int>(k),
             "task_timeout: killed running task " + std::to_string(current),
             "kill", t, t,
             "\"task\":" + std::to_string(current) + ",\"timeout_ms\":" +
                 std::to_string(options_.task_timeout.count()));
      }
    }
  }
}

void Call::KillCancelled() {
  for (std::size_t k = 0; k < workers_.size(); ++k) {
    Worker& w = workers_[k];
    if (w.pid <= 0 || w.reaped || w.leaving || w.timed_out != kNoTask ||
        w.cancelled != kNoTask) {
      continue;
    }
    const std::size_t current =
        TaskRunningIn(shared_.slot(static_cast<int>(k)));
    if (current == kNoTask ||
        job_.cancelled[current].load(std::memory_order_acquire) == 0) {
      continue;
    }
    w.cancelled = current;
    kill(w.pid, SIGKILL);
    if (options_.trace != nullptr) {
      const std::uint64_t t = internal::TraceNow();
      Note(static_cast<int>(k),
           "cancelled: killed running task " + std::to_string(current), "kill",
           t, t, "\"task\":" + std::to_string(current));
    }
  }
}

// ---------------------------------------------------------------------------
// Workers' pipes, ends and progress.

bool Call::Drain(int k) {
  Worker& w = workers_[k];
  if (w.read_fd < 0) return true;
  if (!internal::ReadAvailable(w.read_fd, &w.inbox)) {
    internal::CloseFd(&w.read_fd);  // every writer is gone
  }
  return HandleMessages(k);
}

bool Call::HandleMessages(int k) {
  Worker& w = workers_[k];
  std::size_t pos = 0;
  bool keep_going = true;
  Message m;
  const std::uint64_t t0 = options_.trace != nullptr ? internal::TraceNow() : 0;
  std::size_t decoded = 0;
  while (NextMessage(w.inbox, &pos, &m)) {
    if (m.kind == MessageKind::kResult) {
      try {
        job_.decode_result(job_.ctx, m.index, m.body);
        ++decoded;
        continue;
      } catch (...) {
        TaskFailure f = internal::describe_current_exception();
        AddFailure(k, m.index, std::move(f.type),
                   "cannot decode the result: " + f.message);
      }
    } else if (std::optional<internal::WireFailure> f =
                   internal::ParseFailure(m.body)) {
      AddFailure(k, m.index, std::move(f->type), std::move(f->message));
    } else {
      AddFailure(k, m.index, "", "the worker sent a malformed failure message");
    }
    if (options_.errors == ErrorPolicy::kFailFast) keep_going = false;
  }
  w.inbox.erase(0, pos);
  w.handled += pos;
  if (decoded > 0 && options_.trace != nullptr) {
    Note(-1, "decode results", "move", t0, internal::TraceNow(),
         "\"results\":" + std::to_string(decoded) + ",\"bytes\":" +
             std::to_string(pos) + ",\"pid\":" + std::to_string(w.pid));
  }
  return keep_going;
}

void Call::AddFailure(int k, std::size_t index, std::string type,
                      std::string message) {
  report_.failures.emplace_back(
      TaskError::Details{index, "process", WorkerName(k), std::move(type),
                         std::move(message), 0, -1, nullptr});
}

void Call::WorkerGone(std::size_t* running) {
  --*running;
  if (options_.place_freed != nullptr) options_.place_freed(options_.place_ctx);
}

void Call::KillAll() {
  for (Worker& w : workers_) {
    if (w.pid > 0 && !w.reaped) kill(w.pid, SIGKILL);
  }
  for (Worker& w : workers_) {
    if (w.pid > 0 && !w.reaped) Reap(w, /*block=*/true);
  }
}

void Call::ReapLeaving() {
  for (Worker& w : workers_) {
    if (!w.leaving || w.reaped) continue;
    Reap(w, /*block=*/true);
    internal::CloseFd(&w.pidfd);
  }
}

bool Call::Reap(Worker& w, bool block) {
  int status = 0;
  rusage usage{};
  pid_t r;
  do {
    r = wait4(w.pid, &status, block ? 0 : WNOHANG, &usage);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  w.reaped = true;
  if (r == w.pid) w.peak_kib = usage.ru_maxrss;
  // Otherwise ECHILD: someone else reaped it (SIGCHLD ignored, or a
  // wait(-1) elsewhere in the program). It is gone; its status is unknown.
  w.status_known = r == w.pid;
  if (w.status_known) w.status = status;
  return true;
}

void Call::MirrorProgress() {
  if (options_.progress == nullptr) return;
  const std::size_t now =
      shared_.control().progress.load(std::memory_order_relaxed);
  if (now > progress_seen_) {
    options_.progress->fetch_add(now - progress_seen_,
                                 std::memory_order_relaxed);
    progress_seen_ = now;
  }
}

// ---------------------------------------------------------------------------
// Ending the call with an error: every worker is stopped and reaped first.

void Call::StopFromOutside() {
  for (std::size_t k = 0; k < workers_.size(); ++k) {
    const WorkerSlot& slot = shared_.slot(static_cast<int>(k));
    // A worker that finished (leaving, reaped or about to exit) runs
    // nothing: its slot still names the last task of a chunk that ran whole.
    if (workers_[k].reaped ||
        slot.finished.load(std::memory_order_acquire) != 0) {
      continue;
    }
    const std::size_t current = TaskRunningIn(slot);
    // Only a task still running (not one that finished, the worker now
    // between tasks).
    if (current != kNoTask) {
      report_.running.push_back({current, WorkerName(static_cast<int>(k))});
    }
    if (options_.trace != nullptr) {
      options_.trace->CloseOpen(workers_[k].trace, internal::TraceNow(),
                                current != kNoTask ? current + 1 : kNoTask,
                                internal::kTraceUnfinished);
    }
  }
  if (options_.trace != nullptr) {
    const std::uint64_t t = internal::TraceNow();
    Note(-1,
         std::string("stopped (") + StopReasonName(stop_.reason()) +
             "): every worker killed",
         "stop", t, t);
  }
  std::sort(report_.running.begin(), report_.running.end(),
            [](const RunningTask& a, const RunningTask& b) {
              return a.index < b.index;
            });
  KillAll();
  MirrorProgress();
  report_.stopped = stop_.reason();
  report_.workers_stopped = true;
}

}  // namespace fanout::process_internal
