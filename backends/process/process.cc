// The process backend (see process.h): fork()ed workers per call, a control
// block in MAP_SHARED memory, and a caller that waits in poll() on a pidfd per
// worker, the result pipes and a signal self-pipe.
#include "backends/process/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/executor.h"
#include "core/internal/scheduler.h"

namespace fanout {
namespace {

constexpr std::int64_t kNoTask = -1;
constexpr std::size_t kPage = 4096;
// A worker that finds its parent already gone exits with this status.
constexpr int kOrphanStatus = 125;
// How often the caller wakes to mirror progress and look at cancel.
constexpr int kTickMs = 10;
// Pipe messages are flushed once this many bytes are buffered (and at the end
// of every chunk).
constexpr std::size_t kFlushBytes = 1 << 16;

// ---------------------------------------------------------------------------
// Shared memory layout: Control, then one WorkerSlot per worker, then (for
// trivially copyable results) n result slots, page aligned.

// The call's chunk counter, progress and stop flag: core's scheduler state,
// placed in the shared block so every worker claims off the same counter.
using Control = internal::CallControl;

struct alignas(64) WorkerSlot {
  // The task the worker is running (or ran last); kNoTask before its first.
  std::atomic<std::int64_t> current{kNoTask};
  // Set just before a clean _exit(0): an exit(0) from a task leaves it clear.
  std::atomic<std::uint32_t> finished{0};
};

class SharedBlock {
 public:
  // Room for the control block, `workers` slots and `result_bytes` of
  // result slots (plus a page of slack: see Reset).
  SharedBlock(int workers, std::size_t result_bytes)
      : header_(HeaderBytes(workers)), bytes_(header_ + kPage + result_bytes) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<char*>(p);
  }
  ~SharedBlock() { munmap(base_, bytes_); }
  SharedBlock(const SharedBlock&) = delete;
  SharedBlock& operator=(const SharedBlock&) = delete;

  bool Fits(int workers, std::size_t result_bytes) const {
    return HeaderBytes(workers) <= header_ &&
           header_ + kPage + result_bytes <= bytes_;
  }
  std::size_t bytes() const { return bytes_; }

  // Readies the block for a call. The result slots start at the same offset
  // within a page as `mirror` (the caller's result array), so that a worker
  // can map the shared pages straight over its copy of that array (see
  // AliasResults). Results of an earlier call may remain: every task of the
  // new call overwrites its own slot.
  void Reset(int workers, const void* mirror) {
    new (base_) Control;
    for (int w = 0; w < workers; ++w) new (&slot(w)) WorkerSlot;
    results_ =
        base_ + header_ + reinterpret_cast<std::uintptr_t>(mirror) % kPage;
  }

  Control& control() const { return *reinterpret_cast<Control*>(base_); }
  WorkerSlot& slot(int w) const {
    return reinterpret_cast<WorkerSlot*>(base_ + sizeof(Control))[w];
  }
  char* results() const { return results_; }

 private:
  static std::size_t HeaderBytes(int workers) {
    return (sizeof(Control) + sizeof(WorkerSlot) * workers + kPage - 1) /
           kPage * kPage;
  }
  const std::size_t header_;
  const std::size_t bytes_;
  char* base_ = nullptr;
  char* results_ = nullptr;
};

// ---------------------------------------------------------------------------
// Messages from a worker to the caller, over the worker's pipe.

enum class MessageKind : std::uint32_t { kResult = 1, kFailure = 2 };

struct MessageHeader {
  MessageKind kind;
  std::uint32_t length;  // bytes after the header
  std::uint64_t index;   // the task
};

void AppendHeader(std::string& buf, MessageKind kind, std::size_t index) {
  MessageHeader h{kind, 0, index};
  buf.append(reinterpret_cast<const char*>(&h), sizeof(h));
}

// Sets the length of the message whose header starts at `at`.
void PatchLength(std::string& buf, std::size_t at) {
  const std::uint32_t length =
      static_cast<std::uint32_t>(buf.size() - at - sizeof(MessageHeader));
  std::memcpy(&buf[at + offsetof(MessageHeader, length)], &length,
              sizeof(length));
}

void AppendFailure(std::string& buf, std::size_t index, const std::string& type,
                   const std::string& message) {
  const std::size_t at = buf.size();
  AppendHeader(buf, MessageKind::kFailure, index);
  const std::uint32_t type_length = static_cast<std::uint32_t>(type.size());
  buf.append(reinterpret_cast<const char*>(&type_length), sizeof(type_length));
  buf += type;
  buf += message;
  PatchLength(buf, at);
}

// ---------------------------------------------------------------------------
// Small helpers.

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev
                           : "signal " + std::to_string(sig);
}

