// fanout/core/internal/trace.h — the recording behind Options::trace: one
// call's spans, per worker, in memory the worker owns, merged into one
// Chrome trace-event JSON file when the call ends.
//
// IWYU pragma: private, include "core/trace.h"
//
// A worker writes fixed-size records into its own TraceTrack: a span of
// tasks [first, end) with its attempt and clock times. Tracks live in
// MAP_SHARED anonymous memory, so a forked worker (process) writes where the
// caller reads, even after the worker died; an mpi rank sends its records to
// rank 0 at the end of the call (backends/mpi). The caller's own events
// (fork, death and replacement, a task_timeout kill, the copy of results,
// a checkpoint write, an mpi exchange) are notes of the CallTrace, with text.
// Times are CLOCK_MONOTONIC nanoseconds: the same clock in every process of
// one machine; ranks on other hosts are shifted onto rank 0's clock.
//
// Cost: a call without a trace has no CallTrace; the scheduler's chunk loop
// tests one pointer per chunk (ChunkRunner::trace_). With a trace, a chunk
// is two clock reads and one 40-byte record; a task gets a record of its own
// only when the tasks of its worker's previous chunk took kPerTaskNanos or
// more each (see TraceTrack::PerTask).
#ifndef FANOUT_CORE_INTERNAL_TRACE_H_
#define FANOUT_CORE_INTERNAL_TRACE_H_

#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/trace.h"

namespace fanout::internal {

// CLOCK_MONOTONIC in nanoseconds (the vDSO: no system call).
inline std::uint64_t TraceNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// A task gets a span of its own when its worker's previous chunk took at
// least this long per task.
inline constexpr std::uint64_t kPerTaskNanos = 100000;  // 100 µs
// Records one worker keeps per job (a call's window); past that its spans
// are dropped and counted. 40 bytes each: 40 MiB of address space, touched
// only as it fills.
inline constexpr std::uint64_t kTraceRecords = std::uint64_t{1} << 20;

// What a record says besides its tasks.
// An attempt after a failure (RunOptions::retries, a replacement worker).
inline constexpr std::uint32_t kTraceRetry = 1;
// Its worker died running its last task.
inline constexpr std::uint32_t kTraceDied = 2;
// Still open when the job ended (a stop).
inline constexpr std::uint32_t kTraceUnfinished = 4;

// One span of tasks [first, end) on one worker.
struct TraceRecord {
  std::uint64_t t0 = 0;
  std::uint64_t t1 = 0;
  std::uint64_t first = 0;
  std::uint64_t end = 0;
  std::uint32_t attempt = 1;  // of its first task
  std::uint32_t flags = 0;
};
static_assert(sizeof(TraceRecord) == 40);

// One worker's records for one job. A single writer at a time (the worker
// index belongs to one thread, or the track to one forked process); the
// caller reads it once the writer is gone (EndJob, a death).
struct alignas(64) TraceTrack {
  std::atomic<std::uint64_t> count{0};    // records committed
  std::atomic<std::uint32_t> open{0};     // records[count] is being written
  std::atomic<std::uint64_t> dropped{0};  // records that did not fit
  std::uint64_t capacity = 0;
  // The tasks of the worker's last chunk, per task (0: none yet).
  std::uint64_t task_ns = 0;
  // The first task a replacement worker runs again (process), and that
  // run's attempt; kNoRetry when none.
  static constexpr std::uint64_t kNoRetry = ~std::uint64_t{0};
  std::uint64_t retry_task = kNoRetry;
  std::uint32_t retry_attempt = 1;
  std::uint32_t id = 0;    // the call's number for it
  std::int32_t slot = -1;  // worker index of a forked worker's track
  std::atomic<std::int64_t> pid{0};
  std::atomic<std::uint32_t> named{0};
  char name[56] = {};

  TraceRecord* records() { return reinterpret_cast<TraceRecord*>(this + 1); }
  const TraceRecord* records() const {
    return reinterpret_cast<const TraceRecord*>(this + 1);
  }

  // Names the track once (the first of its writers to ask).
  template <class NameFn>
  void NameOnce(const NameFn& fn) {
    if (named.load(std::memory_order_acquire) != 0) return;
    const std::string text = fn();
    const std::size_t len = std::min(text.size(), sizeof(name) - 1);
    std::memcpy(name, text.data(), len);
    name[len] = '\0';
    named.store(1, std::memory_order_release);
  }

