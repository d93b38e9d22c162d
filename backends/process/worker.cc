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

#include "backends/process/wire.h"
#include "core/internal/fd.h"
#include "core/internal/fork.h"

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

// The chunk loop: claims chunks until none is left or the call stops, runs
// their tasks one by one, records each in the worker's slot, stores or sends
// results and failures, and counts progress per chunk. Kept whole (about 70
// lines) because it is one loop that core's scheduler is to replace.
void RunChunks(const WorkerPlan& plan, const PipeId& pipe) {
  const Job& job = *plan.job;
  const bool trivial = job.trivial_result_size != 0;
  const std::size_t size = job.trivial_result_size;
  const bool fail_fast = plan.options->errors == ErrorPolicy::kFailFast;
  Control& control = *plan.control;
  std::string buf;
  TaskFailure failure;
  // Tasks whose results need no copy: they are stored in shared pages.
  const auto [aliased_begin, aliased_end] =
      trivial && plan.contiguous ? AliasResults(plan)
                                 : std::pair<std::size_t, std::size_t>{0, 0};
  const auto copy_results = [&](std::size_t b, std::size_t e) {
    if (b < e) {
      std::memcpy(plan.results + b * size, job.result_slot(job.ctx, b),
                  (e - b) * size);
    }
  };

  while (control.stop.load(std::memory_order_relaxed) == 0) {
    const std::size_t begin =
        control.next.fetch_add(plan.batch, std::memory_order_relaxed);
    if (begin >= job.n) break;
    const std::size_t end = std::min(job.n, begin + plan.batch);
    bool stop = false;
    for (std::size_t i = begin; i < end; ++i) {
      plan.slot->current.store(static_cast<std::int64_t>(i),
                               std::memory_order_relaxed);
      if (job.run_range(job.ctx, i, i + 1, &failure) != 1) {
        AppendFailureMessage(buf, i, failure.type, failure.message);
        failure = TaskFailure();
        if (fail_fast) {
          control.stop.store(1, std::memory_order_relaxed);
          stop = true;
          break;
        }
        continue;
      }
      if (trivial) {
        if (!plan.contiguous) {
          std::memcpy(plan.results + i * size, job.result_slot(job.ctx, i),
                      size);
        }
        continue;
      }
      const std::size_t at = BeginMessage(buf, MessageKind::kResult, i);
      try {
        job.encode_result(job.ctx, i, &buf);
        EndMessage(buf, at);
      } catch (...) {
        buf.resize(at);
        TaskFailure f = internal::describe_current_exception();
        AppendFailureMessage(buf, i, f.type,
                             "cannot encode the result: " + f.message);
        if (fail_fast) {
          control.stop.store(1, std::memory_order_relaxed);
          stop = true;
          break;
        }
      }
      if (buf.size() >= kFlushBytes) Flush(plan, pipe, buf);
    }
    if (trivial && plan.contiguous) {  // what the aliased pages did not hold
      copy_results(begin, std::min(end, aliased_begin));
      copy_results(std::max(begin, aliased_end), end);
    }
    control.progress.fetch_add(end - begin, std::memory_order_relaxed);
    Flush(plan, pipe, buf);
    if (stop) break;
  }
  Flush(plan, pipe, buf);
}

}  // namespace

void WorkerMain(const WorkerPlan& plan) {
  internal::InTaskScope in_task;
  RunChunks(plan, IdOf(plan.write_fd));
  internal::RunExitHooks();  // e.g. a Queue learns this producer ended well
  std::fflush(nullptr);      // what the tasks printed
  plan.slot->finished.store(1, std::memory_order_release);
  _exit(0);
}

}  // namespace fanout::process_internal