std::string SignalDescription(int sig) {
  const char* d = sigdescr_np(sig);
  return d != nullptr ? d : "unknown signal";
}

int PidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

[[noreturn]] void ThrowErrno(const char* what) {
  throw Error(std::string("process backend: ") + what + ": " + strerror(errno));
}

// ---------------------------------------------------------------------------
// SIGINT / SIGTERM during calls. The first call in flight installs the
// handlers (unless the signal is ignored), the last one restores the old
// ones. The handler writes the signal number to every call's wake pipe.

constexpr int kMaxWakeFds = 64;
std::atomic<int> g_wake_fds[kMaxWakeFds];
std::once_flag g_wake_fds_once;

class SignalScope {
 public:
  explicit SignalScope(int wake_fd) {
    std::call_once(g_wake_fds_once, [] {
      for (auto& fd : g_wake_fds) fd.store(-1);
    });
    std::lock_guard<std::mutex> lock(Mu());
    for (int i = 0; i < kMaxWakeFds; ++i) {
      int expected = -1;
      if (g_wake_fds[i].compare_exchange_strong(expected, wake_fd)) {
        index_ = i;
        break;
      }
    }
    if (Users()++ == 0) {
      for (int k = 0; k < 2; ++k) {
        struct sigaction old;
        sigaction(kSignals[k], nullptr, &old);
        installed_[k] = old.sa_handler != SIG_IGN;
        Old()[k] = old;
        if (installed_[k]) {
          struct sigaction sa;
          std::memset(&sa, 0, sizeof(sa));
          sa.sa_handler = &Handler;
          sigfillset(&sa.sa_mask);
          sa.sa_flags = SA_RESTART;
          sigaction(kSignals[k], &sa, nullptr);
        }
        Installed()[k] = installed_[k];
      }
    }
  }
  ~SignalScope() {
    std::lock_guard<std::mutex> lock(Mu());
    if (index_ >= 0) g_wake_fds[index_].store(-1);
    if (--Users() == 0) {
      for (int k = 0; k < 2; ++k) {
        if (Installed()[k]) sigaction(kSignals[k], &Old()[k], nullptr);
      }
    }
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  static constexpr int kSignals[2] = {SIGINT, SIGTERM};
  static void Handler(int sig) {
    const int saved = errno;
    const unsigned char byte = static_cast<unsigned char>(sig);
    for (auto& slot : g_wake_fds) {
      const int fd = slot.load(std::memory_order_relaxed);
      if (fd >= 0) {
        [[maybe_unused]] ssize_t r = write(fd, &byte, 1);
      }
    }
    errno = saved;
  }
  static std::mutex& Mu() {
    static auto* mu = new std::mutex;
    return *mu;
  }
  static int& Users() {
    static int users = 0;
    return users;
  }
  static struct sigaction* Old() {
    static struct sigaction old[2];
    return old;
  }
  static bool* Installed() {
    static bool installed[2] = {false, false};
    return installed;
  }
  int index_ = -1;
  bool installed_[2] = {false, false};
};

// ---------------------------------------------------------------------------
// The worker side. Runs in the forked child and never returns.

struct WorkerPlan {
  const Job* job;
  const RunOptions* options;
  Control* control;
  WorkerSlot* slot;
  char* results;    // shared result slots, or null
  bool contiguous;  // the caller's result slots form one array
  bool dontfork;    // its whole pages were not copied into the worker
  int write_fd;
  pid_t parent;
};

void WriteAll(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t w = write(fd, data, size);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(kOrphanStatus);  // the caller is gone (EPIPE) or the pipe broke
    }
    data += w;
    size -= static_cast<std::size_t>(w);
  }
}

