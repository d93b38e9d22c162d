// METG(50%) of every fanout backend and its C++ peers (Task Bench, Slaughter
// et al., SC20): the smallest task at which a runner keeps at least 50%
// efficiency, efficiency being the ideal time (tasks x task time / workers)
// over the measured time. Tasks of about 2^k ns of busy work
// (benchmarks/metg_kernel.h), the same total work at every k.
//
//   ./bazelw run //benchmarks:metg            # the table, targets and plot
//   ./bazelw run -c opt //benchmarks:metg_benchmark -- --metg_k=10:14
//   backends/mpi/fanout-mpirun -np 2 bazel-bin/benchmarks/metg_benchmark
//       --metg_ns_per_iteration=0.83          # (one line)
//
// Benchmarks are named metg/<runner>/k:<k>. A runner is a backend
// ("sequential" with 1 worker, "thread", "tbb", "process"; "mpi" only under
// mpirun, 1 thread per rank) or a peer: "peer:loop" (a plain loop, 1
// worker), "peer:tbb_parallel_for" (auto partitioner in a task_arena),
// "peer:openmp" (parallel for, static schedule) and "peer:thread_pool"
// (thread_pool::ThreadPool, one Submit per task). Each reports the counters
// tasks, task_ns (one task's calibrated time) and workers; benchmarks/metg.py
// turns real time into efficiency. Task i stores Spin(iterations, i) and
// every result is checked against its closed form; the binary exits 1 on a
// wrong answer.
//
// Flags (besides Google Benchmark's):
//   --metg_k=0:20               the k swept (a range lo:hi or a list 8,12);
//                               the issue asks for 6..20, and 0..5 place
//                               the runners still over 50% at 64 ns
//   --metg_ideal_ms=50          ideal time of every point at --metg_jobs
//                               (tasks = ideal x jobs / task time)
//   --metg_jobs=2               workers of the parallel runners
//   --metg_ns_per_iteration=X   skip the calibration (required under mpirun:
//                               every rank must run the same tasks)
//   --metg_iterations=N         fixed iterations per benchmark (default:
//                               Google Benchmark's choice; 3 under mpirun,
//                               where every rank must make the same calls)
//   --metg_floor=0.1            skip a runner's smaller tasks once its
//   --metg_budget_s=5           efficiency fell under the floor, or an
//                               iteration took longer than the budget
//                               (floor 0 under mpirun: ranks time alike only
//                               by chance, and must skip alike)
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <omp.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <thread_pool/thread_pool.hpp>
#include <vector>

#include "benchmarks/metg_kernel.h"
#include "core/executor.h"
#include "core/parallel.h"

namespace fanout::metg {
namespace {

struct Config {
  std::vector<int> ks;
  double ideal_ms = 50;
  int jobs = 2;
  double ns_per_iteration = 0;
  int iterations = 0;
  double floor = 0.10;
  double budget_s = 5;
};

std::atomic<bool> g_failed{false};
// Seconds per iteration of the last benchmark run (benchmarks run one at a
// time, on the main thread).
double g_seconds_per_iteration = 0;

// True when this process was started by mpirun (Open MPI, or a PMI launcher).
bool UnderMpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr ||
         std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_RANK") != nullptr;
}

int EnvInt(const char* name, int otherwise) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : otherwise;
}

// At most 2^23 tasks a point (64 MiB of results): below k = 4 a point's
// total work is smaller than --metg_ideal_ms asks.
constexpr std::size_t kMaxTasks = std::size_t{1} << 23;

// One point: n tasks of `iterations` steps each.
struct Point {
  int k = 0;
  std::uint64_t iterations = 0;
  std::size_t n = 0;
  double task_ns = 0;
};

Point MakePoint(int k, const Config& c) {
  Point p;
  p.k = k;
  p.iterations = Iterations(std::ldexp(1.0, k), c.ns_per_iteration);
  p.task_ns = static_cast<double>(p.iterations) * c.ns_per_iteration;
  const double work_ns = c.ideal_ms * 1e6 * c.jobs;
  p.n = static_cast<std::size_t>(std::clamp(std::round(work_ns / p.task_ns),
                                            static_cast<double>(c.jobs),
                                            static_cast<double>(kMaxTasks)));
  return p;
}

