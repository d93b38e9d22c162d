// fanout/workloads/workloads.h — the reference workloads, shared by the CLI,
// the benchmarks and the backends' benchmarks so every number is computed the
// same way. A leaf: it depends on nothing in fanout, so anything may use it.
//
//   long long s = fanout::workloads::SumTask(7);   // sum of i*7, i < 100000
//   long long f = fanout::workloads::Fib(38);      // 39088169
//
// The reference `sum` program's task n is sum(i*n for i in range(100000)).
// g++ -O2 folds that loop into one multiply; an empty asm statement on the
// accumulator keeps the loop, so the work measured is the work described.
#ifndef FANOUT_WORKLOADS_WORKLOADS_H_
#define FANOUT_WORKLOADS_WORKLOADS_H_

#include <cstdint>

namespace fanout::workloads {

inline constexpr int kSumTasks = 10000;
inline constexpr long long kSumTerms = 100000;
inline constexpr long long kSumAnswer = 249972500250000000LL;
inline constexpr int kFibArgs[] = {38, 37, 36, 35, 34, 33};
inline constexpr long long kFibAnswers[] = {39088169, 24157817, 14930352,
                                            9227465,  5702887,  3524578};

// sum of i * n for i in [0, 100000), with the loop kept.
inline long long SumTask(long long n) {
  long long acc = 0;
  for (long long i = 0; i < kSumTerms; ++i) {
    acc += i * n;
    asm volatile("" : "+r"(acc));
  }
  return acc;
}

// Naive recursive Fibonacci, as in the reference Pool.map program.
inline long long Fib(int n) { return n < 2 ? n : Fib(n - 1) + Fib(n - 2); }

// About 50 ns of dependent arithmetic that the compiler cannot fold.
inline std::uint64_t TinyTask(std::uint64_t i) {
  std::uint64_t x = i;
  for (int k = 0; k < 40; ++k) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    asm volatile("" : "+r"(x));
  }
  return x;
}

}  // namespace fanout::workloads

#endif  // FANOUT_WORKLOADS_WORKLOADS_H_