void Flush(int fd, std::string& buf) {
  if (buf.empty()) return;
  WriteAll(fd, buf.data(), buf.size());
  buf.clear();
}

void ResetSignals() {
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &dfl, nullptr);  // fails harmlessly for reserved signals
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// In a worker whose caller's result slots form one array: maps the shared
// result pages over the whole pages of the worker's copy of that array, so a
// task's result lands in shared memory as the task stores it (no
// copy-on-write fault, no copy). Returns the task range [head, tail) whose
// slots lie entirely in those pages; the slots outside it (on the array's
// partial first and last pages) must still be copied. Returns {0, 0} when
// nothing could be mapped.
std::pair<std::size_t, std::size_t> AliasResults(const WorkerPlan& plan) {
  const Job& job = *plan.job;
  const std::size_t size = job.trivial_result_size;
  const auto data =
      reinterpret_cast<std::uintptr_t>(job.result_slot(job.ctx, 0));
  const std::uintptr_t end = data + job.n * size;
  const std::uintptr_t first = (data + kPage - 1) / kPage * kPage;
  const std::uintptr_t last = end / kPage * kPage;
  if (last <= first) return {0, 0};
  void* const from = plan.results + (first - data);
  void* const to = mremap(from, 0, last - first, MREMAP_MAYMOVE | MREMAP_FIXED,
                          reinterpret_cast<void*>(first));
  if (to == MAP_FAILED) {
    // The pages were left out of the fork (MADV_DONTFORK): give the tasks
    // private ones to store into; each chunk is then copied.
    if (plan.dontfork &&
        mmap(reinterpret_cast<void*>(first), last - first,
             PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
             -1, 0) == MAP_FAILED) {
      _exit(kOrphanStatus);
    }
    return {0, 0};
  }
  // One call fills every page-table entry: far cheaper than a fault per page
  // (each costs several microseconds in a VM). Best effort (Linux >= 5.14).
  madvise(to, last - first, MADV_POPULATE_WRITE);
  const std::size_t head =
      (first - data + size - 1) / size;           // first whole slot
  const std::size_t tail = (last - data) / size;  // past the last
  return {head, std::max(head, tail)};
}

// Where a worker's task outcomes go: results into the shared pages (trivial
// results) or encoded down the pipe, failures down the pipe. Task by task,
// so that the worker's slot always names the task it is running.
class WorkerSink {
 public:
  static constexpr bool kPerTask = true;

  explicit WorkerSink(const WorkerPlan& plan)
      : plan_(plan),
        job_(*plan.job),
        size_(job_.trivial_result_size),
        aliased_(size_ != 0 && plan.contiguous
                     ? AliasResults(plan)
                     : std::pair<std::size_t, std::size_t>{0, 0}) {}

  void Started(std::size_t i) {
    plan_.slot->current.store(static_cast<std::int64_t>(i),
                              std::memory_order_relaxed);
  }

  bool Finished(std::size_t i) {
    if (size_ != 0) {
      if (!plan_.contiguous) {
        std::memcpy(plan_.results + i * size_, job_.result_slot(job_.ctx, i),
                    size_);
      }
      return true;
    }
    const std::size_t at = buf_.size();
    AppendHeader(buf_, MessageKind::kResult, i);
    try {
      job_.encode_result(job_.ctx, i, &buf_);
      PatchLength(buf_, at);
    } catch (...) {
      buf_.resize(at);
      TaskFailure f = internal::describe_current_exception();
      AppendFailure(buf_, i, f.type, "cannot encode the result: " + f.message);
      return false;
    }
    if (buf_.size() >= kFlushBytes) Flush(plan_.write_fd, buf_);
    return true;
  }

  void Failed(std::size_t i, TaskFailure&& failure) {
    AppendFailure(buf_, i, failure.type, failure.message);
  }

