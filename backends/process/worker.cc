#include "backends/process/worker.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "backends/process/cpu_budget.h"
#include "backends/process/memory_limit.h"
#include "backends/process/wire.h"
#include "core/internal/fd.h"
#include "core/internal/fork.h"
#include "core/internal/scheduler.h"

namespace fanout::process_internal {
namespace {

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
  const std::size_t head =
      (first - data + size - 1) / size;           // first whole slot
  const std::size_t tail = (last - data) / size;  // past the last
  return {head, std::max(head, tail)};
}

// Where a worker's task outcomes go, for core's scheduler
// (internal::ChunkRunner): results into the shared pages (trivial results)
// or encoded into the worker's stage, failures into the stage; the stage is
// written to the pipe when full and at the end of every chunk. Task by task,
// so that the worker's slot always names the task it is running, and each
// outcome is delivered (in shared memory) before the slot says the task is
// done: a worker that dies loses no finished task's outcome, and the caller
// runs none of them again.
class WorkerSink {
 public:
  static constexpr bool kPerTask = true;

  WorkerSink(const WorkerPlan& plan, const PipeId& pipe)
      : plan_(plan),
        pipe_(pipe),
        job_(*plan.job),
        slot_(*plan.slot),
        size_(job_.trivial_result_size),
        aliased_(size_ != 0 && plan.contiguous
                     ? AliasResults(plan)
                     : std::pair<std::size_t, std::size_t>{0, 0}) {}

  // A chunk whose results all land in the aliased shared pages runs whole:
  // each result is in shared memory as its task returns, and the typed job
  // records each task's index in this worker's slot (watch_slot), so a
  // death still names its task and the tasks before it are known finished.
  // Other chunks run task by task, each result copied or sent as its task
  // ends. With a task_timeout every chunk runs task by task: the caller
  // times tasks by the slot's `started` count, which only Started() raises.
  bool RunsWhole(std::size_t begin, std::size_t end) const {
    return plan_.options->task_timeout.count() == 0 &&
           begin >= aliased_.first && end <= aliased_.second;
  }
  std::atomic<std::size_t>* watch_slot() const { return &plan_.slot->current; }
  internal::TraceTrack* trace_track() const { return plan_.trace; }

  // Task `begin` of chunk [begin, end) is next; its slot says so before
  // any of them runs.
  // Records the chunk in the slot, then clears `claiming` (a death from
  // here on leaves the chunk known), then maps its result pages.
  void BeginChunk(std::size_t begin, std::size_t end) {
    slot_.chunk_begin.store(begin, std::memory_order_relaxed);
    slot_.chunk_end.store(end, std::memory_order_relaxed);
    slot_.whole.store(RunsWhole(begin, end) ? 1 : 0, std::memory_order_relaxed);
    slot_.done.store(begin, std::memory_order_release);
    slot_.claiming.store(0, std::memory_order_release);
    // The chunk's pages of the aliased results are read once each before
    // its tasks store into them. A read fault on a shared mapping maps the
    // 16 pages around it at once (fault around), writable (shared memory
    // needs no write notification), so the stores then fault no more; a
    // store faults one page at a time. A read of a page already mapped is
    // one load. Cheaper than MADV_POPULATE_READ per chunk (a system call per
    // chunk: 1.3 against 1.0 ms for each of two workers writing 4 MB in
    // 16 KB chunks here), and than populating all of a worker's pages at
    // once (workers then wait on the kernel's lock of a page another one is
    // mapping). Each worker maps only the pages around its chunks.
    const std::size_t from = std::max(begin, aliased_.first);
    const std::size_t to = std::min(end, aliased_.second);
    if (from < to) {
      const auto first =
          reinterpret_cast<std::uintptr_t>(job_.result_slot(job_.ctx, from));
      const std::uintptr_t last = first + (to - from) * size_;
      // The page of `first` is one of the aliased (shared) pages.
      for (std::uintptr_t p = first / kPage * kPage; p < last; p += kPage) {
        // Atomic: another worker may be storing to this page.
        (void)std::atomic_ref<char>(*reinterpret_cast<char*>(p))
            .load(std::memory_order_relaxed);
      }
    }
  }

