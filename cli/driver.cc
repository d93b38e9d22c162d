#include "cli/driver.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "cli/workloads.h"
#include "core/parallel.h"

namespace fanout::cli {
namespace {

constexpr const char* kWorkloads[] = {"fib", "noop", "sleep", "sum"};

long long ParseInt(const std::string& flag, const std::string& text,
                   const std::string& valid) {
  long long value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    throw UsageError("--" + flag + "='" + text + "' is not a number; valid: " + valid);
  }
  return value;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::atomic<bool> g_interrupted{false};
volatile std::sig_atomic_t g_signal = 0;

extern "C" void OnInterrupt(int sig) {
  g_signal = sig;
  g_interrupted.store(true);
  // A second Ctrl+C ends the program at once, as the default would.
  std::signal(sig, SIG_DFL);
}

[[noreturn]] void Fail(FailMode mode, std::size_t task) {
  switch (mode) {
    case FailMode::kThrow:
      throw std::runtime_error("injected failure in task " + std::to_string(task));
    case FailMode::kSegv:
      std::raise(SIGSEGV);
      break;
    case FailMode::kAbort:
      std::abort();
    case FailMode::kExit:
      _exit(3);
    case FailMode::kHang:
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    case FailMode::kNone:
      break;
  }
  std::abort();
}

std::string ToString(unsigned __int128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v > 0) {
    s.insert(s.begin(), char('0' + int(v % 10)));
    v /= 10;
  }
  return s;
}

// Runs the workload on `p` and returns its answer line.
std::string RunWorkload(Parallel& p, const Request& r) {
  auto maybe_fail = [&r](std::size_t i) {
    if (static_cast<long long>(i) == r.fail_task) Fail(r.fail_mode, i);
  };
  if (r.workload == "sum") {
    std::vector<long long> v = p.map(r.tasks, [&](std::size_t i) {
      maybe_fail(i);
      return workloads::SumTask(static_cast<long long>(i));
    });
    __int128 total = 0;
    for (long long x : v) total += x;
    return total < 0 ? "-" + ToString(-(unsigned __int128)total)
                     : ToString((unsigned __int128)total);
  }
  if (r.workload == "fib") {
    std::vector<long long> v = p.map(r.tasks, [&](std::size_t i) {
      maybe_fail(i);
      return workloads::Fib(workloads::kFibArgs[i % 6]);
    });
    std::string s;
    for (long long x : v) s += (s.empty() ? "" : " ") + std::to_string(x);
    return s;
  }
  if (r.workload == "sleep") {
    std::vector<int> v = p.map(r.tasks, [&](std::size_t i) {
      maybe_fail(i);
      std::this_thread::sleep_for(std::chrono::milliseconds(r.sleep_ms));
      return 1;
    });
    std::size_t done = 0;
    for (int x : v) done += x;
    return std::to_string(done);
  }
  // noop: overhead only; the answer is the sum of the task indices.
  std::vector<std::uint64_t> v = p.map(r.tasks, [&](std::size_t i) {
    maybe_fail(i);
    return std::uint64_t(i);
  });
  unsigned __int128 total = 0;
  for (std::uint64_t x : v) total += x;
  return ToString(total);
}

}  // namespace

std::vector<std::string> WorkloadNames() {
  return std::vector<std::string>(std::begin(kWorkloads), std::end(kWorkloads));
}

