// fanout/backends/process/process.h — the `process` backend: tasks run in
// fork()ed worker processes, so a task that crashes, aborts, exits, leaks or
// hangs cannot take the caller down with it.
//
//   fanout::Parallel p({.jobs = -1, .backend = "process",
//                       .timeout = std::chrono::seconds(30),
//                       .retries = 1,  // a task whose worker died runs again
//                       .task_timeout = std::chrono::seconds(5),
//                       .worker_memory = std::size_t{1} << 30});  // 1 GiB
//   try {
//     std::vector<long long> r = p.map(10000, process);  // any closure works
//   } catch (const fanout::TaskError& e) {
//     // "task 17 failed on backend 'process' (pid 4242): worker killed by
//     //  SIGSEGV (Segmentation fault) while running this task (failed 2
//     //  attempts)"; with try_map() only that task fails, the rest complete
//   } catch (const fanout::TimeoutError& e) {
//     // "... still running: task 3 (pid 4242), task 8 (pid 4243)"
//   } catch (const fanout::InterruptedError& e) {
//     // Ctrl+C or SIGTERM reached the caller; every worker is already gone.
//   }
//
// Nothing needs to include this header to use the backend: linking
// //backends/process registers it under the name "process". The header
// documents the behaviour and offers make_process_executor() for code that
// wants the executor without going through the registry.
//
// How a call runs. When a call with jobs > 1 and more than one task starts,
// the caller forks min(jobs, n) workers (jobs == 1 or n <= 1 run inline in the
// caller, as every backend does, unless a task limit is set). Workers take chunks of task indices off one
// atomic counter in MAP_SHARED memory (dynamic scheduling; the chunk size is
// RunOptions::batch_size, or auto_batch_size()). Each worker records the task
// it is running in its own shared slot, so a death names the task. Results
// come back through shared memory when the result type is trivially copyable,
// and otherwise encoded with the codec (core/codec.h) through one pipe per
// worker. The caller runs no task: it waits in poll() on a pidfd per worker,
// the result pipes and a self-pipe for signals, so it notices everything at
// once, without sleeping or spinning. For a small job (at most 4 tasks per
// worker) the next worker is forked only if the ones running have left tasks
// unclaimed, so a call of a few tiny tasks pays for one fork, not `jobs`.
// While a call runs, the whole pages of its result array are left out of
// forks (MADV_DONTFORK): workers map the shared result pages there instead.
//
// Failures:
//   - A task that throws: a TaskError with the task index, "pid N", the
//     exception's demangled type name and its message. Under kFailFast the
//     other workers are then killed; under kCollectAll every task runs.
//   - A worker that dies (a signal such as SIGSEGV, SIGABRT — std::terminate
//     ends there — or SIGKILL, or an exit such as _exit(3) or exit(0) from a
//     task) is replaced and the call goes on. What it finished is kept and
//     never runs again: each task's outcome is in shared memory (a result
//     slot, or the worker's stage of messages not yet sent) before the
//     worker's slot says the task is done. The rest of its chunk goes to the
//     replacement. The task it was running is run again, in the
//     replacement, up to Options::retries times; a task that killed
//     retries + 1 workers fails: a TaskError naming the task, the signal
//     (signal()) or exit status (exit_status()), the pid, "(failed N
//     attempts)" after more than one, and for SIGKILL "possibly out of
//     memory" and the worker's peak memory (ru_maxrss). Under kCollectAll
//     every other task still runs; under kFailFast the call throws it (the
//     other workers are killed and reaped first). No task kills more than
//     retries + 1 workers, which bounds the replacements; a death between
//     tasks (a kill from outside) is survived up to 16 times a call. A
//     worker killed in the instant between taking a chunk off the counter
//     and recording which, or before its first task, still fails the call
//     (which tasks it took would be unknown; a replacement would die alike).
//   - Options::task_timeout: the caller samples each worker's current task
//     and its count of tasks started every 10 ms tick (the worker reads no
//     clock); a task running longer has its worker killed and fails with
//     "timed out after N ms (its worker was killed)", or is retried; the
//     call goes on with a new worker.
//   - Options::worker_memory: each worker limits itself with RLIMIT_DATA
//     after fork (see memory_limit.h); a task whose allocation fails there
//     fails with "exceeded the worker memory limit of 256 MiB" (type
//     std::bad_alloc), retried like any exception; the worker then leaves
//     (its heap may stay large) and a fresh one takes the rest of its
//     chunk. Under ASan/TSan the sanitizer's allocator ends the worker
//     instead of throwing (a death like any other). Workers raise their
//     oom_score_adj so the kernel's OOM killer picks them before the caller.
//   - With task_timeout or worker_memory set, a call of jobs = 1 or a single
//     task also runs in a forked worker, so that the limit holds.
//   - A task that closes or replaces the worker's result pipe (say, one that
//     closes every descriptor from 3 up): results and failures that are not
//     trivially copyable can no longer reach the caller, so the worker leaves
//     at its next send and the call throws TaskError "worker lost its result
//     pipe (a task closed or replaced fd N?) after running this task",
//     naming the last task it ran (exit_status() 124). Fatal for the call.
//   - The deadline (Options::timeout): the caller, waiting in poll() until
//     then, raises the call's stop token, kills and reaps the workers, and
//     the call throws TimeoutError naming each task still running and its
//     pid, at the deadline (no task is waited for).
//   - The caller's cancel flag (Options::cancel, via the stop token): the
//     workers are killed and the call throws InterruptedError.
//   - SIGINT or SIGTERM to the caller during a call: handlers are installed
//     for the duration of the call only (a signal the caller ignores stays
//     ignored), every worker is killed and reaped, the previous handlers are
//     restored and the call throws InterruptedError carrying the signal. The
//     signal is not re-delivered afterwards.
//   - The caller killed by SIGKILL: workers have PR_SET_PDEATHSIG = SIGKILL,
//     so they die with the thread that forked them (the calling thread, which
//     stays inside the call until every worker is reaped). No orphans.
// Nothing of a call is left running or unreaped when it returns or throws.
//
// Inside a worker: signal dispositions are reset to their defaults and the
// signal mask is cleared; stdio is flushed by the caller before fork (nothing
// prints twice) and by the worker before it leaves; the worker leaves with
// _exit, so the caller's atexit handlers and static destructors never run in
// it. A call made from inside a task runs inline in that worker.
//
// The rule for programs with threads: forking copies only the calling
// thread. A task body may use anything that does not need another thread of
// the caller — its own computation, malloc, stdio, files, nested fanout
// calls (they run inline) — but must not wait on the caller's thread pools
// (a TBB arena, a BS::thread_pool, std::async futures) or on locks another
// caller thread might have held at fork time; those threads do not exist in
// the worker and the wait would hang (then only a timeout or Ctrl+C ends the
// call).
#ifndef FANOUT_BACKENDS_PROCESS_PROCESS_H_
#define FANOUT_BACKENDS_PROCESS_PROCESS_H_

#include <memory>

#include "core/executor.h"

namespace fanout {

// The process executor with `jobs` workers per call (already resolved: >= 1).
std::unique_ptr<Executor> make_process_executor(int jobs);

}  // namespace fanout

#endif  // FANOUT_BACKENDS_PROCESS_PROCESS_H_