  // Copies what the aliased pages did not hold, then sends what is queued.
  void ChunkDone(std::size_t begin, std::size_t end) {
    if (size_ != 0 && plan_.contiguous) {
      CopyResults(begin, std::min(end, aliased_.first));
      CopyResults(std::max(begin, aliased_.second), end);
    }
    Flush(plan_.write_fd, buf_);
  }

  void FlushAll() { Flush(plan_.write_fd, buf_); }

 private:
  void CopyResults(std::size_t b, std::size_t e) {
    if (b < e) {
      std::memcpy(plan_.results + b * size_, job_.result_slot(job_.ctx, b),
                  (e - b) * size_);
    }
  }

  const WorkerPlan& plan_;
  const Job& job_;
  const std::size_t size_;
  // Tasks whose results need no copy: they are stored in shared pages.
  const std::pair<std::size_t, std::size_t> aliased_;
  std::string buf_;
};

[[noreturn]] void WorkerMain(const WorkerPlan& plan,
                             const std::vector<int>& close_fds) {
  // Die with the caller; if it already died, the parent is now someone else.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != plan.parent) _exit(kOrphanStatus);
  ResetSignals();
  for (int fd : close_fds) close(fd);

  {
    internal::InTaskScope in_task;
    WorkerSink sink(plan);
    // The caller watches the call's stop token and stops workers from
    // outside; here only the shared control block's stop flag is seen.
    internal::ChunkRunner<WorkerSink> runner(
        *plan.job, *plan.control,
        plan.options->errors == ErrorPolicy::kFailFast, &plan.control->progress,
        /*stop=*/nullptr, sink);
    runner.RunClaimed();
    sink.FlushAll();
  }
  internal::RunExitHooks();  // e.g. a Queue learns this producer ended well
  std::fflush(nullptr);      // what the tasks printed
  plan.slot->finished.store(1, std::memory_order_release);
  _exit(0);
}

// ---------------------------------------------------------------------------
// The caller side: one call.

struct Worker {
  pid_t pid = -1;
  int pidfd = -1;
  int read_fd = -1;
  bool reaped = false;
  int status = 0;
  bool status_known = false;
  std::string inbox;  // bytes read, not yet a whole message
};

class Call {
 public:
  Call(const Job& job, const RunOptions& options, int workers,
       SharedBlock& shared)
      : job_(job),
        options_(options),
        start_(std::chrono::steady_clock::now()),
        shared_(shared),
        workers_(workers) {}

  ~Call() {
    KillAll();
    RestoreFork();
    for (Worker& w : workers_) {
      CloseFd(w.pidfd);
      CloseFd(w.read_fd);
    }
    CloseFd(wake_read_);
    CloseFd(wake_write_);
  }

  RunReport Run();

 private:
  void Start();
  // Whether worker k (k >= 1) is worth forking: false once every task is
  // claimed by the workers already running.
  bool NeedAnotherWorker(std::size_t k) const;
  void KillAll();
  bool Reap(Worker& w, bool block);
  // Reads what is in the worker's pipe; false when the caller must stop
  // (a failure under kFailFast).
  bool Drain(int w);
  bool HandleMessages(int w);
  [[noreturn]] void ThrowDeath(int w);
  // The call's stop token was raised (deadline, cancel, a signal): records
  // what was running, stops every worker and says so in the report.
  void StopFromOutside();
  void MirrorProgress();
  int CheckSignal();
  std::string WorkerName(int w) const {
    return "pid " + std::to_string(workers_[w].pid);
  }

