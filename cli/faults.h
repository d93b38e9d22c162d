// fanout/cli/faults.h — the CLI's fault injection: --fail-task=N makes task N
// fail in the way --fail-mode names, to show how each backend reports it.
//
//   FailMode mode = ParseFailMode("segv");  // throws UsageError if unknown
//   if (i == fail_task) Fail(mode, i);
#ifndef FANOUT_CLI_FAULTS_H_
#define FANOUT_CLI_FAULTS_H_

#include <cstddef>
#include <string>

namespace fanout::cli {

enum class FailMode { kNone, kThrow, kSegv, kAbort, kExit, kHang, kOom };

// The mode named `name` (throw, segv, abort, exit, hang, oom); throws
// fanout::UsageError naming the valid ones otherwise.
FailMode ParseFailMode(const std::string& name);

// Fails task `task` as `mode` says: throws, raises SIGSEGV, aborts, calls
// exit(3), sleeps for ever, or allocates and touches memory until an
// allocation fails (std::bad_alloc; the CLI allows it only with
// --worker-memory, whose limit then stops it). On in-process backends all but kThrow end the
// whole program, as they would in the user's own code; exit(3) there ends
// it with status 3 and "fanout: a task called exit(3) while a call was
// running on backend 'thread'; its results are lost" (on process, the
// worker exits with status 3 and the call names it).
[[noreturn]] void Fail(FailMode mode, std::size_t task);

}  // namespace fanout::cli

#endif  // FANOUT_CLI_FAULTS_H_
