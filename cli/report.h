// fanout/cli/report.h — what the CLI prints on stdout once a run is done:
// the answer and its timing as text or one JSON object, and the table (or
// JSON rows) of --compare.
//
//   fanout::cli::Timed t = ...;  // answer, wall time, jobs
//   fanout::cli::PrintRun(stdout, request, t, /*sequential=*/nullptr);
//   // 249972500250000000
//   // backend: thread
//   // jobs: 2 ...
#ifndef FANOUT_CLI_REPORT_H_
#define FANOUT_CLI_REPORT_H_

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/request.h"

namespace fanout::cli {

// One timed run of the workload on one backend.
struct Timed {
  std::string answer;
  double wall = 0;  // seconds
  int jobs = 1;
  bool primary = true;  // false on mpi ranks other than 0, which print nothing
  std::size_t failed_tasks = 0;  // under --errors=collect
  std::size_t tasks = 0;         // tasks run (--inputs: lines read)
};

// `v` as a JSON string literal, quotes included.
std::string JsonString(const std::string& v);

// The answer of one run on `r.backend`, with the sequential run's timing
// and the speedup when `sequential` is given (--speedup).
void PrintRun(std::FILE* out, const Request& r, const Timed& t,
              const Timed* sequential);

// --compare: one row per backend, rows[0] being the sequential baseline;
// `agree` says whether every answer matched the baseline's.
void PrintComparison(std::FILE* out, const Request& r,
                     const std::vector<std::string>& backends,
                     const std::vector<Timed>& rows, bool agree);

}  // namespace fanout::cli

#endif  // FANOUT_CLI_REPORT_H_
