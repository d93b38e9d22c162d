// fanout/benchmarks/workloads.h — the five workloads of the backend
// comparison, written once and run by every backend and every peer library
// (sequential loop, raw tbb::parallel_for, OpenMP, thread_pool) alike.
//
// A workload is a type with a name, a task count, a task body and a check of
// the results; a runner stores task i's result in out[i]:
//
//   std::vector<std::uint64_t> out(Sum::kN);
//   for (std::size_t i = 0; i < Sum::kN; ++i) out[i] = Sum::Task(i);
//   bool ok = Sum::Check(out.data());   // total 249972500250000000
//
// The reference tasks (sum, fib, the tiny task) come from
// workloads/workloads.h, so the benchmark measures exactly what the CLI runs.
// Loops carry an empty asm statement on the accumulator so g++ cannot fold
// them.
//
// The task bodies of sum, fib and busy are out of line: every runner then
// runs the very same machine code. Inlined, each runner got its own copy of
// the loop, and a copy whose loop straddles a 16-byte fetch block ran at half
// speed (busy: 1.03 s or 2.0 s depending on the runner, same instructions).
#ifndef FANOUT_BENCHMARKS_WORKLOADS_H_
#define FANOUT_BENCHMARKS_WORKLOADS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "workloads/workloads.h"

namespace fanout::bench {

// sum of i * n for i in [0, iters), loop kept: about 0.33 ns an iteration
// here. The answer is n * iters * (iters - 1) / 2 (mod 2^64).
inline std::uint64_t SpinSum(std::uint64_t n, std::uint64_t iters) {
  std::uint64_t acc = 0;
  for (std::uint64_t i = 0; i < iters; ++i) {
    acc += i * n;
    asm volatile("" : "+r"(acc));
  }
  return acc;
}

// (a) 1M tasks of about 50 ns: the cost of scheduling itself.
struct Tiny {
  static constexpr const char* kName = "tiny_1M";
  static constexpr std::size_t kN = 1'000'000;
  static constexpr bool kImbalanced = false;
  static std::uint64_t Task(std::size_t i) { return workloads::TinyTask(i); }
  static bool Check(const std::uint64_t* out) {
    static const std::vector<std::uint64_t>* expected = [] {
      auto* v = new std::vector<std::uint64_t>(kN);
      for (std::size_t i = 0; i < kN; ++i) (*v)[i] = Task(i);
      return v;
    }();
    for (std::size_t i = 0; i < kN; ++i) {
      if (out[i] != (*expected)[i]) return false;
    }
    return true;
  }
};

// (b) the reference `sum`: 10000 tasks, task n = sum of i*n for i < 100000.
struct Sum {
  static constexpr const char* kName = "sum_10k";
  static constexpr std::size_t kN = workloads::kSumTasks;
  static constexpr bool kImbalanced = false;
  [[gnu::noinline]] static std::uint64_t Task(std::size_t i) {
    return static_cast<std::uint64_t>(
        workloads::SumTask(static_cast<long long>(i)));
  }
  static bool Check(const std::uint64_t* out) {
    long long total = 0;
    for (std::size_t i = 0; i < kN; ++i) {
      if (static_cast<long long>(out[i]) !=
          static_cast<long long>(i) *
              (workloads::kSumTerms * (workloads::kSumTerms - 1) / 2)) {
        return false;
      }
      total += static_cast<long long>(out[i]);
    }
    return total == workloads::kSumAnswer;
  }
};

// (c) naive recursive fib of 38, 37, ..., 33: six tasks of very unequal size.
struct Fib {
  static constexpr const char* kName = "fib_38_33";
  static constexpr std::size_t kN = 6;
  static constexpr bool kImbalanced = true;
  [[gnu::noinline]] static std::uint64_t Task(std::size_t i) {
    return static_cast<std::uint64_t>(workloads::Fib(workloads::kFibArgs[i]));
  }
  static bool Check(const std::uint64_t* out) {
    for (std::size_t i = 0; i < kN; ++i) {
      if (out[i] != static_cast<std::uint64_t>(workloads::kFibAnswers[i]))
        return false;
    }
    return true;
  }
};

// (d) 1000 tasks of about 1 ms of busy arithmetic (not sleep).
struct Busy {
  static constexpr const char* kName = "busy_1ms_x1000";
  static constexpr std::size_t kN = 1000;
  static constexpr bool kImbalanced = false;
  static constexpr std::uint64_t kIters = 3'000'000;
  [[gnu::noinline]] static std::uint64_t Task(std::size_t i) {
    return SpinSum(i, kIters);
  }
  static bool Check(const std::uint64_t* out) {
    for (std::size_t i = 0; i < kN; ++i) {
      if (out[i] != i * (kIters * (kIters - 1) / 2)) return false;
    }
    return true;
  }
};

// (f) 4000 tasks whose time grows linearly with the index: task i spins
// 150 * i iterations (0 .. ~0.2 ms; ~0.4 s in all). Fixed chunks that are
// right at the start are too big at the end, so it tests batch sizes taken
// from measured time against TBB's auto partitioner.
struct Linear {
  static constexpr const char* kName = "linear_4k";
  static constexpr std::size_t kN = 4000;
  static constexpr bool kImbalanced = true;
  static constexpr std::uint64_t kItersPerIndex = 150;
  [[gnu::noinline]] static std::uint64_t Task(std::size_t i) {
    return SpinSum(i, kItersPerIndex * i);
  }
  static bool Check(const std::uint64_t* out) {
    for (std::size_t i = 0; i < kN; ++i) {
      const std::uint64_t it = kItersPerIndex * i;
      const std::uint64_t tri =
          it == 0 ? 0
                  : (it % 2 == 0 ? (it / 2) * (it - 1) : it * ((it - 1) / 2));
      if (out[i] != i * tri) return false;
    }
    return true;
  }
};

// (e) a job of two tiny tasks: what one call costs.
struct Latency {
  static constexpr const char* kName = "latency_2";
  static constexpr std::size_t kN = 2;
  static constexpr bool kImbalanced = false;
  static std::uint64_t Task(std::size_t i) { return workloads::TinyTask(i); }
  static bool Check(const std::uint64_t* out) {
    return out[0] == Task(0) && out[1] == Task(1);
  }
};

}  // namespace fanout::bench

#endif  // FANOUT_BENCHMARKS_WORKLOADS_H_
