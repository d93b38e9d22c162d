// fanout/cli/run_workload.h — the CLI's workloads (sum, fib, sleep, noop,
// pi, dag) run on a Parallel (dag: on a Pool), with --fail-task's fault injected, each giving its
// answer as one line of text.
//
//   fanout::Parallel p({.jobs = 2, .backend = "thread"});
//   std::vector<fanout::TaskError> failures;  // filled under --errors=collect
//   std::string answer = fanout::cli::RunWorkload(p, request, &failures);
//   // "249972500250000000" for the default sum
#ifndef FANOUT_CLI_RUN_WORKLOAD_H_
#define FANOUT_CLI_RUN_WORKLOAD_H_

#include <cstddef>
#include <string>
#include <vector>

#include "cli/request.h"
#include "core/errors.h"
#include "core/parallel.h"

namespace fanout::cli {

// Runs `r.workload` with `r.tasks` tasks on `p`; returns its answer line.
// With r.collect_errors every task runs (try_map): the failed tasks are put
// in `failures` (by task index), and the answer is computed from the tasks
// that succeeded (a failed fib prints as "-") and ends with
// " (partial: N of M tasks failed)", so it is never taken for the
// workload's answer. Otherwise the first failure throws its TaskError.
// With r.inputs, the tasks are the lines of that file (or stdin), read as
// they arrive: *tasks_run says how many there were. --workload=dag runs a
// fixed random graph of r.tasks dependent tasks on a Pool of p's backend.
std::string RunWorkload(Parallel& p, const Request& r,
                        std::vector<TaskError>* failures,
                        std::size_t* tasks_run = nullptr);

// `v` in decimal: the answers are 128-bit sums, and byte counts of 64-bit
// task counts need 128 bits too.
std::string ToDecimal(unsigned __int128 v);

// The --checkpoint key: the workload and the flags its results depend on,
// so that a file of another run is refused rather than read back.
std::string CheckpointKey(const Request& r);

// Bytes one task's result of `workload` takes in the results vector.
std::size_t ResultBytes(const std::string& workload);

}  // namespace fanout::cli

#endif  // FANOUT_CLI_RUN_WORKLOAD_H_
