// fanout/core/trace.h — where a call's time goes: a timeline of every chunk
// and task on every worker, and a summary a person reads.
//
//   fanout::Parallel p({.jobs = -1, .backend = "process", .trace = "run.json"});
//   std::vector<long long> r = p.map(10000, process);
//   // run.json opens in chrome://tracing or ui.perfetto.dev
//   std::printf("%s", fanout::to_string(*p.last_trace_summary()).c_str());
//
// The trace. Options::trace names a file (or, for a program that cannot be
// changed, the environment variable FANOUT_TRACE=run.json; Options::trace
// wins when both are set). It is emptied when the program first traces to
// it, and every traced call of the program appends its events, so it holds
// one whole JSON document (Chrome's trace-event format) after each call. A
// path that cannot be written (a missing directory, a directory, a device,
// no permission) is refused when the Parallel is made, before any task
// runs, with a UsageError naming Options::trace or FANOUT_TRACE.
//
// What it shows, one track (a row) per worker:
//   - thread, tbb, sequential: the caller's process, a row per thread, and a
//     row "call" for the call itself;
//   - process: a process per forked worker, named with its worker index and
//     pid; a replacement is a new process, its dead predecessor's row ends
//     with the death;
//   - mpi: a process per rank, named with its host and pid, a row per
//     compute thread and one for the thread that talks MPI. Rank 0 gathers
//     the other ranks' records when the call ends and writes the file; a
//     rank on another host has its clock shifted onto rank 0's (the offset
//     from the fastest of 8 round trips, so within half of that round trip).
//     Forked workers share the caller's CLOCK_MONOTONIC and need no shift.
//   - a span per chunk of tasks, named "tasks 0-2047", with its first task,
//     end and attempt (of its first task) in args; a chunk of one task is
//     that task's span, "task 17". The rule for spans of single tasks: when
//     the tasks of a worker's previous chunk took 100 µs or more each, its
//     next chunk is recorded task by task. So each task index is covered by
//     exactly one span per attempt (a retry is a span of its own, "task 17
//     (attempt 2)").
//   - the call's events: a span per fork (and replacement fork), a worker's
//     death (what ended it, the task it ran) and its replacement, a retry, a
//     task_timeout kill, the copy of results into the caller, a checkpoint
//     write, a stream window (each imap window is a call of its own), an
//     mpi exchange.
//   - a call stopped by Ctrl+C, a timeout or a cancel still writes what it
//     has before it throws; a span still open then ends at the stop, marked
//     "unfinished".
// Calls made inside a task run inline and belong to that task's span; they
// are not traced on their own. fanout::Pool's submitted tasks are not
// traced (its bulk calls are, as Parallel's).
//
// Cost. Without a trace: no work per task, one test of a pointer per chunk.
// With one: two clock reads and a 40-byte record per chunk (or per task, by
// the rule above), and the JSON written when the call ends. Each worker
// keeps at most 2^20 records per call (or per window of a checkpointed
// call): 40 MiB of address space, touched only as used. Once it is half
// full the worker records chunks only; once full, further spans are dropped
// and counted: the file says so on that worker's row ("trace buffer full:
// N spans dropped") and the summary says so too. Never silently.
#ifndef FANOUT_CORE_TRACE_H_
#define FANOUT_CORE_TRACE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fanout {

// What a traced call spent its time on. The five parts of the wall time
// (start .. other) add up to wall_seconds.
struct TraceSummary {
  std::string label;    // "map", "imap window 0-1023", ...
  std::string backend;  // "process"
  std::size_t tasks = 0;
  int jobs = 0;
  double wall_seconds = 0;

  struct Worker {
    std::string name;          // "thread 1", "worker 0 (pids 4242, 4250)"
    double busy_seconds = 0;   // in spans of tasks
    double busy_fraction = 0;  // busy_seconds / wall_seconds
    std::size_t tasks = 0;     // task runs (attempts)
  };
  std::vector<Worker> workers;

  // The wall time, cut at the moments it changes character:
  double start_seconds = 0;    // the call's start to its first task (forks,
                               // waking the workers)
  double running_seconds = 0;  // to the moment the first worker has no
                               // task left (every worker busy)
  double waiting_seconds = 0;  // to the end of the last task (the others
                               // wait for it)
  double moving_seconds = 0;   // results crossing to the caller after the
                               // last task (process: the copy from shared
                               // pages; mpi: the exchange)
  double other_seconds = 0;    // the rest: reaping workers, checkpoint
                               // writes between windows, ...

  double fork_seconds = 0;  // every fork() in the caller, start and
  int forks = 0;            // replacements
  int deaths = 0;           // workers that died (process) ...
  int retries = 0;          // ... and task attempts after the first

  struct Task {
    std::size_t first = 0;  // a task index (or a chunk's first task)
    std::size_t end = 0;    // first + 1 for a task
    double seconds = 0;
    std::string worker;
    int attempt = 1;
  };
  // The five longest, longest first: single tasks, or chunks when the
  // tasks were too short for spans of their own (slowest_are_chunks).
  std::vector<Task> slowest;
  bool slowest_are_chunks = false;

  double task_seconds = 0;  // all task spans, summed
  // Worker time not spent in tasks (jobs x wall - task time), per task, and
  // the tasks' own mean time to compare it with.
  double overhead_per_task_seconds = 0;
  double mean_task_seconds = 0;
  std::uint64_t dropped_spans = 0;  // lost to a full buffer
};

// The summary as lines a person reads, e.g.
//   trace summary: map of 10000 tasks on process, jobs 2: wall 182.1 ms
//     worker 0 (pid 4242)     busy 97.8%  (178.1 ms, 5012 tasks)
//     ...
std::string to_string(const TraceSummary& summary);

}  // namespace fanout

#endif  // FANOUT_CORE_TRACE_H_
