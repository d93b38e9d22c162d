#include "backends/process/worker.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "backends/process/cpu_budget.h"
#include "backends/process/wire.h"
#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/scheduler.h"

namespace fanout::process_internal {
namespace {

// Pipe messages are flushed once this many bytes are buffered (and at the end
// of every chunk).
constexpr std::size_t kFlushBytes = 1 << 16;

// The result pipe as the worker found it, to notice a task replacing it.
struct PipeId {
  dev_t dev = 0;
  ino_t ino = 0;
};

PipeId IdOf(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return {};
  return {st.st_dev, st.st_ino};
}

[[noreturn]] void LosePipe(const WorkerPlan& plan) {
  plan.slot->lost_pipe_fd.store(plan.write_fd, std::memory_order_release);
  _exit(kLostPipeExitStatus);
}

// Sends what `buf` holds to the caller, unless a task closed or replaced the
// pipe (then the worker leaves: what it would send is lost).
void Flush(const WorkerPlan& plan, const PipeId& pipe, std::string& buf) {
  if (buf.empty()) return;
  const PipeId now = IdOf(plan.write_fd);
  if (now.dev != pipe.dev || now.ino != pipe.ino ||
      !internal::WriteAll(plan.write_fd, buf.data(), buf.size())) {
    LosePipe(plan);
  }
  buf.clear();
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
    // private ones to store into; each chunk is then copied. Without them
    // the worker cannot run a task: it leaves, and the caller reports a
    // death with that exit status.
    if (plan.dontfork &&
        mmap(reinterpret_cast<void*>(first), last - first,
             PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
             -1, 0) == MAP_FAILED) {
      _exit(internal::kOrphanExitStatus);
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

// Where a worker's task outcomes go, for core's scheduler
// (internal::ChunkRunner): results into the shared pages (trivial results)
// or encoded down the pipe, failures down the pipe. Task by task, so that
// the worker's slot always names the task it is running.
class WorkerSink {
 public:
  static constexpr bool kPerTask = true;

  WorkerSink(const WorkerPlan& plan, const PipeId& pipe)
      : plan_(plan),
        pipe_(pipe),
        job_(*plan.job),
        size_(job_.trivial_result_size),
        aliased_(size_ != 0 && plan.contiguous
                     ? AliasResults(plan)
                     : std::pair<std::size_t, std::size_t>{0, 0}) {}

  // A chunk whose results all land in the aliased shared pages runs whole:
  // each result is in shared memory as its task returns, and the typed job
  // records each task's index in this worker's slot (watch_slot), so a
  // death still names its task. Other chunks run task by task, each result
  // copied or sent as its task ends.
  bool RunsWhole(std::size_t begin, std::size_t end) const {
    return begin >= aliased_.first && end <= aliased_.second;
  }
  std::atomic<std::size_t>* watch_slot() const { return &plan_.slot->current; }

  void Started(std::size_t i) {
    plan_.slot->current.store(i, std::memory_order_relaxed);
  }

  bool Finished(std::size_t i) {
    if (size_ != 0) {
      if (!plan_.contiguous) {
        std::memcpy(plan_.results + i * size_, job_.result_slot(job_.ctx, i),
                    size_);
      }
      return true;
    }
    const std::size_t at = BeginMessage(buf_, MessageKind::kResult, i);
    try {
      job_.encode_result(job_.ctx, i, &buf_);
      EndMessage(buf_, at);
    } catch (...) {
      buf_.resize(at);
      TaskFailure f = internal::describe_current_exception();
      AppendFailureMessage(buf_, i, f.type,
                           "cannot encode the result: " + f.message);
      return false;
    }
    if (buf_.size() >= kFlushBytes) Flush(plan_, pipe_, buf_);
    return true;
  }

  void Failed(std::size_t i, TaskFailure&& failure) {
    AppendFailureMessage(buf_, i, failure.type, failure.message);
  }

  // Copies what the aliased pages did not hold, then sends what is queued.
  void ChunkDone(std::size_t begin, std::size_t end) {
    if (size_ != 0 && plan_.contiguous) {
      CopyResults(begin, std::min(end, aliased_.first));
      CopyResults(std::max(begin, aliased_.second), end);
    }
    Flush(plan_, pipe_, buf_);
  }

  void FlushAll() { Flush(plan_, pipe_, buf_); }

 private:
  void CopyResults(std::size_t b, std::size_t e) {
    if (b < e) {
      std::memcpy(plan_.results + b * size_, job_.result_slot(job_.ctx, b),
                  (e - b) * size_);
    }
  }

  const WorkerPlan& plan_;
  const PipeId& pipe_;
  const Job& job_;
  const std::size_t size_;
  // Tasks whose results need no copy: they are stored in shared pages.
  const std::pair<std::size_t, std::size_t> aliased_;
  std::string buf_;
};

}  // namespace

void WorkerMain(const WorkerPlan& plan) {
  ApplyCpuBudget();  // before any task: its runtimes' thread counts
  {
    internal::InTaskScope in_task;
    const PipeId pipe = IdOf(plan.write_fd);
    WorkerSink sink(plan, pipe);
    // The caller watches the call's stop token and stops workers from
    // outside; here only the shared control block's stop flag is seen.
    internal::ChunkRunner<WorkerSink> runner(
        *plan.job, *plan.control, *plan.options, &plan.control->progress,
        /*stop=*/nullptr, sink);
    runner.RunClaimed();
    sink.FlushAll();
  }
  internal::RunExitHooks();  // e.g. a Queue learns this producer ended well
  std::fflush(nullptr);      // what the tasks printed
  plan.slot->finished.store(1, std::memory_order_release);
  _exit(0);
}

}  // namespace fanout::process_internal
