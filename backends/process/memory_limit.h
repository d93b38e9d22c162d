// A worker's memory limit (RunOptions::worker_memory), set by the worker on
// itself right after fork, and what a task that ran into it is told.
//
// How: setrlimit(RLIMIT_DATA). RLIMIT_DATA counts private writable memory
// (the heap, anonymous private mmap: what a task allocates) and not shared
// mappings (the call's shared block, the aliased result pages) or code, so
// the limit means what a task can allocate. RLIMIT_AS would also count every
// reservation of address space (thread stacks, sanitizer shadow memory) and
// refuse allocations long before memory is used. A worker starts with the
// caller's private memory (fork copies its address space), so the limit is
// set to what the worker holds at fork plus worker_memory: each task may
// allocate up to worker_memory more. An allocation past it fails
// (std::bad_alloc from operator new), which the worker reports as
// "exceeded the worker memory limit of 256 MiB". Memory a task touches
// without allocating it (a stack that grows) is not limited.
//
// A cgroup v2 child group per worker (memory.max, where the kernel would
// OOM-kill the worker) is not used yet: it needs a writable cgroup v2
// directory with the memory controller delegated, which the machines this
// was written on do not have (cgroup v1). The worker also raises its
// oom_score_adj to 1000, so that if the machine runs out of memory the
// kernel kills a worker (which the call survives) before the caller.
// IWYU pragma: private
#ifndef FANOUT_BACKENDS_PROCESS_MEMORY_LIMIT_H_
#define FANOUT_BACKENDS_PROCESS_MEMORY_LIMIT_H_

#include <cstddef>
#include <string>

namespace fanout::process_internal {

// In a forked worker: limits what it may allocate from now on to `bytes`
// (see above). Only async-signal-safe calls: it runs right after fork.
void LimitWorkerMemory(std::size_t bytes);

// "exceeded the worker memory limit of 256 MiB".
std::string MemoryLimitMessage(std::size_t bytes);

// "256 MiB", "1.5 GiB", "512 bytes": binary units, one decimal when needed.
std::string FormatBytes(std::size_t bytes);

}  // namespace fanout::process_internal

#endif  // FANOUT_BACKENDS_PROCESS_MEMORY_LIMIT_H_
