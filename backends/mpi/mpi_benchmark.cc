// The mpi backend on the reference workloads, against sequential, and what
// it costs to start. A small timing program rather than Google Benchmark:
// every rank must make the same calls, and Google Benchmark picks iteration
// counts per process, which would make the ranks diverge.
//
//   ./bazelw build -c opt //backends/mpi:mpi_benchmark
//   ./bazelw run //backends/mpi:mpirun -- -np 2 $PWD/bazel-bin/backends/mpi/mpi_benchmark
//   ./bazelw run //backends/mpi:mpirun -- -np 2 $PWD/bazel-bin/backends/mpi/mpi_benchmark --bare_init
//   mpirun -np 2 $PWD/bazel-bin/backends/mpi/mpi_benchmark --bare_init   # Open MPI's defaults
//
// Per workload: the median wall time of --reps runs on the mpi backend (every
// rank, jobs per rank from --jobs) and of the same runs on the sequential
// backend on rank 0 alone (the other ranks wait without spinning), their
// ratio, the ratio of the fastest runs (steadier on a busy machine), and
// "machine": how much faster the ranks get through `size` copies of the
// sequential workload run side by side than one rank through one (2.00x on
// two idle cores) — the most any backend could reach at that moment. For fib, whose six tasks cannot be split evenly, it also prints the
// best ratio any schedule of those tasks could reach on the job's workers.
// Startup: seconds in MPI_Init_thread and in making the first mpi executor
// (MPI_Init_thread, communicator and error handler), the largest over ranks;
// --bare_init times MPI_Init_thread alone, with no fanout in the way.
// --quick shrinks the workloads to a smoke test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "backends/mpi/mpi.h"
#include "core/parallel.h"
#include "workloads/workloads.h"

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The largest value over ranks, on every rank.
double MaxOverRanks(double x, MPI_Comm comm) {
  double out = x;
  if (comm != MPI_COMM_NULL)
    MPI_Allreduce(&x, &out, 1, MPI_DOUBLE, MPI_MAX, comm);
  return out;
}

// A barrier that sleeps instead of spinning, so waiting ranks leave the CPU
// to the one that measures.
void QuietBarrier(MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return;
  MPI_Request request;
  MPI_Ibarrier(comm, &request);
  for (int done = 0;;) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done != 0) return;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// The best speedup any assignment of tasks (seconds each) to `workers`
// could give: total / smallest possible makespan. Exhaustive; small n only.
double BestSpeedup(const std::vector<double>& tasks, int workers) {
  double total = 0;
  for (double t : tasks) total += t;
  double best = total;
  std::vector<double> load(workers, 0);
  std::function<void(std::size_t)> place = [&](std::size_t k) {
    if (k == tasks.size()) {
      best = std::min(best, *std::max_element(load.begin(), load.end()));
      return;
    }
    for (int w = 0; w < workers; ++w) {
      if (load[w] + tasks[k] >= best) continue;
      load[w] += tasks[k];
      place(k + 1);
      load[w] -= tasks[k];
      if (load[w] == 0) break;  // empty workers are interchangeable
    }
  };
  place(0);
  return best > 0 ? total / best : 0;
}

struct Flags {
  bool bare_init = false;
  bool quick = false;
  int reps = 5;
  int jobs = -1;
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--bare_init") {
      f.bare_init = true;
    } else if (a == "--quick") {
      f.quick = true;
    } else if (a.rfind("--reps=", 0) == 0) {
      f.reps = std::max(1, std::atoi(a.c_str() + 7));
    } else if (a.rfind("--jobs=", 0) == 0) {
      f.jobs = std::atoi(a.c_str() + 7);
    } else {
      std::fprintf(stderr,
                   "mpi_benchmark: unknown argument '%s'; valid: --bare_init "
                   "--quick --reps=N --jobs=N\n",
                   a.c_str());
      std::exit(2);
    }
  }
  return f;
}

