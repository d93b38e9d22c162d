// fanout/benchmarks/metg_kernel.h — the busy work of the METG benchmark: a
// task of about 2^k ns that the compiler cannot fold, the same machine code
// for every runner (C++ and, through libmetg_kernel.so and ctypes, Python).
//
//   const double ns = metg::NsPerIteration();        // calibrated once
//   const std::uint64_t iters = metg::Iterations(1 << 10, ns);  // ~1 µs
//   std::uint64_t r = metg::Spin(iters, i);          // task i's work
//   bool ok = r == metg::Answer(iters, i);           // checked in O(log n)
//
// Spin runs `iterations` steps of a 64-bit linear congruential generator
// (Knuth's MMIX constants, as workloads::TinyTask) from `seed`; each step
// depends on the one before and an empty asm statement keeps every step, so
// the time is proportional to `iterations` and clock-free: a task preempted
// by another process takes longer, as real work would, instead of finishing
// on time as a spin on the clock would. The answer has a closed form (n steps
// of x -> a*x + c are one affine map), so checking a task costs nothing like
// running it.
#ifndef FANOUT_BENCHMARKS_METG_KERNEL_H_
#define FANOUT_BENCHMARKS_METG_KERNEL_H_

#include <cstdint>

namespace fanout::metg {

inline constexpr std::uint64_t kMul = 6364136223846793005ULL;
inline constexpr std::uint64_t kAdd = 1442695040888963407ULL;

// `iterations` dependent steps from `seed`. Out of line and 64-byte aligned,
// so every runner (and the shared library Python loads) runs the very same
// loop: benchmarks/workloads.h saw an inlined copy run at half speed when its
// loop straddled a fetch block.
std::uint64_t Spin(std::uint64_t iterations, std::uint64_t seed);

// What Spin(iterations, seed) returns, without running it.
constexpr std::uint64_t Answer(std::uint64_t iterations, std::uint64_t seed) {
  // (mul, add): x -> mul * x + add, squared while the bits of n are read.
  std::uint64_t mul = 1, add = 0;  // the identity
  std::uint64_t step_mul = kMul, step_add = kAdd;
  for (std::uint64_t n = iterations; n != 0; n >>= 1) {
    if ((n & 1) != 0) {
      mul = step_mul * mul;
      add = step_mul * add + step_add;
    }
    step_add = step_mul * step_add + step_add;
    step_mul = step_mul * step_mul;
  }
  return mul * seed + add;
}

// Nanoseconds one step of Spin takes on this machine: the fastest of several
// timed runs of about 2 ms each, on the calling thread. Exits the
// program (status 1, saying why) if the time does not grow with the number of
// steps, i.e. the compiler folded the loop.
double NsPerIteration();

// The steps of a task of about `ns` nanoseconds (at least 1).
std::uint64_t Iterations(double ns, double ns_per_iteration);

}  // namespace fanout::metg

#endif  // FANOUT_BENCHMARKS_METG_KERNEL_H_