  // Whether the next chunk's tasks should get spans of their own: the last
  // chunk's tasks took kPerTaskNanos each or more, and the track is less
  // than half full (then chunks only, so it fills slowly).
  bool PerTask() const {
    return task_ns >= kPerTaskNanos &&
           count.load(std::memory_order_relaxed) < capacity / 2;
  }

  // Opens a span of tasks [first, end) now; null when the track is full
  // (the span is counted as dropped).
  TraceRecord* Begin(std::uint64_t first, std::uint64_t end,
                     std::uint32_t attempt = 1) {
    const std::uint64_t k = count.load(std::memory_order_relaxed);
    if (k >= capacity) {
      dropped.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    TraceRecord& r = records()[k];
    r.first = first;
    r.end = end;
    r.attempt = attempt == 1 && first == retry_task ? retry_attempt : attempt;
    r.flags = r.attempt > 1 ? kTraceRetry : 0;
    r.t1 = 0;
    r.t0 = TraceNow();
    open.store(1, std::memory_order_release);
    return &r;
  }
  // Drops the open span (it ran no task).
  void Abandon(TraceRecord* r) {
    if (r != nullptr) open.store(0, std::memory_order_relaxed);
  }
  // Closes the open span, its tasks now [first, end).
  void End(TraceRecord* r, std::uint64_t end) {
    if (r == nullptr) return;
    r->t1 = TraceNow();
    r->end = end;
    if (end > r->first) task_ns = (r->t1 - r->t0) / (end - r->first);
    open.store(0, std::memory_order_relaxed);
    count.store(count.load(std::memory_order_relaxed) + 1,
                std::memory_order_release);
  }
};

class TraceFile;

// One call's trace: its workers' tracks, job by job, and the caller's
// notes; written to the trace file (and summarized) when the call ends.
class CallTrace {
 public:
  // `file` may be null (a summary only, or an mpi rank that is not rank 0).
  // `label` names the call ("map", "imap window 1024-2047").
  CallTrace(std::shared_ptr<TraceFile> file, std::string label);
  ~CallTrace();
  CallTrace(const CallTrace&) = delete;
  CallTrace& operator=(const CallTrace&) = delete;

  // A job of the call starts on `workers` in-process worker indices.
  void BeginJob(std::string_view backend, std::size_t n, int workers,
                std::size_t batch, bool batch_auto);
  // The job ended: every track's records are taken in (an open span is
  // closed now, marked unfinished) and the tracks freed. Once per job: a
  // backend that must send its records on (mpi) ends the job itself, and
  // Executor::run's call then does nothing.
  void EndJob();

