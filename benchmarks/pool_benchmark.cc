// Work that arrives over time, beside its peers: what one submitted task
// costs (submit + get of empty tasks) and how a graph of dependent tasks
// runs, on fanout's pools and on the libraries people use for it, in one
// Google Benchmark binary.
//
//   ./bazelw run //benchmarks:pool -- --benchmark_filter=submit_get
//   ./bazelw run //benchmarks:pool_compare   # the README's table, with the
//                                            # Python peers (pool_peers.py)
//
// Benchmarks are named <case>/<runner>/jobs:2:
//   submit_get_1M    1M empty tasks (task i returns i) submitted one by one,
//                    then every future's value taken; the sum is checked.
//                    Runners: fanout's thread, tbb and sequential pools;
//                    peer:tbb_task_group (run + wait, values stored by the
//                    task), peer:thread_pool (thread_pool::ThreadPool's
//                    Submit + std::future::get), peer:std_async (one thread
//                    per task: 10k tasks, reported per task).
//   submit_get_100k  the same on process (generations of forked workers;
//                    results through the codec), per task.
//   dag_tree_64k     a binary reduction tree of 2^16 - 1 tasks: 2^15 leaves,
//                    each inner task adds its two children's values.
//   dag_wave_64k     a 256 x 256 wavefront: task (i, j) waits for (i-1, j)
//                    and (i, j-1).
//                    DAG runners: fanout's pools, and peer:tbb_flow_graph
//                    (a continue_node per task, built and run each time).
// items_per_second counts tasks (its inverse is the cost of one). Answers
// are checked; the binary exits 1 when one is wrong.
#include <benchmark/benchmark.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <thread_pool/thread_pool.hpp>
#include <vector>

#include "core/pool.h"

namespace fanout::bench {
namespace {

std::atomic<bool> g_failed{false};

void Check(bool ok, const char* what) {
  if (!ok && !g_failed.exchange(true)) {
    std::fprintf(stderr, "pool_benchmark: wrong answer: %s\n", what);
  }
}

// Items are tasks: items_per_second is what a task costs (its inverse).
void PerTask(benchmark::State& state, std::size_t tasks) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(tasks));
}

constexpr int kJobs = 2;

// --- submit + get ---------------------------------------------------------

void FanoutSubmitGet(benchmark::State& state, const std::string& backend,
                     std::size_t n) {
  Pool pool({.jobs = kJobs, .backend = backend});
  std::vector<Future<std::uint64_t>> futures;
  for (auto _ : state) {
    futures.clear();
    futures.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      futures.push_back(pool.submit([](std::uint64_t x) { return x; }, i));
    }
    std::uint64_t sum = 0;
    for (Future<std::uint64_t>& f : futures) sum += f.get();
    Check(sum == n * (n - 1) / 2, "fanout submit/get");
    benchmark::DoNotOptimize(sum);
  }
  PerTask(state, n);
}

void TbbTaskGroup(benchmark::State& state, std::size_t n) {
  tbb::task_arena arena(kJobs);
  std::vector<std::uint64_t> values(n);
  for (auto _ : state) {
    arena.execute([&] {
      tbb::task_group group;
      for (std::uint64_t i = 0; i < n; ++i) {
        group.run([&values, i] { values[i] = i; });
      }
      group.wait();
    });
    std::uint64_t sum = 0;
    for (std::uint64_t v : values) sum += v;
    Check(sum == n * (n - 1) / 2, "tbb task_group");
  }
  PerTask(state, n);
}

void ThreadPoolSubmit(benchmark::State& state, std::size_t n) {
  thread_pool::ThreadPool pool(kJobs);
  std::vector<std::future<std::uint64_t>> futures;
  for (auto _ : state) {
    futures.clear();
    futures.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      futures.push_back(pool.Submit([i] { return i; }));
    }
    std::uint64_t sum = 0;
    for (auto& f : futures) sum += f.get();
    Check(sum == n * (n - 1) / 2, "thread_pool");
  }
  PerTask(state, n);
}

void StdAsync(benchmark::State& state, std::size_t n) {
  std::vector<std::future<std::uint64_t>> futures;
  for (auto _ : state) {
    futures.clear();
    futures.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      futures.push_back(std::async(std::launch::async, [i] { return i; }));
    }
    std::uint64_t sum = 0;
    for (auto& f : futures) sum += f.get();
    Check(sum == n * (n - 1) / 2, "std::async");
  }
  PerTask(state, n);
}

