// Mirrors multiprocessing.Pool.map over a naive recursive fib (Python):
//
//   from multiprocessing import Pool
//
//   def fib(n):
//       return n if n < 2 else fib(n - 1) + fib(n - 2)
//
//   with Pool() as pool:
//       print(*pool.map(fib, [38, 37, 36, 35, 34, 33]))
//   # 39088169 24157817 14930352 9227465 5702887 3524578
//
// The tasks are imbalanced (fib(38) costs 1.6x fib(37)); fanout hands them out
// one at a time as workers free up, and the results come back in input order.
//
// Run: ./bazelw run //examples/pool_map_fib [-- BACKEND]   (default: process)
#include <cstdio>
#include <string>
#include <vector>

#include "core/parallel.h"

namespace {

long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

}  // namespace

int main(int argc, char** argv) {
  const std::string backend = argc > 1 ? argv[1] : "process";
  try {
    fanout::Parallel pool({.jobs = -1, .backend = backend, .batch_size = 1});
    const std::vector<int> inputs = {38, 37, 36, 35, 34, 33};
    const std::vector<long> results = pool.map(inputs, fib);
    for (std::size_t i = 0; i < results.size(); ++i) {
      std::printf(i == 0 ? "%ld" : " %ld", results[i]);
    }
    std::printf("\n");
  } catch (const fanout::Error& e) {
    std::fprintf(stderr, "pool_map_fib: %s\n", e.what());
    return 1;
  }
  return 0;
}