// Before timing: lets the previous benchmark's threads go idle (OpenMP and
// TBB spin a while after a region) and returns freed heap to the system, so
// one runner's garbage is not copied by the next one's forks.
void Settle() {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  malloc_trim(0);
}

// True when out[i] == Spin(p.iterations, i) for every i < p.n.
bool Check(const Point& p, const std::uint64_t* out) {
  // Answer is affine in the seed: mul * i + add.
  const std::uint64_t add = Answer(p.iterations, 0);
  const std::uint64_t mul = Answer(p.iterations, 1) - add;
  for (std::size_t i = 0; i < p.n; ++i) {
    if (out[i] != mul * i + add) return false;
  }
  return true;
}

// Times run(out) per iteration; `run` stores task i's result in out[i] and
// returns out, or returns an array of its own (a map's results, kept until
// `release`). Every iteration's answers are checked with the clock paused.
template <class RunFn, class ReleaseFn>
void Measure(benchmark::State& state, const Point& p, int workers,
             bool into_out, RunFn&& run, ReleaseFn&& release) {
  Settle();
  std::vector<std::uint64_t> out(into_out ? p.n : 0, 0);
  double seconds = 0;
  for (auto _ : state) {
    const std::uint64_t* got = nullptr;
    try {
      const auto t0 = std::chrono::steady_clock::now();
      got = run(out.data());
      seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count();
    } catch (const std::exception& e) {
      g_failed.store(true);
      state.SkipWithError((std::string("threw: ") + e.what()).c_str());
      break;
    }
    state.PauseTiming();
    const bool ok = Check(p, got);
    std::fill(out.begin(), out.end(), 0);
    release();
    state.ResumeTiming();
    if (!ok) {
      g_failed.store(true);
      state.SkipWithError("wrong answer");
      break;
    }
  }
  g_seconds_per_iteration =
      seconds / static_cast<double>(
                    std::max<benchmark::IterationCount>(1, state.iterations()));
  state.counters["tasks"] = static_cast<double>(p.n);
  state.counters["task_ns"] = p.task_ns;
  state.counters["workers"] = workers;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(p.n));
}

template <class RunFn>
void MeasureInto(benchmark::State& state, const Point& p, int workers,
                 RunFn&& run) {
  Measure(state, p, workers, /*into_out=*/true, run, [] {});
}

// A fanout backend: for_each into out where memory is shared, map()
// elsewhere (process, mpi), as benchmarks/backends_benchmark.cc does.
void RunBackend(benchmark::State& state, const Point& p,
                const std::string& backend, int jobs, int workers) {
  Parallel parallel({.jobs = jobs, .backend = backend});
  const std::uint64_t iters = p.iterations;
  if (!parallel.executor().shares_memory()) {
    std::vector<std::uint64_t> results;
    Measure(
        state, p, workers, /*into_out=*/false,
        [&](std::uint64_t*) -> const std::uint64_t* {
          results = parallel.map(p.n, [iters](std::size_t i) {
            return Spin(iters, static_cast<std::uint64_t>(i));
          });
          return results.data();
        },
        [&] { results = std::vector<std::uint64_t>(); });
    return;
  }
  MeasureInto(state, p, workers, [&](std::uint64_t* out) {
    parallel.for_each(p.n, [out, iters](std::size_t i) {
      out[i] = Spin(iters, static_cast<std::uint64_t>(i));
    });
    return out;
  });
}

void RunLoop(benchmark::State& state, const Point& p) {
  MeasureInto(state, p, 1, [&](std::uint64_t* out) {
    for (std::size_t i = 0; i < p.n; ++i) {
      out[i] = Spin(p.iterations, static_cast<std::uint64_t>(i));
    }
    return out;
  });
}

void RunTbb(benchmark::State& state, const Point& p, int jobs) {
  tbb::task_arena arena(jobs);
  arena.initialize();
  const std::uint64_t iters = p.iterations;
  MeasureInto(state, p, jobs, [&](std::uint64_t* out) {
    arena.execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<std::size_t>(0, p.n),
          [out, iters](const tbb::blocked_range<std::size_t>& r) {
            for (std::size_t i = r.begin(); i != r.end(); ++i) {
              out[i] = Spin(iters, static_cast<std::uint64_t>(i));
            }
          },
          tbb::auto_partitioner());
    });
    return out;
  });
}

