// The backend comparison: every fanout backend in the registry and four peer
// libraries on the same five workloads (benchmarks/workloads.h), with
// jobs = 1 and jobs = every usable CPU, in one Google Benchmark binary.
//
//   ./bazelw run -c opt //benchmarks:backends -- --benchmark_filter='sum_10k/'
//   ./bazelw run //benchmarks:compare          # table + plot of the whole run
//
// Benchmarks are named <workload>/<runner>/jobs:<jobs>; a runner is a backend
// name ("thread", "tbb", ...) or a peer: "peer:loop" (a plain sequential
// loop), "peer:tbb_parallel_for" (auto partitioner in a task_arena),
// "peer:openmp" (parallel for, static schedule, dynamic for the imbalanced
// fib) and "peer:thread_pool" (thread_pool::ThreadPool, one Submit per task).
// Every benchmark checks its answers and reports items (tasks) per second;
// the binary exits 1 when any answer was wrong or a call threw.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <omp.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <oneapi/tbb/partitioner.h>
#include <oneapi/tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <thread_pool/thread_pool.hpp>
#include <vector>

#include "benchmarks/workloads.h"
#include "core/executor.h"
#include "core/parallel.h"
#include "workloads/workloads.h"

namespace fanout::bench {
namespace {

std::atomic<bool> g_failed{false};

// Before a benchmark starts timing: lets the threads of the previous one go
// idle (OpenMP and TBB spin a while after a parallel region), and gives the
// heap memory that earlier benchmarks freed back to the system. Without the
// trim, the garbage of one runner (peer:thread_pool's million futures,
// about 100 MB) stays resident in this process and is charged to every
// later process-backend call, whose fork() copies the caller's page tables
// (fork time grows with the caller's resident memory; see
// //backends/process:process_benchmark).
void Settle() {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  malloc_trim(0);
}

constexpr std::uint64_t kUnset = std::numeric_limits<std::uint64_t>::max();

void Fail(benchmark::State& state, const std::string& why) {
  g_failed.store(true);
  state.SkipWithError(why.c_str());
}

// Measure's loop: `into_out` says whether run stores into the harness's
// array (allocated only then); `release()` drops what run returned once it
// is checked, with the clock paused.
template <class W, class RunFn, class ReleaseFn>
void MeasureWith(benchmark::State& state, bool into_out, RunFn&& run,
                 ReleaseFn&& release) {
  Settle();
  std::vector<std::uint64_t> out(into_out ? W::kN : 0, kUnset);
  for (auto _ : state) {
    const std::uint64_t* got = nullptr;
    try {
      got = run(out.data());
    } catch (const std::exception& e) {
      Fail(state, std::string("threw: ") + e.what());
      break;
    }
    if constexpr (W::kN <= 2) {
      if (!W::Check(got)) {
        Fail(state, "wrong answer");
        break;
      }
      if (into_out) out[0] = out[1] = kUnset;
    } else {
      state.PauseTiming();
      const bool ok = W::Check(got);
      std::fill(out.begin(), out.end(), kUnset);
      release();
      state.ResumeTiming();
      if (!ok) {
        Fail(state, "wrong answer");
        break;
      }
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(W::kN));
}

// Times `run(out)` and checks every iteration's answers. `run` either
// stores task i's result in out[i] and returns out, or returns the array a
// map() call gave it, so that a backend that returns results is not also
// charged for copying them into out: the copy is the harness's, not the
// library's. Long iterations check with the clock paused; the latency
// workload's two-slot check is cheaper than pausing would be.
template <class W, class RunFn>
void Measure(benchmark::State& state, RunFn&& run) {
  MeasureWith<W>(state, /*into_out=*/true, run, [] {});
}

// Times a map() call per iteration: `map()` returns the results, checked
// with the clock paused and then released. The harness holds no array of
// its own for such a backend, and no call runs beside the previous call's
// results: a process backend's fork copies the page tables of everything
// the caller holds, and an array the caller would not hold (the harness's
// unused out, or the results a caller has already used) would be charged
// to the library.
template <class W, class MapFn>
void MeasureMap(benchmark::State& state, MapFn&& map) {
  std::vector<std::uint64_t> results;
  MeasureWith<W>(
      state, /*into_out=*/false,
      [&](std::uint64_t*) -> const std::uint64_t* {
        results = map();
        return results.data();
      },
      [&] { results = std::vector<std::uint64_t>(); });
}

// A fanout backend. Backends that share memory run for_each storing into
// out; the others (process, mpi) return results through map().
template <class W>
void RunBackendWith(benchmark::State& state, const Options& options) {
  Parallel parallel(options);
  if (!parallel.executor().shares_memory()) {
    MeasureMap<W>(state, [&] {
      return parallel.map(W::kN, [](std::size_t i) { return W::Task(i); });
    });
    return;
  }
  Measure<W>(state, [&](std::uint64_t* out) {
    parallel.for_each(W::kN, [out](std::size_t i) { out[i] = W::Task(i); });
    return out;
  });
}

template <class W>
void RunBackend(benchmark::State& state, const std::string& backend, int jobs,
                std::size_t batch_size = 0) {
  RunBackendWith<W>(
      state, {.jobs = jobs, .backend = backend, .batch_size = batch_size});
}

template <class W>
void RunLoop(benchmark::State& state) {
  Measure<W>(state, [](std::uint64_t* out) {
    for (std::size_t i = 0; i < W::kN; ++i) out[i] = W::Task(i);
    return out;
  });
}

template <class W>
void RunTbb(benchmark::State& state, int jobs) {
  tbb::task_arena arena(jobs);
  arena.initialize();
  Measure<W>(state, [&](std::uint64_t* out) {
    arena.execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<std::size_t>(0, W::kN),
          [out](const tbb::blocked_range<std::size_t>& r) {
            for (std::size_t i = r.begin(); i != r.end(); ++i)
              out[i] = W::Task(i);
          },
          tbb::auto_partitioner());
    });
    return out;
  });
}

