// Mirrors the joblib reference program with shared state (Python):
//
//   from multiprocessing import Value, Array
//   shared_int = Value('i', 1)
//   shared_arr = Array('d', [0.0, 0.0, 0.0])
//
//   def process(n):
//       with shared_int.get_lock():
//           shared_int.value += 1
//       with shared_arr.get_lock():
//           shared_arr[n % 3] += 0.5
//       return sum([i * n for i in range(100000)])
//
//   result = Parallel(n_jobs=2)(delayed(process)(i) for i in range(10000))
//   print(shared_int.value, list(shared_arr), sum(result))
//
// The tasks write a SharedValue<int> and a SharedArray<double>; the caller
// reads them after the call. On the process backend (the default) every task
// runs in a forked worker, so the caller sees the writes only because the
// memory really is shared: the program also counts the tasks that ran in a
// process other than its own.
//
// Run: ./bazelw run //examples/shared_value [-- BACKEND]   (default: process)
#include <unistd.h>

#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/shared.h"

int main(int argc, char** argv) {
  const std::string backend = argc > 1 ? argv[1] : "process";
  try {
    fanout::SharedValue<int> shared_int(1);                 // Value('i', 1)
    fanout::SharedArray<double> shared_arr{0.0, 0.0, 0.0};  // Array('d', ...)
    fanout::SharedValue<int> in_other_process(0);
    const pid_t caller = getpid();

    std::vector<long long> result =
        fanout::Parallel({.jobs = 2, .backend = backend})
            .map(10000, [&](std::size_t task) {
              const long long n = static_cast<long long>(task);
              shared_int.fetch_add(1);  // atomic: no lock needed
              {
                auto g = shared_arr.lock();  // a compound update under the lock
                g[task % 3] += 0.5;
              }
              if (getpid() != caller) in_other_process.fetch_add(1);
              long long acc = 0;
              for (long long i = 0; i < 100000; ++i) {
                acc += i * n;
                asm volatile("" : "+r"(acc));  // keep the loop
              }
              return acc;
            });

    const std::vector<double> arr = shared_arr.to_vector();
    std::printf("backend: %s\n", backend.c_str());
    std::printf("shared_int: %d\n", shared_int.load());
    std::printf("shared_arr: [%.1f, %.1f, %.1f]\n", arr[0], arr[1], arr[2]);
    std::printf("sum: %lld\n",
                std::accumulate(result.begin(), result.end(), 0LL));
    std::printf("tasks run outside the caller's process: %d of 10000\n",
                in_other_process.load());
  } catch (const fanout::Error& e) {
    std::fprintf(stderr, "shared_value: %s\n", e.what());
    return 1;
  }
  return 0;
}