void RunOpenMp(benchmark::State& state, const Point& p, int jobs) {
  const std::uint64_t iters = p.iterations;
  MeasureInto(state, p, jobs, [&](std::uint64_t* out) {
    const long n = static_cast<long>(p.n);
#pragma omp parallel for schedule(static) num_threads(jobs)
    for (long i = 0; i < n; ++i) {
      out[i] = Spin(iters, static_cast<std::uint64_t>(i));
    }
    return out;
  });
}

void RunThreadPool(benchmark::State& state, const Point& p, int jobs) {
  thread_pool::ThreadPool pool(static_cast<std::size_t>(jobs));
  std::vector<std::future<void>> futures;
  const std::uint64_t iters = p.iterations;
  MeasureInto(state, p, jobs, [&](std::uint64_t* out) {
    futures.clear();
    futures.reserve(p.n);
    for (std::size_t i = 0; i < p.n; ++i) {
      futures.push_back(pool.Submit([out, i, iters] {
        out[i] = Spin(iters, static_cast<std::uint64_t>(i));
      }));
    }
    for (std::future<void>& f : futures) f.get();
    futures.clear();
    futures.shrink_to_fit();
    return out;
  });
}

// The error message of a point not run: its runner fell under --metg_floor
// or over --metg_budget_s at a larger task (metg.py leaves these out).
constexpr const char* kSkipped = "skipped: under the floor at a larger task";

void RegisterAll(const Config& c) {
  struct Runner {
    std::string name;
    int workers;
    std::function<void(benchmark::State&, const Point&)> run;
  };
  std::vector<Runner> runners;
  const int jobs = c.jobs;
  if (UnderMpirun()) {
    // jobs workers in all: jobs ranks of one thread each.
    const int ranks = EnvInt("OMPI_COMM_WORLD_SIZE", 1);
    runners.push_back(
        {"mpi", ranks, [ranks](benchmark::State& s, const Point& p) {
           RunBackend(s, p, "mpi", 1, ranks);
         }});
  } else {
    runners.push_back({"peer:loop", 1, [](benchmark::State& s, const Point& p) {
                         RunLoop(s, p);
                       }});
    runners.push_back(
        {"peer:tbb_parallel_for", jobs,
         [jobs](benchmark::State& s, const Point& p) { RunTbb(s, p, jobs); }});
    runners.push_back(
        {"peer:openmp", jobs, [jobs](benchmark::State& s, const Point& p) {
           RunOpenMp(s, p, jobs);
         }});
    runners.push_back(
        {"peer:thread_pool", jobs, [jobs](benchmark::State& s, const Point& p) {
           RunThreadPool(s, p, jobs);
         }});
    for (const std::string& backend : backend_names()) {
      if (backend == "mpi") continue;  // its ranks need mpirun
      const int backend_jobs = backend == "sequential" ? 1 : jobs;
      runners.push_back(
          {backend, backend_jobs,
           [backend, backend_jobs](benchmark::State& s, const Point& p) {
             RunBackend(s, p, backend, backend_jobs, backend_jobs);
           }});
    }
  }
  for (const Runner& r : runners) {
    // Largest tasks first, and a runner's smaller tasks skipped once it fell
    // under the floor or over the budget (thread_pool at 64 ns: 4 s an
    // iteration, and 2^23 futures would not fit).
    auto stopped_at = std::make_shared<int>(-1);  // the k it fell at
    for (auto it = c.ks.rbegin(); it != c.ks.rend(); ++it) {
      const Point p = MakePoint(*it, c);
      const std::string name = "metg/" + r.name + "/k:" + std::to_string(*it);
      benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(
          name.c_str(), [r, p, stopped_at, c](benchmark::State& s) {
            if (*stopped_at > p.k) {
              s.SkipWithError(kSkipped);
              return;
            }
            r.run(s, p);
            const double ideal = static_cast<double>(p.n) * p.task_ns * 1e-9 /
                                 static_cast<double>(r.workers);
            if (ideal < c.floor * g_seconds_per_iteration ||
                g_seconds_per_iteration > c.budget_s) {
              *stopped_at = p.k;
            }
          });
      b->UseRealTime()->Unit(benchmark::kMillisecond);
      if (c.iterations > 0) b->Iterations(c.iterations);
    }
  }
}