// --- graphs -----------------------------------------------------------------

constexpr std::size_t kLeaves = std::size_t{1} << 15;  // 2^16 - 1 tasks
constexpr std::size_t kSide = 256;                     // 2^16 tasks

std::uint64_t TreeAnswer() {
  // The leaves' values are 0 .. kLeaves-1: the root is their sum.
  return static_cast<std::uint64_t>(kLeaves) * (kLeaves - 1) / 2;
}

// The wavefront's corner: each cell is (left + up + 1) mod 2^64.
std::uint64_t WaveAnswer() {
  static const std::uint64_t answer = [] {
    std::vector<std::uint64_t> row(kSide, 0);
    for (std::size_t i = 0; i < kSide; ++i) {
      for (std::size_t j = 0; j < kSide; ++j) {
        const std::uint64_t up = i > 0 ? row[j] : 0;
        const std::uint64_t left = j > 0 ? row[j - 1] : 0;
        row[j] = up + left + 1;
      }
    }
    return row[kSide - 1];
  }();
  return answer;
}

void FanoutTree(benchmark::State& state, const std::string& backend) {
  Pool pool({.jobs = kJobs, .backend = backend});
  for (auto _ : state) {
    std::vector<Future<std::uint64_t>> level;
    level.reserve(kLeaves);
    for (std::uint64_t i = 0; i < kLeaves; ++i) {
      level.push_back(pool.submit([](std::uint64_t x) { return x; }, i));
    }
    while (level.size() > 1) {
      std::vector<Future<std::uint64_t>> next;
      next.reserve(level.size() / 2);
      for (std::size_t k = 0; k + 1 < level.size(); k += 2) {
        next.push_back(
            pool.submit([](std::uint64_t a, std::uint64_t b) { return a + b; },
                        level[k], level[k + 1]));
      }
      level = std::move(next);
    }
    Check(level[0].get() == TreeAnswer(), "fanout tree");
  }
  PerTask(state, 2 * kLeaves - 1);
}

void FanoutWave(benchmark::State& state, const std::string& backend) {
  Pool pool({.jobs = kJobs, .backend = backend});
  for (auto _ : state) {
    std::vector<Future<std::uint64_t>> up(kSide);
    std::vector<Future<std::uint64_t>> row(kSide);
    for (std::size_t i = 0; i < kSide; ++i) {
      for (std::size_t j = 0; j < kSide; ++j) {
        if (i == 0 && j == 0) {
          row[j] = pool.submit([] { return std::uint64_t{1}; });
        } else if (i == 0) {
          row[j] =
              pool.submit([](std::uint64_t l) { return l + 1; }, row[j - 1]);
        } else if (j == 0) {
          row[j] = pool.submit([](std::uint64_t u) { return u + 1; }, up[j]);
        } else {
          row[j] = pool.submit(
              [](std::uint64_t l, std::uint64_t u) { return l + u + 1; },
              row[j - 1], up[j]);
        }
      }
      std::swap(up, row);
    }
    Check(up[kSide - 1].get() == WaveAnswer(), "fanout wavefront");
  }
  PerTask(state, kSide * kSide);
}

void FlowTree(benchmark::State& state) {
  tbb::task_arena arena(kJobs);
  using Node = tbb::flow::continue_node<tbb::flow::continue_msg>;
  for (auto _ : state) {
    arena.execute([&] {
      tbb::flow::graph g;
      std::vector<std::uint64_t> value(2 * kLeaves - 1, 0);
      std::vector<std::unique_ptr<Node>> nodes;
      nodes.reserve(2 * kLeaves - 1);
      // Node k's children are 2k+1, 2k+2 (a heap); leaves from kLeaves-1.
      for (std::size_t k = 0; k < 2 * kLeaves - 1; ++k) {
        if (k >= kLeaves - 1) {
          const std::uint64_t leaf = k - (kLeaves - 1);
          nodes.push_back(std::make_unique<Node>(
              g, [&value, k, leaf](const tbb::flow::continue_msg&) {
                value[k] = leaf;
              }));
        } else {
          nodes.push_back(std::make_unique<Node>(
              g, [&value, k](const tbb::flow::continue_msg&) {
                value[k] = value[2 * k + 1] + value[2 * k + 2];
              }));
        }
      }
      for (std::size_t k = 0; k < kLeaves - 1; ++k) {
        tbb::flow::make_edge(*nodes[2 * k + 1], *nodes[k]);
        tbb::flow::make_edge(*nodes[2 * k + 2], *nodes[k]);
      }
      for (std::size_t k = kLeaves - 1; k < 2 * kLeaves - 1; ++k) {
        nodes[k]->try_put(tbb::flow::continue_msg());
      }
      g.wait_for_all();
      Check(value[0] == TreeAnswer(), "flow graph tree");
    });
  }
  PerTask(state, 2 * kLeaves - 1);
}

