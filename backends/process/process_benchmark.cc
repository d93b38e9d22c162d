// Process-backend speed against its peers and its floor:
//   Tiny/*     1M tasks of ~50 ns, process vs thread (target: <= 1.10x thread)
//   Sum/*      the reference sum, 10000 tasks (target: >= 1.9x sequential;
//              thread shows what the two cores give without forking)
//   Fib/*      fib 38..33, imbalanced (target: >= 1.9x sequential)
//   Strings/*  100k std::string results (codec + pipe), process vs thread
//   TwoTasks   a 2-task call vs a bare fork+_exit+waitpid (target: <= 1.2x);
//              BareFork2 forks as many workers as the call does.
//   Replace/*  what a dead worker costs: 200 tiny tasks on 2 workers
//              with retries = 1, where task 100 SIGKILLs its worker once
//              (crash) or not (clean); the difference is noticing the
//              death, reaping it, forking a replacement and running the
//              task again.
//
//   ./bazelw run -c opt //backends/process:process_benchmark --
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/process/process.h"
#include "core/parallel.h"
#include "workloads/workloads.h"

namespace fanout {
namespace {

constexpr int kJobs = 2;

Parallel Make(const std::string& backend) {
  return Parallel({.jobs = kJobs, .backend = backend});
}

void Tiny(benchmark::State& state, const std::string& backend) {
  Parallel p = Make(backend);
  constexpr std::size_t kN = 1'000'000;
  for (auto _ : state) {
    std::vector<std::uint64_t> r =
        p.map(kN, [](std::size_t i) { return workloads::TinyTask(i); });
    if (r[kN - 1] != workloads::TinyTask(kN - 1))
      state.SkipWithError("wrong result");
    benchmark::DoNotOptimize(r.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kN));
}

void Sum(benchmark::State& state, const std::string& backend) {
  Parallel p = Make(backend);
  for (auto _ : state) {
    std::vector<long long> r = p.map(workloads::kSumTasks, [](std::size_t i) {
      return workloads::SumTask(static_cast<long long>(i));
    });
    long long total = 0;
    for (long long x : r) total += x;
    if (total != workloads::kSumAnswer) state.SkipWithError("wrong total");
  }
}

void Fib(benchmark::State& state, const std::string& backend) {
  Parallel p = Make(backend);
  const std::vector<int> args(std::begin(workloads::kFibArgs),
                              std::end(workloads::kFibArgs));
  for (auto _ : state) {
    std::vector<long long> r =
        p.map(args, [](int n) { return workloads::Fib(n); });
    for (std::size_t k = 0; k < r.size(); ++k) {
      if (r[k] != workloads::kFibAnswers[k]) state.SkipWithError("wrong fib");
    }
  }
}

// Results that are not trivially copyable cross back through the codec and
// the worker's pipe.
void Strings(benchmark::State& state, const std::string& backend) {
  Parallel p = Make(backend);
  constexpr std::size_t kN = 100'000;
  for (auto _ : state) {
    std::vector<std::string> r =
        p.map(kN, [](std::size_t i) { return "result " + std::to_string(i); });
    if (r[kN - 1] != "result 99999") state.SkipWithError("wrong result");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kN));
}

void TwoTasks(benchmark::State& state) {
  Parallel p = Make("process");
  for (auto _ : state) {
    std::vector<int> r = p.map(2, [](std::size_t i) { return int(i) + 1; });
    if (r[1] != 2) state.SkipWithError("wrong result");
  }
}

// A call in which task 100 kills its worker the first time it runs (when
// `crash`), so the call pays for one replacement; the flag lives in shared
// memory, so the replacement sees it was set.
void Replace(benchmark::State& state, bool crash) {
  Parallel p({.jobs = kJobs, .backend = "process", .retries = 1});
  void* shared = mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) {
    state.SkipWithError("mmap");
    return;
  }
  auto* killed = new (shared) std::atomic<int>(0);
  constexpr std::size_t kN = 200;
  for (auto _ : state) {
    killed->store(crash ? 0 : 1);
    std::vector<std::uint64_t> r = p.map(kN, [killed](std::size_t i) {
      if (i == 100 && killed->exchange(1) == 0) raise(SIGKILL);
      return workloads::TinyTask(i);
    });
    if (r[kN - 1] != workloads::TinyTask(kN - 1)) {
      state.SkipWithError("wrong result");
    }
  }
  munmap(shared, sizeof(std::atomic<int>));
}

// The floor: what any fork-per-call design pays for `children` workers.
void BareFork(benchmark::State& state) {
  const int children = static_cast<int>(state.range(0));
  for (auto _ : state) {
    pid_t pids[8];
    for (int c = 0; c < children; ++c) {
      pids[c] = fork();
      if (pids[c] == 0) _exit(0);
    }
    for (int c = 0; c < children; ++c) waitpid(pids[c], nullptr, 0);
  }
}

void Register() {
  for (const char* b : {"thread", "process"}) {
    benchmark::RegisterBenchmark((std::string("Tiny/") + b).c_str(), Tiny, b)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const char* b : {"thread", "process"}) {
    benchmark::RegisterBenchmark((std::string("Strings/") + b).c_str(), Strings,
                                 b)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  // thread too: what two cores of this machine give with no fork at all.
  for (const char* b : {"sequential", "thread", "process"}) {
    benchmark::RegisterBenchmark((std::string("Sum/") + b).c_str(), Sum, b)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((std::string("Fib/") + b).c_str(), Fib, b)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("Replace/clean", Replace, false)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("Replace/crash", Replace, true)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("TwoTasks/process", TwoTasks)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BareFork", BareFork)
      ->Arg(1)
      ->Arg(2)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace
}  // namespace fanout

int main(int argc, char** argv) {
  fanout::Register();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