template <class W>
void RunOpenMp(benchmark::State& state, int jobs) {
  Measure<W>(state, [jobs](std::uint64_t* out) {
    const long n = static_cast<long>(W::kN);
    if constexpr (W::kImbalanced) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
      for (long i = 0; i < n; ++i) out[i] = W::Task(i);
    } else {
#pragma omp parallel for schedule(static) num_threads(jobs)
      for (long i = 0; i < n; ++i) out[i] = W::Task(i);
    }
    return out;
  });
}

template <class W>
void RunThreadPool(benchmark::State& state, int jobs) {
  thread_pool::ThreadPool pool(static_cast<std::size_t>(jobs));
  std::vector<std::future<void>> futures;
  Measure<W>(state, [&](std::uint64_t* out) {
    futures.clear();
    futures.reserve(W::kN);
    for (std::size_t i = 0; i < W::kN; ++i) {
      futures.push_back(pool.Submit([out, i] { out[i] = W::Task(i); }));
    }
    for (std::future<void>& f : futures) f.get();
    return out;
  });
}

// A reduction: the sum of 10M tiny tasks, without storing them. fanout's
// map_reduce beside tbb::parallel_reduce, an OpenMP reduction(+) loop and a
// plain loop. The answer is checked every iteration.
constexpr std::size_t kReduceN = 10'000'000;

// The sum of the first n tiny tasks, computed once per n.
std::uint64_t TinySum(std::size_t n) {
  static std::mutex mu;
  static auto* sums = new std::map<std::size_t, std::uint64_t>;
  std::lock_guard<std::mutex> lock(mu);
  auto [it, fresh] = sums->try_emplace(n, 0);
  if (fresh) {
    for (std::size_t i = 0; i < n; ++i) it->second += workloads::TinyTask(i);
  }
  return it->second;
}

