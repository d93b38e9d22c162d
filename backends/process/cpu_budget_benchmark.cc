// What one CPU budget buys: process tasks that each run an OpenMP loop, with
// each worker held to its share of the CPUs (the default) against every
// worker running a thread per CPU (OMP_NUM_THREADS set to the CPU count,
// which the budget leaves alone: what happened before it).
//
//   ./bazelw run -c opt //backends/process:cpu_budget_benchmark --
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//   (one line)
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdlib>
#include <string>

#include "core/executor.h"
#include "core/parallel.h"

namespace {

constexpr std::size_t kTasks = 64;
constexpr long kSteps = 2000000;

// One task: a parallel loop with a reduction, as a BLAS call or an
// OpenMP-parallel library routine would run inside it.
double OpenMpTask(std::size_t i) {
  double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
  for (long k = 0; k < kSteps; ++k) {
    sum += 1.0 / static_cast<double>(k + 1 + static_cast<long>(i));
  }
  return sum;
}

void Run(benchmark::State& state, bool budget) {
  if (budget) {
    unsetenv("OMP_NUM_THREADS");
  } else {
    setenv("OMP_NUM_THREADS", std::to_string(fanout::usable_cpus()).c_str(), 1);
  }
  fanout::Parallel p({.jobs = 2, .backend = "process"});
  for (auto _ : state) {
    benchmark::DoNotOptimize(p.map(kTasks, OpenMpTask));
  }
  unsetenv("OMP_NUM_THREADS");
  state.SetItemsProcessed(
      static_cast<std::int64_t>(state.iterations() * kTasks));
}

void Budget(benchmark::State& state) { Run(state, true); }
void ThreadPerCpu(benchmark::State& state) { Run(state, false); }

BENCHMARK(Budget)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(ThreadPerCpu)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
