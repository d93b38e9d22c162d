#include "backends/process/cpu_budget.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/executor.h"

extern char** environ;

namespace fanout::process_internal {
namespace {

// The setters of a variable's runtime, by exported symbol name. Taking the
// count by value as an int, except BLIS's (dim_t, 64 bits by default).
struct Setters {
  const char* int_setters[2];
  const char* int64_setter;
};

// In kThreadVariables' order.
constexpr Setters kSetters[kThreadVariableCount] = {
    // libgomp, LLVM's libomp and Intel's libiomp5 all export it.
    {{"omp_set_num_threads", nullptr}, nullptr},
    // OpenBLAS, and its 64-bit-integer builds (scipy-openblas64).
    {{"openblas_set_num_threads", "openblas_set_num_threads64_"}, nullptr},
    // MKL's C entry point (mkl_set_num_threads is a macro for it).
    {{"MKL_Set_Num_Threads", nullptr}, nullptr},
    {{nullptr, nullptr}, "bli_thread_set_num_threads"},
    // Apple's Accelerate reads VECLIB_MAXIMUM_THREADS when it loads and
    // Python's numexpr NUMEXPR_NUM_THREADS when imported: the variable is
    // all there is.
    {{nullptr, nullptr}, nullptr},
    {{nullptr, nullptr}, nullptr},
};

// The budget the calling thread's forks get. A forked child is a copy of
// the thread that called fork(), thread-locals included: the worker reads
// the pointer its caller set, and the budget it points to is in the
// worker's copy of the caller's memory.
thread_local const CpuBudget* t_budget = nullptr;

}  // namespace

CpuBudget::CpuBudget(int jobs)
    : threads_(std::max(1, usable_cpus() / std::max(jobs, 1))),
      previous_(t_budget) {
  std::size_t added = 0;
  for (std::size_t v = 0; v < kThreadVariableCount; ++v) {
    if (std::getenv(kThreadVariables[v]) != nullptr) continue;  // the user's
    std::snprintf(entries_[added++], sizeof(entries_[0]), "%s=%d",
                  kThreadVariables[v], threads_);
    for (const char* name : kSetters[v].int_setters) {
      if (name == nullptr) continue;
      if (void* f = dlsym(RTLD_DEFAULT, name)) {
        int_setters_.push_back(reinterpret_cast<void (*)(int)>(f));
      }
    }
    if (kSetters[v].int64_setter != nullptr) {
      if (void* f = dlsym(RTLD_DEFAULT, kSetters[v].int64_setter)) {
        int64_setters_.push_back(reinterpret_cast<void (*)(std::int64_t)>(f));
      }
    }
  }
  if (added != 0) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      environ_.push_back(*e);
    }
    for (std::size_t k = 0; k < added; ++k) environ_.push_back(entries_[k]);
    environ_.push_back(nullptr);
  }
  t_budget = this;
}

CpuBudget::~CpuBudget() { t_budget = previous_; }

void ApplyCpuBudget() {
  const CpuBudget* budget = t_budget;
  if (budget == nullptr) return;
  internal::set_worker_cpu_share(budget->threads_);
  // Nothing to do when the user set every variable. Otherwise the prepared
  // array becomes the environment (setenv would allocate); a later
  // setenv() in a task copies it into one of its own, as it does with any
  // environ a program assigns.
  if (!budget->environ_.empty()) {
    environ = const_cast<char**>(budget->environ_.data());
  }
  for (auto set : budget->int_setters_) set(budget->threads_);
  for (auto set : budget->int64_setters_) set(budget->threads_);
}

}  // namespace fanout::process_internal