  void Started(std::size_t i) {
    slot_.current.store(i, std::memory_order_relaxed);
    slot_.started.store(slot_.started.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
  }

  bool Finished(std::size_t i) {
    if (size_ != 0) {
      // Outside the aliased pages the result is copied now, not at the end
      // of the chunk: it must be in shared memory before the task is done.
      if (!plan_.contiguous || i < aliased_.first || i >= aliased_.second) {
        std::memcpy(plan_.results + i * size_, job_.result_slot(job_.ctx, i),
                    size_);
      }
      MarkDone(i);
      return true;
    }
    bool ok = true;
    const std::size_t at = BeginMessage(buf_, MessageKind::kResult, i);
    try {
      job_.encode_result(job_.ctx, i, &buf_);
      EndMessage(buf_, at);
    } catch (...) {
      buf_.resize(at);
      TaskFailure f = internal::describe_current_exception();
      AppendFailureMessage(buf_, i, f.type,
                           "cannot encode the result: " + f.message);
      ok = false;
    }
    Stage();
    MarkDone(i);
    return ok;
  }

  void Failed(std::size_t task, TaskFailure&& failure) {
    // Under a memory limit, an allocation that failed ran into it.
    const std::size_t limit = plan_.options->worker_memory;
    const bool over_limit = limit != 0 && failure.type == "std::bad_alloc";
    if (over_limit) {
      const std::size_t attempts = failure.message.rfind(" (failed ");
      failure.message =
          MemoryLimitMessage(limit) + (attempts != std::string::npos
                                           ? failure.message.substr(attempts)
                                           : std::string());
    }
    AppendFailureMessage(buf_, task, failure.type, failure.message);
    Stage();
    // `task` may be a task of a group (map_reduce): the job's index done is
    // the one running.
    MarkDone(static_cast<std::size_t>(
        slot_.current.load(std::memory_order_relaxed)));
    if (over_limit) {
      // The heap may stay near the limit (fragments, memory the allocator
      // keeps): the worker leaves once the failure is sent, and the caller
      // hands the rest of its chunk to a fresh one.
      FlushStage();
      std::fflush(nullptr);
      _exit(kRetireExitStatus);
    }
  }

  // Counts the chunk's tasks (before its outcomes are sent: a caller that
  // stops the call on a failure it receives has then already seen the
  // count), then sends what is staged.
  void ChunkDone(std::size_t begin, std::size_t end) {
    // A chunk that ran whole moved `done` only for failures.
    slot_.done.store(end, std::memory_order_release);
    if (end > begin) {
      plan_.control->progress.fetch_add(end - begin, std::memory_order_relaxed);
    }
    slot_.counted.store(begin, std::memory_order_release);
    FlushStage();
  }

  void FlushAll() { FlushStage(); }

 private:
  void MarkDone(std::size_t i) {
    slot_.done.store(i + 1, std::memory_order_release);
  }

  // Moves the whole message(s) in buf_ into the stage, writing the stage to
  // the pipe first when they do not fit. A message larger than the stage
  // goes straight to the pipe: should the worker be killed during that
  // write, its task counts as not finished (it is the one running).
  void Stage() {
    if (staged_ + buf_.size() > kStageBytes) FlushStage();
    if (buf_.size() > kStageBytes) {
      Write(buf_.data(), buf_.size());
      slot_.stage_base.store(written_, std::memory_order_release);
    } else {
      std::memcpy(plan_.stage + staged_, buf_.data(), buf_.size());
      staged_ += buf_.size();
      slot_.staged.store(static_cast<std::uint32_t>(staged_),
                         std::memory_order_release);
    }
    buf_.clear();
  }

  // Writes the stage to the pipe. The stage is emptied before its base
  // moves: a worker that dies between the two has delivered it all, and the
  // caller reads nothing twice.
  void FlushStage() {
    if (staged_ == 0) return;
    Write(plan_.stage, staged_);
    staged_ = 0;
    slot_.staged.store(0, std::memory_order_release);
    slot_.stage_base.store(written_, std::memory_order_release);
  }

  // Sends `n` bytes to the caller, unless a task closed or replaced the
  // pipe (then the worker leaves: what it would send is lost).
  void Write(const char* data, std::size_t n) {
    const PipeId now = IdOf(plan_.write_fd);
    if (now.dev != pipe_.dev || now.ino != pipe_.ino ||
        !internal::WriteAll(plan_.write_fd, data, n)) {
      LosePipe(plan_);
    }
    written_ += n;
  }

  const WorkerPlan& plan_;
  const PipeId& pipe_;
  const Job& job_;
  WorkerSlot& slot_;
  const std::size_t size_;
  // Tasks whose results need no copy: they are stored in shared pages.
  const std::pair<std::size_t, std::size_t> aliased_;
  std::string buf_;
  std::size_t staged_ = 0;
  std::uint64_t written_ = 0;  // bytes written to the pipe
};

}  // namespace

void WorkerMain(const WorkerPlan& plan) {
  ApplyCpuBudget();  // before any task: its runtimes' thread counts
  if (plan.options->worker_memory != 0) {
    LimitWorkerMemory(plan.options->worker_memory);
  }
  {
    internal::InTaskScope in_task;
    const PipeId pipe = IdOf(plan.write_fd);
    WorkerSink sink(plan, pipe);
    // The caller watches the call's stop token and stops workers from
    // outside; here only the shared control block's stop flag is seen. The
    // sink counts progress (see ChunkDone).
    internal::ChunkRunner<WorkerSink> runner(*plan.job, *plan.control,
                                             *plan.options,
                                             /*progress=*/nullptr,
                                             /*stop=*/nullptr, sink);
    bool keep_going = true;
    if (plan.handed_begin < plan.handed_end) {
      sink.BeginChunk(plan.handed_begin, plan.handed_end);
      keep_going = runner.RunChunk(plan.handed_begin, plan.handed_end);
    }
    // The claim loop of ChunkRunner::RunClaimed, with the chunk recorded in
    // the slot (the caller hands what a dead worker left to its
    // replacement). `claiming` covers the instant between taking a chunk
    // and recording it: a few stores (BeginChunk clears it before it maps
    // the chunk's pages).
    std::size_t begin = 0;
    std::size_t end = 0;
    while (keep_going && !runner.Stopping()) {
      plan.slot->claiming.store(1, std::memory_order_release);
      if (!plan.control->Claim(&begin, &end)) {
        plan.slot->claiming.store(0, std::memory_order_release);
        break;
      }
      sink.BeginChunk(begin, end);
      keep_going = runner.RunChunk(begin, end);
    }
    sink.FlushAll();
  }
  internal::RunExitHooks();  // e.g. a Queue learns this producer ended well
  std::fflush(nullptr);      // what the tasks printed
  plan.slot->finished.store(1, std::memory_order_release);
  // Tells the caller at once: the pipe would close only late in _exit's
  // teardown of this process, about a millisecond for a large caller.
  close(plan.write_fd);
  _exit(0);
}

}  // namespace fanout::process_internal