template <class SumFn>
void MeasureReduce(benchmark::State& state, SumFn&& sum) {
  Settle();
  const std::uint64_t expected = TinySum(kReduceN);
  for (auto _ : state) {
    std::uint64_t got = 0;
    try {
      got = sum();
    } catch (const std::exception& e) {
      Fail(state, std::string("threw: ") + e.what());
      break;
    }
    if (got != expected) {
      Fail(state, "wrong answer");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kReduceN));
}

void RegisterReduce(const std::vector<std::string>& backends,
                    const std::vector<int>& job_counts) {
  for (int jobs : job_counts) {
    const std::string suffix = "/jobs:" + std::to_string(jobs);
    std::vector<benchmark::internal::Benchmark*> added;
    if (jobs == 1) {
      added.push_back(benchmark::RegisterBenchmark(
          ("reduce_10M/peer:loop" + suffix).c_str(), [](benchmark::State& s) {
            MeasureReduce(s, [] {
              std::uint64_t total = 0;
              for (std::size_t i = 0; i < kReduceN; ++i) {
                total += workloads::TinyTask(i);
              }
              return total;
            });
          }));
    }
    added.push_back(benchmark::RegisterBenchmark(
        ("reduce_10M/peer:tbb_parallel_for" + suffix).c_str(),
        [jobs](benchmark::State& s) {
          tbb::task_arena arena(jobs);
          arena.initialize();
          MeasureReduce(s, [&] {
            return arena.execute([] {
              return tbb::parallel_reduce(
                  tbb::blocked_range<std::size_t>(0, kReduceN),
                  std::uint64_t{0},
                  [](const tbb::blocked_range<std::size_t>& r,
                     std::uint64_t acc) {
                    for (std::size_t i = r.begin(); i != r.end(); ++i) {
                      acc += workloads::TinyTask(i);
                    }
                    return acc;
                  },
                  std::plus<>(), tbb::auto_partitioner());
            });
          });
        }));
    added.push_back(benchmark::RegisterBenchmark(
        ("reduce_10M/peer:openmp" + suffix).c_str(),
        [jobs](benchmark::State& s) {
          MeasureReduce(s, [jobs] {
            std::uint64_t total = 0;
            const long n = static_cast<long>(kReduceN);
#pragma omp parallel for schedule(static) num_threads(jobs) reduction(+ : total)
            for (long i = 0; i < n; ++i) {
              total += workloads::TinyTask(static_cast<std::uint64_t>(i));
            }
            return total;
          });
        }));
    for (const std::string& backend : backends) {
      if (backend == "sequential" && jobs != 1) continue;
      added.push_back(benchmark::RegisterBenchmark(
          ("reduce_10M/" + backend + suffix).c_str(),
          [backend, jobs](benchmark::State& s) {
            Parallel parallel({.jobs = jobs, .backend = backend});
            MeasureReduce(s, [&] {
              return parallel.map_reduce(
                  kReduceN,
                  [](std::size_t i) { return workloads::TinyTask(i); },
                  std::uint64_t{0}, std::plus<>());
            });
          }));
    }
    for (benchmark::internal::Benchmark* b : added) {
      b->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  }
}

// Streams: the 1M tiny tasks of tiny_1M read through imap and imap_unordered
// (summed as they come, the sum checked), beside tiny_1M's map: the cost of
// streaming per backend.
constexpr std::size_t kStreamN = 1'000'000;

void RegisterStreams(const std::vector<std::string>& backends,
                     const std::vector<int>& job_counts) {
  for (int jobs : job_counts) {
    const std::string suffix = "/jobs:" + std::to_string(jobs);
    for (const std::string& backend : backends) {
      if (backend == "sequential" && jobs != 1) continue;
      for (bool ordered : {true, false}) {
        const std::string name =
            std::string(ordered ? "imap_1M/" : "imap_unordered_1M/") + backend +
            suffix;
        benchmark::RegisterBenchmark(
            name.c_str(),
            [backend, jobs, ordered](benchmark::State& s) {
              Parallel parallel({.jobs = jobs, .backend = backend});
              const std::uint64_t expected = TinySum(kStreamN);
              Settle();
              const auto task = [](std::size_t i) {
                return workloads::TinyTask(i);
              };
              for (auto _ : s) {
                std::uint64_t sum = 0;
                if (ordered) {
                  for (std::uint64_t r : parallel.imap(kStreamN, task)) {
                    sum += r;
                  }
                } else {
                  for (auto& [i, r] : parallel.imap_unordered(kStreamN, task)) {
                    sum += r;
                  }
                }
                if (sum != expected) {
                  Fail(s, "wrong answer");
                  break;
                }
              }
              s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations()) *
                                  static_cast<std::int64_t>(kStreamN));
            })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
}

// Checkpoints: the sum and tiny workloads through map with
// Options::checkpoint (a fresh file each iteration, so every task's result
// is written), beside sum_10k/<backend> and tiny_1M/<backend> without one:
// the cost of journaling (windows of about a second, one write() each).
// The file is in the system's temporary directory.
template <class W>
void RegisterCheckpoint(const std::vector<std::string>& backends,
                        const std::vector<int>& job_counts) {
  for (int jobs : job_counts) {
    for (const std::string& backend : backends) {
      if (backend == "sequential" && jobs != 1) continue;
      if (backend == "mpi") continue;  // ranks would share one file name
      const std::string name = std::string(W::kName) + "_checkpoint/" +
                               backend + "/jobs:" + std::to_string(jobs);
      benchmark::RegisterBenchmark(
          name.c_str(),
          [backend, jobs](benchmark::State& s) {
            const std::string path =
                (std::filesystem::temp_directory_path() /
                 ("fanout_bench_" + std::to_string(getpid()) + ".ckpt"))
                    .string();
            Parallel parallel({.jobs = jobs,
                               .backend = backend,
                               .checkpoint = path,
                               .checkpoint_key = W::kName});
            MeasureMap<W>(s, [&] {
              std::filesystem::remove(path);
              std::vector<std::uint64_t> results =
                  parallel.map(W::kN, [](std::size_t i) { return W::Task(i); });
              if (parallel.last_call_resumed() != 0) {
                throw std::runtime_error("a fresh checkpoint resumed");
              }
              return results;
            });
            std::filesystem::remove(path);
          })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

// Traces: the sum and tiny workloads with Options::trace (one file written
// at the end of every call), run as sum_10k/<backend> and tiny_1M/<backend>
// run untraced: the cost of tracing, the recording and the file's writing.
// The file is in the system's temporary directory.
template <class W>
void RegisterTraced(const std::vector<std::string>& backends,
                    const std::vector<int>& job_counts) {
  for (int jobs : job_counts) {
    for (const std::string& backend : backends) {
      if (backend == "sequential" && jobs != 1) continue;
      if (backend == "mpi") continue;  // ranks would share one file name
      const std::string name = std::string(W::kName) + "_trace/" + backend +
                               "/jobs:" + std::to_string(jobs);
      benchmark::RegisterBenchmark(
          name.c_str(),
          [backend, jobs](benchmark::State& s) {
            const std::string path =
                (std::filesystem::temp_directory_path() /
                 ("fanout_bench_" + std::to_string(getpid()) + ".json"))
                    .string();
            RunBackendWith<W>(
                s, {.jobs = jobs, .backend = backend, .trace = path});
            if (!std::filesystem::exists(path)) {
              throw std::runtime_error("a traced call wrote no trace");
            }
            std::filesystem::remove(path);
          })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

// True when this process was started by mpirun (Open MPI, or a PMI launcher).
bool UnderMpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr ||
         std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_RANK") != nullptr;
}

template <class W>
void RegisterWorkload(const std::vector<std::string>& backends,
                      const std::vector<int>& job_counts) {
  for (int jobs : job_counts) {
    const std::string suffix = "/jobs:" + std::to_string(jobs);
    auto name = [&](const std::string& runner) {
      return std::string(W::kName) + "/" + runner + suffix;
    };
    std::vector<benchmark::internal::Benchmark*> added;
    if (jobs == 1) {
      added.push_back(benchmark::RegisterBenchmark(
          name("peer:loop").c_str(),
          [](benchmark::State& s) { RunLoop<W>(s); }));
    }
    added.push_back(benchmark::RegisterBenchmark(
        name("peer:tbb_parallel_for").c_str(),
        [jobs](benchmark::State& s) { RunTbb<W>(s, jobs); }));
    added.push_back(benchmark::RegisterBenchmark(
        name("peer:openmp").c_str(),
        [jobs](benchmark::State& s) { RunOpenMp<W>(s, jobs); }));
    added.push_back(benchmark::RegisterBenchmark(
        name("peer:thread_pool").c_str(),
        [jobs](benchmark::State& s) { RunThreadPool<W>(s, jobs); }));
    for (const std::string& backend : backends) {
      // The sequential backend ignores jobs: once is enough.
      if (backend == "sequential" && jobs != 1) continue;
      added.push_back(benchmark::RegisterBenchmark(
          name(backend).c_str(), [backend, jobs](benchmark::State& s) {
            RunBackend<W>(s, backend, jobs);
          }));
    }
    for (benchmark::internal::Benchmark* b : added) {
      b->UseRealTime()->Unit(benchmark::kMillisecond);
      if (W::kN <= 2) b->Unit(benchmark::kMicrosecond);
    }
  }
}

// batch_size = 0 (auto, sized from measured time) against fixed batch
// sizes 1, 4, 16, ... on each backend at the most jobs: runners named
// "thread@b16". compare.py takes the best fixed size of each backend and
// workload and sets auto beside it.
template <class W>
void RegisterBatchSizes(const std::vector<std::string>& backends, int jobs) {
  const std::string suffix = "/jobs:" + std::to_string(jobs);
  for (const std::string& backend : backends) {
    if (backend == "sequential") continue;
    for (std::size_t batch = 1; batch <= std::min<std::size_t>(W::kN, 4096);
         batch *= 4) {
      const std::string name = std::string(W::kName) + "/" + backend + "@b" +
                               std::to_string(batch) + suffix;
      benchmark::RegisterBenchmark(name.c_str(),
                                   [backend, jobs, batch](benchmark::State& s) {
                                     RunBackend<W>(s, backend, jobs, batch);
                                   })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

void RegisterAll() {
  std::vector<std::string> backends;
  for (const std::string& name : backend_names()) {
    // The mpi backend needs its ranks: it runs only under mpirun.
    if (name == "mpi" && !UnderMpirun()) continue;
    backends.push_back(name);
  }
  std::vector<int> job_counts = {1};
  if (usable_cpus() > 1) job_counts.push_back(usable_cpus());
  RegisterWorkload<Tiny>(backends, job_counts);
  RegisterWorkload<Sum>(backends, job_counts);
  RegisterWorkload<Fib>(backends, job_counts);
  RegisterWorkload<Busy>(backends, job_counts);
  RegisterWorkload<Latency>(backends, job_counts);
  RegisterWorkload<Linear>(backends, job_counts);
  RegisterBatchSizes<Tiny>(backends, job_counts.back());
  RegisterBatchSizes<Busy>(backends, job_counts.back());
  RegisterBatchSizes<Fib>(backends, job_counts.back());
  RegisterBatchSizes<Linear>(backends, job_counts.back());
  RegisterReduce(backends, job_counts);
  RegisterStreams(backends, job_counts);
  RegisterCheckpoint<Sum>(backends, job_counts);
  RegisterCheckpoint<Tiny>(backends, job_counts);
  RegisterTraced<Sum>(backends, job_counts);
  RegisterTraced<Tiny>(backends, job_counts);
}

}  // namespace
}  // namespace fanout::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  fanout::bench::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return fanout::bench::g_failed.load() ? 1 : 0;
}