Request ParseRequest(const RawFlags& f) {
  Request r;
  r.backend = f.backend;
  {
    const auto names = backend_names();
    if (std::find(names.begin(), names.end(), f.backend) == names.end()) {
      // make_executor's message, with its "did you mean".
      make_executor(f.backend, {.jobs = 1});
    }
  }
  const std::string jobs_valid =
      "-1 for every usable CPU (" + std::to_string(usable_cpus()) +
      " here), -2 for all but one, or a positive count";
  r.jobs = static_cast<int>(ParseInt("jobs", f.jobs, jobs_valid));
  if (r.jobs == 0) throw UsageError("--jobs=0 is invalid; valid: " + jobs_valid);

  r.workload = f.workload;
  const auto workloads = WorkloadNames();
  if (std::find(workloads.begin(), workloads.end(), f.workload) == workloads.end()) {
    throw UsageError("unknown workload '" + f.workload +
                     "'; valid workloads: " + Join(workloads));
  }
  if (f.tasks.empty()) {
    r.tasks = r.workload == "sum"     ? workloads::kSumTasks
              : r.workload == "fib"   ? 6
              : r.workload == "sleep" ? 100
                                      : 1000000;
  } else {
    long long t = ParseInt("tasks", f.tasks, "a count >= 0");
    if (t < 0) throw UsageError("--tasks=" + f.tasks + " is invalid; valid: a count >= 0");
    r.tasks = static_cast<std::size_t>(t);
  }
  long long sleep_ms = ParseInt("sleep-ms", f.sleep_ms, "milliseconds >= 0");
  if (sleep_ms < 0) throw UsageError("--sleep-ms=" + f.sleep_ms + " is invalid; valid: milliseconds >= 0");
  r.sleep_ms = static_cast<int>(sleep_ms);
  long long batch = ParseInt("batch-size", f.batch_size, "a count >= 1, or 0 for auto");
  if (batch < 0) throw UsageError("--batch-size=" + f.batch_size + " is invalid; valid: a count >= 1, or 0 for auto");
  r.batch_size = static_cast<std::size_t>(batch);
  long long timeout = ParseInt("timeout-ms", f.timeout_ms, "milliseconds > 0, or 0 for none");
  if (timeout < 0) throw UsageError("--timeout-ms=" + f.timeout_ms + " is invalid; valid: milliseconds > 0, or 0 for none");
  r.timeout = std::chrono::milliseconds(timeout);
  if (f.verbose < 0) throw UsageError("--verbose=" + std::to_string(f.verbose) + " is invalid; valid: 0 (none) to 50 (every event)");
  r.verbose = f.verbose;
  r.speedup = f.speedup;

  if (!f.fail_task.empty()) {
    r.fail_task = ParseInt("fail-task", f.fail_task, "a task index");
    if (r.fail_task < 0 || static_cast<std::size_t>(r.fail_task) >= r.tasks) {
      throw UsageError("--fail-task=" + f.fail_task + " is not a task of this run; valid: 0 to " +
                       std::to_string(static_cast<long long>(r.tasks) - 1));
    }
    static const std::pair<const char*, FailMode> kModes[] = {
        {"throw", FailMode::kThrow}, {"segv", FailMode::kSegv},
        {"abort", FailMode::kAbort}, {"exit", FailMode::kExit},
        {"hang", FailMode::kHang}};
    r.fail_mode = FailMode::kNone;
    for (const auto& [name, mode] : kModes) {
      if (f.fail_mode == name) r.fail_mode = mode;
    }
    if (r.fail_mode == FailMode::kNone) {
      throw UsageError("unknown --fail-mode '" + f.fail_mode +
                       "'; valid: throw, segv, abort, exit, hang");
    }
  }
  return r;
}

void ListBackends(std::FILE* out) {
  for (const std::string& name : backend_names()) {
    std::fprintf(out, "%-12s %s\n", name.c_str(), backend_description(name).c_str());
  }
}

int Run(const Request& r, std::FILE* out, std::FILE* err) {
  g_interrupted = false;
  struct sigaction sa = {}, old_int = {}, old_term = {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  struct Restore {
    struct sigaction i, t;
    ~Restore() {
      sigaction(SIGINT, &i, nullptr);
      sigaction(SIGTERM, &t, nullptr);
    }
  } restore{old_int, old_term};

  try {
    Parallel p({.jobs = r.jobs,
                .backend = r.backend,
                .verbose = r.verbose,
                .batch_size = r.batch_size,
                .timeout = r.timeout,
                .cancel = &g_interrupted});
    const bool primary = p.executor().is_primary();
    const auto start = std::chrono::steady_clock::now();
    const std::string answer = RunWorkload(p, r);
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (primary) {
      std::fprintf(out, "%s\n", answer.c_str());
      std::fprintf(out, "backend: %s\njobs: %d\ntasks: %zu\nwall: %.3f s\n",
                   r.backend.c_str(), p.jobs(), r.tasks, wall);
      std::fflush(out);
    }
    if (r.speedup) {
      Parallel seq({.backend = "sequential", .cancel = &g_interrupted});
      Request plain = r;
      plain.fail_task = -1;
      const auto s0 = std::chrono::steady_clock::now();
      const std::string seq_answer = RunWorkload(seq, plain);
      const double seq_wall =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
      if (primary) {
        std::fprintf(out, "sequential: %.3f s\nspeedup: %.2fx\n", seq_wall,
                     wall > 0 ? seq_wall / wall : 0.0);
        std::fflush(out);
      }
      if (seq_answer != answer) {
        std::fprintf(err, "run: error: the answers differ: %s gave %s, sequential gave %s\n",
                     r.backend.c_str(), answer.c_str(), seq_answer.c_str());
        return 1;
      }
    }
    return 0;
  } catch (const InterruptedError& e) {
    std::fprintf(err, "run: interrupted: %s\n", e.what());
    return 130;
  } catch (const TaskError& e) {
    std::fprintf(err, "run: error: %s\n", e.what());
    return 1;
  } catch (const TimeoutError& e) {
    std::fprintf(err, "run: error: %s\n", e.what());
    return 1;
  } catch (const UsageError& e) {
    std::fprintf(err, "run: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(err, "run: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace fanout::cli