  const Job& job_;
  const RunOptions& options_;
  const std::chrono::steady_clock::time_point start_;
  SharedBlock& shared_;
  std::vector<Worker> workers_;
  int wake_read_ = -1;
  int wake_write_ = -1;
  bool contiguous_ = false;
  // The caller's whole result pages, kept out of the workers' copies of
  // memory (MADV_DONTFORK) while the call runs: forks copy fewer page-table
  // entries and the caller's pages stay writable (no copy-on-write faults
  // when the results are copied in). Workers map shared pages there.
  std::uintptr_t dontfork_begin_ = 0;
  std::size_t dontfork_bytes_ = 0;
  void RestoreFork() {
    if (dontfork_bytes_ == 0) return;
    madvise(reinterpret_cast<void*>(dontfork_begin_), dontfork_bytes_,
            MADV_DOFORK);
    dontfork_bytes_ = 0;
  }
  std::size_t progress_seen_ = 0;
  RunReport report_;
};

void Call::Start() {
  const std::size_t size = job_.trivial_result_size;
  if (size != 0 && job_.n > 0) {
    const char* first = static_cast<const char*>(job_.result_slot(job_.ctx, 0));
    const char* last =
        static_cast<const char*>(job_.result_slot(job_.ctx, job_.n - 1));
    contiguous_ = last == first + (job_.n - 1) * size;
    if (contiguous_) {
      const auto data = reinterpret_cast<std::uintptr_t>(first);
      const std::uintptr_t begin = (data + kPage - 1) / kPage * kPage;
      const std::uintptr_t end = (data + job_.n * size) / kPage * kPage;
      if (end > begin && madvise(reinterpret_cast<void*>(begin), end - begin,
                                 MADV_DONTFORK) == 0) {
        dontfork_begin_ = begin;
        dontfork_bytes_ = end - begin;
      }
    }
  }
  WorkerPlan plan{&job_,
                  &options_,
                  &shared_.control(),
                  nullptr,
                  size != 0 ? shared_.results() : nullptr,
                  contiguous_,
                  dontfork_bytes_ != 0,
                  -1,
                  getpid()};

  std::fflush(nullptr);  // nothing buffered is printed twice
  for (std::size_t k = 0; k < workers_.size(); ++k) {
    if (k > 0 && !NeedAnotherWorker(k)) {
      workers_.resize(k);
      break;
    }
    Worker& w = workers_[k];
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) ThrowErrno("pipe2");
    // Descriptors of this call the worker must not hold.
    std::vector<int> close_fds = {fds[0], wake_read_, wake_write_};
    for (std::size_t j = 0; j < k; ++j) {
      close_fds.push_back(workers_[j].read_fd);
      if (workers_[j].pidfd >= 0) close_fds.push_back(workers_[j].pidfd);
    }
    plan.slot = &shared_.slot(static_cast<int>(k));
    plan.write_fd = fds[1];
    const pid_t pid = fork();
    if (pid == 0) WorkerMain(plan, close_fds);
    const int fork_errno = errno;
    close(fds[1]);
    if (pid < 0) {
      close(fds[0]);
      errno = fork_errno;
      ThrowErrno("fork");
    }
    w.pid = pid;
    w.read_fd = fds[0];
    fcntl(w.read_fd, F_SETFL, O_NONBLOCK);
    w.pidfd = PidfdOpen(pid);
  }
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
  const WorkerSlot& previous = shared_.slot(static_cast<int>(k - 1));
  const auto now = [] { return std::chrono::steady_clock::now(); };
  const auto give_up = now() + std::chrono::microseconds(300);
  // Yield rather than spin: on a busy machine the worker may need this CPU.
  while (previous.current.load(std::memory_order_relaxed) == kNoTask &&
         unclaimed() && now() < give_up) {
    sched_yield();
  }
  const auto claim_by = now() + std::chrono::microseconds(50);
  while (unclaimed() && now() < claim_by) sched_yield();
  return unclaimed();
}

void Call::KillAll() {
  for (Worker& w : workers_) {
    if (w.pid > 0 && !w.reaped) kill(w.pid, SIGKILL);
  }
  for (Worker& w : workers_) {
    if (w.pid > 0 && !w.reaped) Reap(w, /*block=*/true);
  }
}

bool Call::Reap(Worker& w, bool block) {
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(w.pid, &status, block ? 0 : WNOHANG);
    if (r == w.pid) {
      w.reaped = true;
      w.status = status;
      w.status_known = true;
      return true;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    // ECHILD: someone else reaped it (SIGCHLD ignored, or a wait(-1)
    // elsewhere in the program). It is gone; its status is unknown.
    w.reaped = true;
    w.status_known = false;
    return true;
  }
}

