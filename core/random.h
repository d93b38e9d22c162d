// fanout/core/random.h — reproducible random numbers per task.
//
//   double x = std::uniform_real_distribution<double>(0, 1)(
//       fanout::task_rng(seed, i));            // or keep the generator:
//   fanout::TaskRng rng = fanout::task_rng(seed, i);
//   for (int k = 0; k < 1000; ++k) sample(rng());
//
// task_rng(seed, index) gives task `index` its own stream of 64-bit numbers,
// a function of (seed, index) alone: the same on every backend, jobs count
// and scheduling order, in a forked worker or on another MPI rank. Two tasks'
// streams do not overlap in practice: each is SplitMix64 (Steele, Lea and
// Flood, "Fast splittable pseudorandom number generators", 2014) started at
// a state derived from the seed and the index by two rounds of its mixing
// function. Not for cryptography.
#ifndef FANOUT_CORE_RANDOM_H_
#define FANOUT_CORE_RANDOM_H_

#include <cstdint>
#include <limits>

namespace fanout {

// A UniformRandomBitGenerator: works with every <random> distribution.
class TaskRng {
 public:
  using result_type = std::uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() {
    return std::numeric_limits<result_type>::max();
  }

  explicit TaskRng(std::uint64_t state) : state_(state) {}

  result_type operator()() {
    state_ += kGamma;
    return Mix(state_);
  }

  // SplitMix64's output function (the finalizer of MurmurHash3, variant 13).
  static constexpr std::uint64_t Mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  static constexpr std::uint64_t kGamma = 0x9e3779b97f4a7c15ULL;

 private:
  std::uint64_t state_;
};

// The generator of task `index` of a job seeded with `seed`.
inline TaskRng task_rng(std::uint64_t seed, std::uint64_t index) {
  return TaskRng(TaskRng::Mix(
      TaskRng::Mix(seed) ^ (index * TaskRng::kGamma + 0x632be59bd9b4e019ULL)));
}

}  // namespace fanout

#endif  // FANOUT_CORE_RANDOM_H_
