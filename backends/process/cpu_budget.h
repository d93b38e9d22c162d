// One CPU budget for a call's workers, as joblib's loky backend does: each
// forked worker may run native code that starts its own threads (OpenMP,
// OpenBLAS, MKL, BLIS), and `jobs` workers each starting a thread per CPU
// would run jobs x CPUs threads on CPUs cores. So each worker starts with
// its share, max(1, usable_cpus() / jobs), in OMP_NUM_THREADS,
// OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, BLIS_NUM_THREADS,
// VECLIB_MAXIMUM_THREADS and NUMEXPR_NUM_THREADS, unless the caller's
// environment sets that variable already (the user's choice wins).
//
// Workers are forked, not exec'd: a runtime the caller has loaded read its
// variable when it loaded and ignores it now. So the worker also calls the
// runtime's own setter (omp_set_num_threads, openblas_set_num_threads,
// MKL_Set_Num_Threads, bli_thread_set_num_threads) when the program has it
// loaded. oneTBB reads no environment variable for its thread count (only
// tbb::global_control or a task_arena limit it), so a worker's TBB code
// still sees every CPU. A fanout call made inside a task (fanout::in_task())
// on backend thread runs on at most the worker's share of threads
// (internal::worker_cpu_share(), set here); on any other backend it runs
// inline on its worker, so nested fanout calls do not multiply workers.
//
// Everything is worked out in the caller before fork (no allocation, no
// dlsym after it); the worker only swaps in the prepared environment and
// calls the setters:
//
//   const CpuBudget budget(options.jobs);  // caller, around the forks
//   ...
//   ApplyCpuBudget();                      // worker, first thing
//
// IWYU pragma: private
#ifndef FANOUT_BACKENDS_PROCESS_CPU_BUDGET_H_
#define FANOUT_BACKENDS_PROCESS_CPU_BUDGET_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fanout::process_internal {

// The variables, in the order CpuBudget keeps them.
inline constexpr const char* kThreadVariables[] = {
    "OMP_NUM_THREADS",  "OPENBLAS_NUM_THREADS",   "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"};
inline constexpr std::size_t kThreadVariableCount =
    sizeof(kThreadVariables) / sizeof(kThreadVariables[0]);

// The budget of the workers forked by the thread that made it, while it
// lives. Make it on the calling thread, before the call's forks, and keep
// it until they are done (a worker forked later, to replace one, gets it
// too).
class CpuBudget {
 public:
  explicit CpuBudget(int jobs);
  ~CpuBudget();
  CpuBudget(const CpuBudget&) = delete;
  CpuBudget& operator=(const CpuBudget&) = delete;

  // Each worker's share of the usable CPUs.
  int threads() const { return threads_; }

 private:
  friend void ApplyCpuBudget();

  int threads_;
  // The caller's environment plus "NAME=threads" for each variable it does
  // not set, null-terminated: the worker's environ.
  std::vector<char*> environ_;
  char entries_[kThreadVariableCount][48] = {};
  // The loaded runtimes' setters for the variables the caller does not set.
  std::vector<void (*)(int)> int_setters_;
  std::vector<void (*)(std::int64_t)> int64_setters_;  // BLIS's dim_t
  const CpuBudget* previous_;
};

// In a forked worker, first thing: the budget of the thread that forked it
// (its thread-local copy came along), if that thread had one. Allocates
// nothing.
void ApplyCpuBudget();

}  // namespace fanout::process_internal

#endif  // FANOUT_BACKENDS_PROCESS_CPU_BUDGET_H_