bool Call::HandleMessages(int k) {
  Worker& w = workers_[k];
  std::size_t pos = 0;
  bool keep_going = true;
  while (w.inbox.size() - pos >= sizeof(MessageHeader)) {
    MessageHeader h;
    std::memcpy(&h, w.inbox.data() + pos, sizeof(h));
    if (w.inbox.size() - pos - sizeof(h) < h.length) break;
    const std::string_view body(w.inbox.data() + pos + sizeof(h), h.length);
    pos += sizeof(h) + h.length;
    if (h.kind == MessageKind::kResult) {
      try {
        job_.decode_result(job_.ctx, h.index, body);
      } catch (...) {
        TaskFailure f = internal::describe_current_exception();
        report_.failures.emplace_back(TaskError::Details{
            h.index, "process", WorkerName(k), std::move(f.type),
            "cannot decode the result: " + f.message, 0, -1, nullptr});
        if (options_.errors == ErrorPolicy::kFailFast) keep_going = false;
      }
    } else {
      std::uint32_t type_length = 0;
      std::memcpy(&type_length, body.data(), sizeof(type_length));
      const std::string_view rest = body.substr(sizeof(type_length));
      report_.failures.emplace_back(TaskError::Details{
          h.index, "process", WorkerName(k),
          std::string(rest.substr(0, type_length)),
          std::string(rest.substr(type_length)), 0, -1, nullptr});
      if (options_.errors == ErrorPolicy::kFailFast) keep_going = false;
    }
  }
  w.inbox.erase(0, pos);
  return keep_going;
}

bool Call::Drain(int k) {
  Worker& w = workers_[k];
  if (w.read_fd < 0) return true;
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = read(w.read_fd, buf, sizeof(buf));
    if (r > 0) {
      w.inbox.append(buf, static_cast<std::size_t>(r));
      if (static_cast<std::size_t>(r) < sizeof(buf)) break;
      continue;
    }
    if (r == 0) {  // every writer is gone
      CloseFd(w.read_fd);
      break;
    }
    if (errno == EINTR) continue;
    break;  // EAGAIN: nothing more for now
  }
  return HandleMessages(k);
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

int Call::CheckSignal() {
  unsigned char byte = 0;
  int sig = 0;
  while (read(wake_read_, &byte, 1) == 1) sig = byte;
  return sig;
}

void Call::ThrowDeath(int k) {
  Worker& w = workers_[k];
  const std::int64_t current =
      shared_.slot(k).current.load(std::memory_order_relaxed);
  const std::string pid = WorkerName(k);
  // Stop and reap the others before anything is thrown.
  KillAll();
  std::string how;
  int sig = 0;
  int exit_status = -1;
  if (!w.status_known) {
    how = "worker ended and was reaped outside fanout (exit status unknown)";
  } else if (WIFSIGNALED(w.status)) {
    sig = WTERMSIG(w.status);
    how = "worker killed by " + SignalName(sig) + " (" +
          SignalDescription(sig) + ")";
    if (sig == SIGKILL) {
      how += ", possibly out of memory (see the kernel log for the OOM killer)";
    }
  } else {
    exit_status = WEXITSTATUS(w.status);
    how = "worker exited with status " + std::to_string(exit_status);
  }
  if (current == kNoTask) {
    throw Error("process backend: " + how + " (" + pid +
                ") before it started a task");
  }
  how += " while running this task";
  TaskError error(TaskError::Details{static_cast<std::size_t>(current),
                                     "process", pid, "", how, sig, exit_status,
                                     nullptr});
  throw error.with_failed_tasks(report_.failures.size() + 1);
}

