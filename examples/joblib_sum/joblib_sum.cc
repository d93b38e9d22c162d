// Mirrors the joblib reference program (Python):
//
//   from joblib import Parallel, delayed
//
//   def process(n):
//       return sum([i * n for i in range(100000)])
//
//   result = Parallel(n_jobs=-1, verbose=10)(
//       delayed(process)(i) for i in range(10000))
//   print(sum(result))        # 249972500250000000
//
// Run: ./bazelw run //examples/joblib_sum [-- BACKEND]   (default: thread)
// The answer goes to stdout; joblib's verbose progress lines go to stderr.
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "core/parallel.h"

namespace {

long long process(long long n) {
  long long acc = 0;
  for (long long i = 0; i < 100000; ++i) {
    acc += i * n;
    // Without this barrier g++ -O2 folds the loop into one multiply.
    asm volatile("" : "+r"(acc));
  }
  return acc;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string backend = argc > 1 ? argv[1] : "thread";
  try {
    std::vector<fanout::Task<long long>> tasks;
    tasks.reserve(10000);
    for (long long i = 0; i < 10000; ++i) {
      tasks.push_back(fanout::delayed(process)(i));
    }
    std::vector<long long> result = fanout::Parallel(
        {.jobs = -1, .backend = backend, .verbose = 10})(tasks);
    std::printf("%lld\n", std::accumulate(result.begin(), result.end(), 0LL));
  } catch (const fanout::Error& e) {
    std::fprintf(stderr, "joblib_sum: %s\n", e.what());
    return 1;
  }
  return 0;
}
