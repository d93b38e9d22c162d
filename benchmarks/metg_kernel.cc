#include "benchmarks/metg_kernel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace fanout::metg {

[[gnu::noinline, gnu::aligned(64)]] std::uint64_t Spin(std::uint64_t iterations,
                                                       std::uint64_t seed) {
  // No step of this task starts before the previous task's last one has
  // finished: without the fence the core overlaps the dependent chains of
  // consecutive short tasks (a 64 ns task ran in 33 ns, back to back).
  asm volatile("lfence" ::: "memory");
  std::uint64_t x = seed;
  for (std::uint64_t k = 0; k < iterations; ++k) {
    x = x * kMul + kAdd;
    asm volatile("" : "+r"(x));
  }
  return x;
}

namespace {

// The fastest of `runs` timings of Spin(iterations), in nanoseconds.
double FastestNs(std::uint64_t iterations, int runs) {
  double best = 1e300;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t got = Spin(iterations, static_cast<std::uint64_t>(r));
    const auto t1 = std::chrono::steady_clock::now();
    if (got != Answer(iterations, static_cast<std::uint64_t>(r))) {
      std::fprintf(stderr, "metg: Spin gave a wrong answer\n");
      std::exit(1);
    }
    best = std::min(best,
                    std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  return best;
}

}  // namespace

double NsPerIteration() {
  // Runs of ~2 ms and ~0.3 ms, the fastest of many: on a busy machine a
  // run shorter than the scheduler's time slice is the one that gets
  // through without being preempted.
  constexpr std::uint64_t kLong = std::uint64_t{1} << 21;
  FastestNs(kLong, 3);  // wake the core up
  const double long_ns = FastestNs(kLong, 15);
  const double short_ns = FastestNs(kLong / 8, 15);
  // A loop the compiler kept takes 8x as long for 8x the steps.
  const double ratio = long_ns / short_ns;
  if (!(ratio > 4 && ratio < 16)) {
    std::fprintf(stderr,
                 "metg: Spin(%llu) took %.0f ns and Spin(%llu) %.0f ns: the "
                 "loop's time does not grow with its steps (folded?)\n",
                 static_cast<unsigned long long>(kLong), long_ns,
                 static_cast<unsigned long long>(kLong / 8), short_ns);
    std::exit(1);
  }
  return long_ns / static_cast<double>(kLong);
}

std::uint64_t Iterations(double ns, double ns_per_iteration) {
  return std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::llround(ns / ns_per_iteration)));
}

}  // namespace fanout::metg

// The C entry points Python's ctypes calls (benchmarks/metg_peers.py).
extern "C" {
std::uint64_t fanout_metg_spin(std::uint64_t iterations, std::uint64_t seed) {
  return fanout::metg::Spin(iterations, seed);
}
double fanout_metg_ns_per_iteration() { return fanout::metg::NsPerIteration(); }
}