void Call::StopFromOutside() {
  std::vector<std::pair<std::int64_t, int>> tasks;  // (task, worker)
  for (std::size_t k = 0; k < workers_.size(); ++k) {
    if (workers_[k].reaped) continue;
    const std::int64_t current = shared_.slot(static_cast<int>(k))
                                     .current.load(std::memory_order_relaxed);
    if (current != kNoTask) tasks.emplace_back(current, static_cast<int>(k));
  }
  std::sort(tasks.begin(), tasks.end());
  for (const auto& [task, k] : tasks) {
    report_.running.push_back({static_cast<std::size_t>(task), WorkerName(k)});
  }
  KillAll();
  MirrorProgress();
  report_.stopped = options_.stop->reason();
  report_.workers_stopped = true;
}

RunReport Call::Run() {
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) ThrowErrno("pipe2");
  wake_read_ = wake[0];
  wake_write_ = wake[1];
  SignalScope signals_scope(wake_write_);
  Start();

  StopToken& token = *options_.stop;
  const bool timed = token.has_deadline();
  const auto deadline = token.deadline();
  bool pidfds = true;
  for (const Worker& w : workers_) pidfds = pidfds && w.pidfd >= 0;

  std::vector<pollfd> fds;
  std::vector<int> owner;    // worker of each pollfd, -1 for the wake pipe
  std::vector<bool> exited;  // pidfd readable (every worker without pidfds)
  std::size_t running = workers_.size();
  while (running > 0) {
    if (const int sig = CheckSignal(); sig != 0) {
      token.RequestStop(StopReason::kInterrupted, sig);
    }
    if (token.CheckDeadline()) {
      StopFromOutside();
      break;
    }
    MirrorProgress();

    fds.clear();
    owner.clear();
    fds.push_back({wake_read_, POLLIN, 0});
    owner.push_back(-1);
    for (std::size_t k = 0; k < workers_.size(); ++k) {
      const Worker& w = workers_[k];
      if (w.reaped) continue;
      if (w.pidfd >= 0) {
        fds.push_back({w.pidfd, POLLIN, 0});
        owner.push_back(static_cast<int>(k));
      }
      if (w.read_fd >= 0) {
        fds.push_back({w.read_fd, POLLIN, 0});
        owner.push_back(static_cast<int>(k));
      }
    }
    // Wake every tick (the token may be raised from outside) and at the
    // deadline, whichever comes first.
    int timeout_ms = kTickMs;
    if (timed) {
      const long long left =
          std::chrono::duration_cast<std::chrono::milliseconds>(
              deadline - std::chrono::steady_clock::now())
              .count() +
          1;
      timeout_ms = static_cast<int>(
          std::clamp<long long>(left, 0, static_cast<long long>(kTickMs)));
    }
    const int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) ThrowErrno("poll");
    if (const int sig = CheckSignal(); sig != 0) {
      token.RequestStop(StopReason::kInterrupted, sig);
      StopFromOutside();
      break;
    }

    // Results and failures first, then exits (a worker that exits has
    // nothing more to say once its pipe is drained).
    bool stop = false;
    exited.assign(workers_.size(), !pidfds);
    for (std::size_t i = 1; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == workers_[owner[i]].pidfd) {
        exited[owner[i]] = true;
      } else if (!stop) {
        stop = !Drain(owner[i]);
      }
    }
    if (!stop) {
      for (std::size_t k = 0; k < workers_.size() && !stop; ++k) {
        Worker& w = workers_[k];
        if (w.reaped || !exited[k] || !Reap(w, /*block=*/false)) continue;
        --running;
        stop = !Drain(static_cast<int>(k));
        if (stop) break;
        const bool clean =
            (w.status_known && WIFEXITED(w.status) &&
             WEXITSTATUS(w.status) == 0 &&
             shared_.slot(static_cast<int>(k))
                 .finished.load(std::memory_order_acquire)) ||
            (!w.status_known && shared_.slot(static_cast<int>(k))
                                    .finished.load(std::memory_order_acquire));
        if (!clean) ThrowDeath(static_cast<int>(k));
        CloseFd(w.pidfd);
      }
    }
    if (stop) {  // a failure under kFailFast: nothing else is needed
      shared_.control().RequestStop(StopReason::kFailed);
      KillAll();
      break;
    }
  }
  MirrorProgress();
  const bool kept_out_of_fork = dontfork_bytes_ != 0;
  RestoreFork();

  if (job_.trivial_result_size != 0 && !report_.workers_stopped) {
    const std::size_t size = job_.trivial_result_size;
    if (contiguous_) {
      // The caller never touched these pages: map them in one call, not a
      // fault per page.
      const auto from = reinterpret_cast<std::uintptr_t>(shared_.results());
      const std::uintptr_t page = from / kPage * kPage;
      madvise(reinterpret_cast<void*>(page), from + job_.n * size - page,
              MADV_POPULATE_READ);
      if (!kept_out_of_fork) {
        // The fork made the caller's result pages copy-on-write: make them
        // writable again in one call too, rather than one fault per page.
        const auto to =
            reinterpret_cast<std::uintptr_t>(job_.result_slot(job_.ctx, 0));
        const std::uintptr_t to_page = to / kPage * kPage;
        madvise(reinterpret_cast<void*>(to_page), to + job_.n * size - to_page,
                MADV_POPULATE_WRITE);
      }
      std::memcpy(job_.result_slot(job_.ctx, 0), shared_.results(),
                  job_.n * size);
    } else {
      for (std::size_t i = 0; i < job_.n; ++i) {
        std::memcpy(job_.result_slot(job_.ctx, i), shared_.results() + i * size,
                    size);
      }
    }
  }
  return std::move(report_);
}

