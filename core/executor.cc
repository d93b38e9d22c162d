#include "core/executor.h"

#include <cxxabi.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <typeinfo>
#include <utility>

namespace fanout {
namespace {

struct Registration {
  std::string description;
  ExecutorFactory factory;
};

// Function-local static: registrations run from other translation units'
// static initializers, in an order nobody controls.
std::map<std::string, Registration, std::less<>>& Registry() {
  static auto* registry = new std::map<std::string, Registration, std::less<>>;
  return *registry;
}

std::mutex& RegistryMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}

thread_local bool t_in_task = false;

std::string Demangle(const char* mangled) {
  int status = 0;
  char* s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = (status == 0 && s != nullptr) ? s : mangled;
  std::free(s);
  return out;
}

// The cgroup CPU quota as a CPU count, or 0 when there is none.
int CgroupCpuLimit() {
  {  // cgroup v2: "max 100000" or "150000 100000"
    std::ifstream f("/sys/fs/cgroup/cpu.max");
    std::string quota;
    long period = 0;
    if (f >> quota >> period && quota != "max" && period > 0) {
      long q = std::atol(quota.c_str());
      if (q > 0) return static_cast<int>(std::ceil(double(q) / double(period)));
    }
  }
  {  // cgroup v1
    std::ifstream fq("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    std::ifstream fp("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    long q = -1, p = 0;
    if (fq >> q && fp >> p && q > 0 && p > 0) {
      return static_cast<int>(std::ceil(double(q) / double(p)));
    }
  }
  return 0;
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] =
          std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

bool register_backend(std::string name, std::string description,
                      ExecutorFactory factory) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry()[std::move(name)] =
      Registration{std::move(description), std::move(factory)};
  return true;
}

std::vector<std::string> backend_names() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::vector<std::string> names;
  for (const auto& [name, reg] : Registry()) names.push_back(name);
  return names;
}

std::string backend_description(std::string_view name) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto it = Registry().find(name);
  return it == Registry().end() ? "" : it->second.description;
}

std::unique_ptr<Executor> make_executor(std::string_view name,
                                        const ExecutorOptions& options) {
  ExecutorFactory factory;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto it = Registry().find(name);
    if (it != Registry().end()) factory = it->second.factory;
  }
  if (!factory) {
    std::string valid;
    for (const std::string& n : backend_names()) {
      valid += (valid.empty() ? "" : ", ") + n;
    }
    if (valid.empty()) valid = "(none linked: depend on @fanout//backends/...)";
    std::string hint;
    // Two typos in a longer name, one in a short one ("gpu" is not "mpi").
    const std::size_t allowed = name.size() <= 4 ? 1 : 2;
    for (const std::string& n : backend_names()) {
      if (EditDistance(name, n) <= allowed)
        hint = " (did you mean '" + n + "'?)";
    }
    throw UsageError("unknown backend '" + std::string(name) + "'" + hint +
                     "; valid backends: " + valid);
  }
  ExecutorOptions resolved = options;
  resolved.jobs = resolve_jobs(options.jobs);
  return factory(resolved);
}

int usable_cpus() {
  static const int cpus = [] {
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    int quota = CgroupCpuLimit();
    if (quota > 0) n = std::min(n, quota);
    return std::max(n, 1);
  }();
  return cpus;
}

int resolve_jobs(int jobs) {
  if (jobs == 0) {
    throw UsageError(
        "jobs must not be 0; valid: a positive count, or -1 for every usable "
        "CPU (" +
        std::to_string(usable_cpus()) + " here), -2 for all but one, ...");
  }
  if (jobs > 0) return jobs;
  return std::max(usable_cpus() + 1 + jobs, 1);
}

std::size_t auto_batch_size(std::size_t n, int jobs) {
  // About 32 chunks per worker keeps imbalance low (dynamic scheduling) while
  // a chunk of up to 2048 tiny tasks makes the shared counter's cost vanish.
  std::size_t per = n / (static_cast<std::size_t>(std::max(jobs, 1)) * 32);
  return std::clamp<std::size_t>(per, 1, 2048);
}

bool in_task() { return t_in_task; }

namespace internal {

InTaskScope::InTaskScope() : previous_(t_in_task) { t_in_task = true; }
InTaskScope::~InTaskScope() { t_in_task = previous_; }

TaskFailure describe_current_exception() {
  TaskFailure f;
  f.exception = std::current_exception();
  try {
    throw;
  } catch (const std::exception& e) {
    f.type = Demangle(typeid(e).name());
    f.message = e.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    f.type = t != nullptr ? Demangle(t->name()) : "unknown exception";
    f.message = "(not a std::exception)";
  }
  return f;
}

TaskError task_error(std::size_t index, std::string_view backend,
                     std::string worker, TaskFailure&& failure) {
  return TaskError(TaskError::Details{
      index, std::string(backend), std::move(worker), std::move(failure.type),
      std::move(failure.message), 0, -1, std::move(failure.exception)});
}

RunReport run_inline(std::string_view backend, const Job& job,
                     const RunOptions& options, std::string_view worker) {
  RunReport report;
  InTaskScope scope;
  const std::size_t batch =
      options.batch_size ? options.batch_size : auto_batch_size(job.n, 1);
  std::size_t next = 0;
  while (next < job.n) {
    if (options.cancel != nullptr &&
        options.cancel->load(std::memory_order_relaxed)) {
      report.cancelled = true;
      break;
    }
    const std::size_t end = std::min(job.n, next + batch);
    TaskFailure failure;
    std::size_t done = job.run_range(job.ctx, next, end, &failure);
    if (options.progress != nullptr) {
      options.progress->fetch_add(done, std::memory_order_relaxed);
    }
    if (next + done == end) {
      next = end;
      continue;
    }
    std::size_t failed = next + done;
    report.failures.push_back(
        task_error(failed, backend, std::string(worker), std::move(failure)));
    if (options.progress != nullptr) {
      options.progress->fetch_add(1, std::memory_order_relaxed);
    }
    if (options.errors == ErrorPolicy::kFailFast) break;
    next = failed + 1;
  }
  return report;
}

namespace {
constexpr int kMaxExitHooks = 16;
std::atomic<void (*)()> g_exit_hooks[kMaxExitHooks];
}  // namespace

void AddExitHook(void (*hook)()) {
  for (auto& slot : g_exit_hooks) {
    void (*seen)() = slot.load();
    if (seen == hook) return;
    if (seen == nullptr) {
      if (slot.compare_exchange_strong(seen, hook)) {
        if (&slot == &g_exit_hooks[0]) std::atexit(&RunExitHooks);
        return;
      }
      if (seen == hook) return;
    }
  }
  throw Error("fanout: too many exit hooks (at most 16)");
}

void RunExitHooks() {
  for (auto& slot : g_exit_hooks) {
    if (void (*hook)() = slot.load()) hook();
  }
}

}  // namespace internal
}  // namespace fanout