int BareInit() {
  const auto start = Clock::now();
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
  const double mine = Since(start);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  double worst = mine;
  MPI_Allreduce(&mine, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0) {
    std::printf("bare MPI_Init_thread: %.1f ms (largest of %d ranks)\n",
                worst * 1e3, size);
  }
  MPI_Finalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  if (flags.bare_init) return BareInit();

  const auto start = Clock::now();
  fanout::Parallel mpi({.jobs = flags.jobs, .backend = "mpi"});
  const double make_seconds = Since(start);
  const fanout::mpi::World& w = fanout::mpi::world();
  const bool primary = mpi.executor().is_primary();
  fanout::Parallel seq({.backend = "sequential"});

  const double init_max = MaxOverRanks(w.init_seconds, w.comm);
  const double make_max = MaxOverRanks(make_seconds, w.comm);
  if (primary) {
    std::printf(
        "fanout mpi benchmark: %d rank(s), %d job(s) per rank, median of %d\n",
        w.size, mpi.jobs(), flags.reps);
    std::printf(
        "startup: MPI_Init_thread %.1f ms, make_executor(\"mpi\") %.1f ms "
        "(largest of the ranks)\n",
        init_max * 1e3, make_max * 1e3);
    std::printf("%-8s %14s %10s %9s %9s %9s\n", "workload", "sequential (s)",
                "mpi (s)", "speedup", "best/best", "machine");
  }

  const int sum_tasks = flags.quick ? 200 : fanout::workloads::kSumTasks;
  std::vector<int> fib_args(std::begin(fanout::workloads::kFibArgs),
                            std::end(fanout::workloads::kFibArgs));
  if (flags.quick) {
    for (int& a : fib_args) a -= 14;
  }

  // Runs `work` on both backends and prints the row; true when they agree.
  auto measure = [&](const char* name, auto work) {
    std::vector<double> seq_times, mpi_times, side_by_side;
    decltype(work(mpi)) seq_answer{}, mpi_answer{};
    for (int rep = 0; rep < flags.reps; ++rep) {
      QuietBarrier(w.comm);
      if (primary) {
        const auto t = Clock::now();
        seq_answer = work(seq);
        seq_times.push_back(Since(t));
      }
      QuietBarrier(w.comm);
      {  // every rank alone with the whole workload, all at once
        const auto t = Clock::now();
        work(seq);
        side_by_side.push_back(MaxOverRanks(Since(t), w.comm));
      }
      QuietBarrier(w.comm);
      const auto t = Clock::now();
      mpi_answer = work(mpi);
      mpi_times.push_back(Since(t));
    }
    if (!primary) return true;  // only rank 0 ran the sequential baseline
    const double best_seq =
        *std::min_element(seq_times.begin(), seq_times.end());
    const double best_mpi =
        *std::min_element(mpi_times.begin(), mpi_times.end());
    // What the machine gives right now: the work of `size` sequential runs
    // side by side over the time of one alone (2.0 on two idle cores).
    const double ceiling = w.size * Median(seq_times) / Median(side_by_side);
    std::printf("%-8s %14.3f %10.3f %8.2fx %8.2fx %8.2fx%s\n", name,
                Median(seq_times), Median(mpi_times),
                Median(seq_times) / Median(mpi_times), best_seq / best_mpi,
                ceiling, seq_answer == mpi_answer ? "" : "  (ANSWERS DIFFER)");
    return seq_answer == mpi_answer;
  };

  bool ok = measure("sum", [&](fanout::Parallel& p) {
    std::vector<long long> r = p.map(sum_tasks, [](std::size_t i) {
      return fanout::workloads::SumTask(static_cast<long long>(i));
    });
    long long s = 0;
    for (long long x : r) s += x;
    return s;
  });
  ok = measure("fib",
               [&](fanout::Parallel& p) {
                 return p.map(fib_args,
                              [](int n) { return fanout::workloads::Fib(n); });
               }) &&
       ok;

  // The best any schedule of fib's tasks could do on this job's workers.
  if (primary) {
    std::vector<double> task_seconds;
    for (int a : fib_args) {
      std::vector<double> t;
      for (int rep = 0; rep < 3; ++rep) {
        const auto s = Clock::now();
        volatile long long f = fanout::workloads::Fib(a);
        (void)f;
        t.push_back(Since(s));
      }
      task_seconds.push_back(Median(t));
    }
    std::printf(
        "fib: the best schedule of its %zu tasks on %d workers gives %.2fx\n",
        task_seconds.size(), w.size * mpi.jobs(),
        BestSpeedup(task_seconds, w.size * mpi.jobs()));
  }
  QuietBarrier(w.comm);

  // What one call costs when its tasks cost nothing.
  constexpr int kCalls = 2000;
  QuietBarrier(w.comm);
  const auto t = Clock::now();
  for (int k = 0; k < kCalls; ++k) {
    mpi.map(2 * static_cast<std::size_t>(w.size),
            [](std::size_t i) { return i; });
  }
  const double per_call = MaxOverRanks(Since(t) / kCalls, w.comm);
  if (primary) {
    std::printf("call overhead: %.1f us per map of %d empty tasks\n",
                per_call * 1e6, 2 * w.size);
  }
  return ok ? 0 : 1;
}