class ProcessExecutor final : public Executor {
 public:
  explicit ProcessExecutor(int jobs) : jobs_(jobs) {}
  std::string_view name() const override { return "process"; }
  bool shares_memory() const override { return false; }
  int jobs() const override { return jobs_; }

 protected:
  std::string inline_worker() const override {
    return "pid " + std::to_string(getpid());
  }
  RunReport RunParallel(const Job& job, const RunOptions& options) override {
    const int workers = static_cast<int>(
        std::min<std::size_t>(static_cast<std::size_t>(options.jobs), job.n));
    const std::size_t result_bytes = job.trivial_result_size * job.n;
    std::unique_ptr<SharedBlock> block = TakeBlock(workers, result_bytes);
    block->Reset(workers,
                 result_bytes != 0 ? job.result_slot(job.ctx, 0) : nullptr);
    block->control().Reset(job.n, options.batch_size);
    RunReport report;
    {
      Call call(job, options, workers, *block);
      report = call.Run();
    }  // every worker is reaped: the block is free again
    GiveBack(std::move(block));
    return report;
  }

 private:
  // The shared block of the last call is kept for the next one (up to
  // kMaxCachedBytes): its pages are then already allocated, zeroed and
  // mapped in the caller, which for a million results saves more than the
  // rest of the call's overhead together. Concurrent calls get their own.
  static constexpr std::size_t kMaxCachedBytes = std::size_t{64} << 20;

  std::unique_ptr<SharedBlock> TakeBlock(int workers,
                                         std::size_t result_bytes) {
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      if (cached_ != nullptr && cached_->Fits(workers, result_bytes)) {
        return std::move(cached_);
      }
    }
    return std::make_unique<SharedBlock>(workers, result_bytes);
  }

  void GiveBack(std::unique_ptr<SharedBlock> block) {
    if (block->bytes() > kMaxCachedBytes) return;
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cached_ == nullptr || cached_->bytes() < block->bytes()) {
      cached_ = std::move(block);
    }
  }

  int jobs_;
  std::mutex cache_mu_;
  std::unique_ptr<SharedBlock> cached_;
};

}  // namespace

std::unique_ptr<Executor> make_process_executor(int jobs) {
  return std::make_unique<ProcessExecutor>(std::max(jobs, 1));
}

}  // namespace fanout

FANOUT_REGISTER_BACKEND(
    process,
    "fork()ed workers per call; any closure works; survives crashes, "
    "timeouts and Ctrl+C and names the task that failed",
    [](const fanout::ExecutorOptions& options) {
      return fanout::make_process_executor(options.jobs);
    })