  // In-process worker k's track (thread k, a TBB thread index, an mpi
  // rank's compute thread), named by `name()` on its first use in the job;
  // null past the job's workers (its spans are counted as lost).
  template <class NameFn>
  TraceTrack* Worker(int k, const NameFn& name) {
    if (k < 0 || static_cast<std::size_t>(k) >= kMaxWorkers) {
      lost_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    TraceTrack* t = workers_[k].load(std::memory_order_acquire);
    if (t == nullptr) t = MakeWorker(k);
    t->NameOnce(name);
    return t;
  }
  // A track for a worker about to be forked (process): shared memory the
  // child writes and the caller reads. `slot` is its worker index; `pid`
  // is set with SetPid once forked.
  TraceTrack* NewProcessTrack(int slot, std::string name);
  void SetPid(TraceTrack* track, std::int64_t pid);

  // The caller's events (any thread): a span [t0, t1] or, with t1 == t0, an
  // instant, on the call's own track (track null) or on a worker's.
  // `cat`: "fork", "move" (results crossing to the caller), "death",
  // "kill", "checkpoint", "window", "exchange", "retry", ...; `args` is a
  // JSON object's members ("\"pid\":42") or empty.
  void Note(const TraceTrack* track, std::string name, std::string cat,
            std::uint64_t t0, std::uint64_t t1, std::string args = {});
  // Closes `track`'s open span at `t` (its worker died or was killed),
  // its tasks [first, end).
  void CloseOpen(TraceTrack* track, std::uint64_t t, std::uint64_t end,
                 std::uint32_t flags);

  // Another process's tracks and notes (an mpi rank), as Export() wrote
  // them, its clock `offset_ns` ahead of ours (subtracted).
  void Import(std::string_view bytes, std::int64_t offset_ns,
              std::int64_t pid_base);
  // This call's tracks and notes so far (EndJob first) as bytes for Import.
  std::string Export() const;
  // Names this process in the file ("rank 1 on host-a (pid 42)").
  void SetProcessName(std::string name) { process_name_ = std::move(name); }

  // The call ended: the summary, and the events appended to the file.
  // Throws fanout::Error when the file cannot be written.
  TraceSummary Finish(bool ok);
  bool finished() const { return finished_; }
  const std::string& label() const { return label_; }

  // The most in-process worker tracks of a job.
  static constexpr std::size_t kMaxWorkers = 1024;

 private:
  struct Track {
    std::int64_t pid = 0;
    std::int64_t tid = 0;
    std::string process;  // its process's name
    std::string name;
    int slot = -1;        // worker index (rows of the summary); -1 the call's
    std::size_t job = 0;  // 1 for the call's first job
    bool remote = false;  // imported from another process (an mpi rank)
    std::uint64_t dropped = 0;
    std::vector<TraceRecord> records;
  };
  struct NoteEvent {
    std::uint32_t track = 0;  // Track index; 0 the call's own
    std::string name;
    std::string cat;
    std::uint64_t t0 = 0;
    std::uint64_t t1 = 0;
    std::string args;
  };

  TraceTrack* MakeWorker(int k);
  TraceTrack* Allocate();
  void Harvest(TraceTrack* t, int slot, std::int64_t pid, std::int64_t tid,
               const std::string& process);
  std::string Json() const;
  TraceSummary Summarize() const;

  std::shared_ptr<TraceFile> file_;
  const std::string label_;
  std::string process_name_;
  const std::int64_t pid_;
  std::uint64_t begin_ns_ = 0;  // the call's start
  std::uint64_t end_ns_ = 0;
  bool finished_ = false;
  bool ok_ = true;
  // The current job.
  std::string backend_;
  std::size_t n_ = 0;  // tasks, all jobs
  int jobs_ = 0;
  std::size_t batch_ = 0;
  bool batch_auto_ = false;
  std::size_t job_count_ = 0;
  std::uint64_t job_begin_ns_ = 0;
  bool job_open_ = false;
  std::unique_ptr<std::atomic<TraceTrack*>[]> workers_;
  std::atomic<std::uint64_t> lost_{0};

  mutable std::mutex mu_;            // below
  std::vector<TraceTrack*> forked_;  // this job's process tracks
  std::uint32_t next_id_ = 1;        // track ids of this call
  std::vector<Track> tracks_;        // harvested; [0] the call's own
  // Track id (TraceTrack::id) -> index in tracks_, once harvested; notes on
  // a track not yet harvested wait in pending_.
  std::vector<std::uint32_t> index_of_;
  std::vector<std::pair<std::uint32_t, NoteEvent>> pending_;
  std::vector<NoteEvent> notes_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> jobs_times_;
};

// The trace file of a path, shared by every Parallel of the process that
// traces to it; emptied when this process first opens it, then every
// traced call appends its events. Always a whole JSON document between
// calls.
class TraceFile {
 public:
  // Throws fanout::UsageError naming `what` (Options::trace, FANOUT_TRACE)
  // for a path that cannot be written: one message, before any task runs.
  static std::shared_ptr<TraceFile> Open(const std::string& path,
                                         std::string_view what);
  ~TraceFile();
  TraceFile(const TraceFile&) = delete;
  TraceFile& operator=(const TraceFile&) = delete;

  const std::string& path() const { return path_; }
  // Time 0 of the file's timestamps.
  std::uint64_t origin_ns() const { return origin_ns_; }
  // Appends `events` (JSON objects joined by ",\n"); throws fanout::Error
  // when the write fails.
  void Append(const std::string& events);
  // True the first time `key` is asked (metadata written once per file).
  bool First(const std::string& key);

 private:
  TraceFile(std::string path, int fd);
  const std::string path_;
  const int fd_;
  const std::uint64_t origin_ns_;
  const std::int64_t owner_;  // the process that writes it
  std::mutex mu_;
  std::uint64_t size_ = 0;  // bytes before the closing tail
  bool empty_ = true;
  std::vector<std::string> seen_;
};

// Refuses (UsageError naming `what`) a trace path that cannot be written,
// without touching it: every mpi rank checks, only rank 0 opens.
void CheckTracePath(const std::string& path, std::string_view what);

// The trace file a Parallel of these options writes to: Options::trace, or
// else $FANOUT_TRACE; empty for none. `what` is set to the name to blame.
std::string TracePath(const std::string& option, std::string* what);

}  // namespace fanout::internal

#endif  // FANOUT_CORE_INTERNAL_TRACE_H_