// Parses "lo:hi" or "a,b,c" into the list of k.
bool ParseKs(std::string_view text, std::vector<int>& ks) {
  ks.clear();
  if (const auto colon = text.find(':'); colon != std::string_view::npos) {
    const int lo = std::atoi(std::string(text.substr(0, colon)).c_str());
    const int hi = std::atoi(std::string(text.substr(colon + 1)).c_str());
    for (int k = lo; k <= hi; ++k) ks.push_back(k);
  } else {
    std::size_t start = 0;
    while (start <= text.size()) {
      const std::size_t comma = std::min(text.find(',', start), text.size());
      ks.push_back(
          std::atoi(std::string(text.substr(start, comma - start)).c_str()));
      start = comma + 1;
    }
  }
  for (int k : ks) {
    if (k < 0 || k > 30) return false;
  }
  return !ks.empty();
}

// Takes this binary's --metg_* flags out of argv; false on a bad one.
bool ParseFlags(int& argc, char** argv, Config& c) {
  c.ks.clear();
  for (int k = 0; k <= 20; ++k) c.ks.push_back(k);
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&](std::string_view flag, std::string_view& v) {
      if (arg.substr(0, flag.size()) != flag) return false;
      v = arg.substr(flag.size());
      return true;
    };
    std::string_view v;
    if (value("--metg_k=", v)) {
      if (!ParseKs(v, c.ks)) return false;
    } else if (value("--metg_ideal_ms=", v)) {
      c.ideal_ms = std::atof(std::string(v).c_str());
      if (!(c.ideal_ms > 0)) return false;
    } else if (value("--metg_jobs=", v)) {
      c.jobs = std::atoi(std::string(v).c_str());
      if (c.jobs < 1) return false;
    } else if (value("--metg_ns_per_iteration=", v)) {
      c.ns_per_iteration = std::atof(std::string(v).c_str());
      if (!(c.ns_per_iteration > 0)) return false;
    } else if (value("--metg_iterations=", v)) {
      c.iterations = std::atoi(std::string(v).c_str());
      if (c.iterations < 1) return false;
    } else if (value("--metg_floor=", v)) {
      c.floor = std::atof(std::string(v).c_str());
      if (!(c.floor >= 0 && c.floor < 1)) return false;
    } else if (value("--metg_budget_s=", v)) {
      c.budget_s = std::atof(std::string(v).c_str());
      if (!(c.budget_s > 0)) return false;
    } else if (arg.substr(0, 7) == "--metg_") {
      return false;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  argv[argc] = nullptr;
  return true;
}

}  // namespace
}  // namespace fanout::metg

int main(int argc, char** argv) {
  using fanout::metg::Config;
  Config config;
  if (!fanout::metg::ParseFlags(argc, argv, config)) {
    std::fprintf(stderr,
                 "metg_benchmark: bad --metg_* flag (see the comment at the "
                 "top of benchmarks/metg_benchmark.cc)\n");
    return 2;
  }
  if (fanout::metg::UnderMpirun()) {
    if (config.ns_per_iteration <= 0) {
      std::fprintf(stderr,
                   "metg_benchmark: under mpirun every rank must run the same "
                   "tasks: pass --metg_ns_per_iteration (benchmarks/metg.py "
                   "passes the value its first run measured)\n");
      return 2;
    }
    // Every rank must make the same calls: no iteration counts or skips
    // of their own.
    if (config.iterations <= 0) config.iterations = 3;
    config.floor = 0;
    config.budget_s = 1e300;
    // Rank 0 reports; the others run silently and write no file.
    if (fanout::metg::EnvInt("OMPI_COMM_WORLD_RANK", 0) != 0) {
      if (std::freopen("/dev/null", "w", stdout) == nullptr) return 1;
      int kept = 1;
      for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], "--benchmark_out", 15) != 0) {
          argv[kept++] = argv[i];
        }
      }
      argc = kept;
      argv[argc] = nullptr;
    }
  }
  if (config.ns_per_iteration <= 0) {
    config.ns_per_iteration = fanout::metg::NsPerIteration();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  char ns[32];
  std::snprintf(ns, sizeof(ns), "%.9g", config.ns_per_iteration);
  benchmark::AddCustomContext("metg_ns_per_iteration", ns);
  benchmark::AddCustomContext("metg_ideal_ms", std::to_string(config.ideal_ms));
  benchmark::AddCustomContext("metg_jobs", std::to_string(config.jobs));
  fanout::metg::RegisterAll(config);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return fanout::metg::g_failed.load() ? 1 : 0;
}