void FlowWave(benchmark::State& state) {
  tbb::task_arena arena(kJobs);
  using Node = tbb::flow::continue_node<tbb::flow::continue_msg>;
  for (auto _ : state) {
    arena.execute([&] {
      tbb::flow::graph g;
      std::vector<std::uint64_t> value(kSide * kSide, 0);
      std::vector<std::unique_ptr<Node>> nodes;
      nodes.reserve(kSide * kSide);
      for (std::size_t i = 0; i < kSide; ++i) {
        for (std::size_t j = 0; j < kSide; ++j) {
          nodes.push_back(std::make_unique<Node>(
              g, [&value, i, j](const tbb::flow::continue_msg&) {
                const std::uint64_t up = i > 0 ? value[(i - 1) * kSide + j] : 0;
                const std::uint64_t left = j > 0 ? value[i * kSide + j - 1] : 0;
                value[i * kSide + j] = up + left + 1;
              }));
        }
      }
      for (std::size_t i = 0; i < kSide; ++i) {
        for (std::size_t j = 0; j < kSide; ++j) {
          if (i > 0) {
            tbb::flow::make_edge(*nodes[(i - 1) * kSide + j],
                                 *nodes[i * kSide + j]);
          }
          if (j > 0) {
            tbb::flow::make_edge(*nodes[i * kSide + j - 1],
                                 *nodes[i * kSide + j]);
          }
        }
      }
      nodes[0]->try_put(tbb::flow::continue_msg());
      g.wait_for_all();
      Check(value[kSide * kSide - 1] == WaveAnswer(), "flow graph wave");
    });
  }
  PerTask(state, kSide * kSide);
}

void Register() {
  const auto name = [](const std::string& c, const std::string& runner) {
    return c + "/" + runner + "/jobs:" + std::to_string(kJobs);
  };
  constexpr std::size_t kMillion = 1'000'000;
  for (const char* backend : {"thread", "tbb", "sequential"}) {
    benchmark::RegisterBenchmark(name("submit_get_1M", backend).c_str(),
                                 [backend](benchmark::State& s) {
                                   FanoutSubmitGet(s, backend, kMillion);
                                 })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark(
      name("submit_get_1M", "peer:tbb_task_group").c_str(),
      [](benchmark::State& s) { TbbTaskGroup(s, kMillion); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(
      name("submit_get_1M", "peer:thread_pool").c_str(),
      [](benchmark::State& s) { ThreadPoolSubmit(s, kMillion); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(name("submit_get_1M", "peer:std_async").c_str(),
                               [](benchmark::State& s) { StdAsync(s, 10'000); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(
      name("submit_get_100k", "process").c_str(),
      [](benchmark::State& s) { FanoutSubmitGet(s, "process", 100'000); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  for (const char* backend : {"thread", "tbb", "sequential", "process"}) {
    benchmark::RegisterBenchmark(
        name("dag_tree_64k", backend).c_str(),
        [backend](benchmark::State& s) { FanoutTree(s, backend); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(
        name("dag_wave_64k", backend).c_str(),
        [backend](benchmark::State& s) { FanoutWave(s, backend); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark(
      name("dag_tree_64k", "peer:tbb_flow_graph").c_str(),
      [](benchmark::State& s) { FlowTree(s); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(
      name("dag_wave_64k", "peer:tbb_flow_graph").c_str(),
      [](benchmark::State& s) { FlowWave(s); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace
}  // namespace fanout::bench

int main(int argc, char** argv) {
  // TBB keeps one worker per core less one: an arena of 2 on 2 cores has
  // the caller and one worker, as fanout's tbb pool of 2 has 2 workers.
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 3);
  benchmark::Initialize(&argc, argv);
  fanout::bench::Register();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return fanout::bench::g_failed.load() ? 1 : 0;
}
