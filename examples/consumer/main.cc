// A program in another Bazel workspace using fanout's public API: the
// reference joblib sum, written both ways, on the thread backend.
#include <cstdio>
#include <vector>

#include "core/parallel.h"

long long process(long long n) {
  long long s = 0;
  for (long long i = 0; i < 100000; ++i) {
    s += i * n;
    asm volatile("" : "+r"(s));  // keep the loop: g++ folds it otherwise
  }
  return s;
}

int main() {
  fanout::Parallel parallel({.jobs = -1, .backend = "thread"});
  long long total = 0;
  for (long long v : parallel.map(10000, process)) total += v;

  std::vector<fanout::Task<long long>> tasks;
  for (int i = 0; i < 10000; ++i) tasks.push_back(fanout::delayed(process)(i));
  long long total2 = 0;
  for (long long v : parallel(tasks)) total2 += v;

  std::printf("%lld\n%lld\n", total, total2);
  return total == 249972500250000000LL && total2 == total ? 0 : 1;
}
