#include "cli/run_workload.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli/faults.h"
#include "core/random.h"
#include "workloads/workloads.h"

namespace fanout::cli {
namespace {

// The result type of each workload's task.
using SumResult = long long;
using FibResult = long long;
using SleepResult = int;
using NoopResult = std::uint64_t;
using PiResult = std::uint32_t;
constexpr int kPiPoints = 100000;

// Under --errors=collect: every task's outcome (try_map), a failed task's
// result left at R{} (which adds nothing to any answer) and its error put
// in `failures`, by task index.
template <class R, class Task>
std::vector<R> Collected(Parallel& p, const Request& r, Task task,
                         std::vector<TaskError>* failures) {
  std::vector<R> v;
  v.reserve(r.tasks);
  for (auto& outcome : p.try_map(r.tasks, task)) {
    if (outcome.ok()) {
      v.push_back(std::move(outcome).value());
    } else {
      v.push_back(R{});
      failures->push_back(outcome.error());
    }
  }
  return v;
}

std::size_t Index(std::size_t i) { return i; }
std::size_t Index(const TaskError& e) { return e.index(); }

// Whether task `i` is among `failures` (sorted by index).
bool FailedTask(const std::vector<TaskError>& failures, std::size_t i) {
  return std::binary_search(
      failures.begin(), failures.end(), i,
      [](const auto& a, const auto& b) { return Index(a) < Index(b); });
}

// The results of every task: map(), or with --stream imap / imap_unordered,
// each result printed on stdout as it comes (by the primary rank only),
// then gathered in task order for the answer line; or, under
// --errors=collect, Collected().
template <class R, class Task>
std::vector<R> Results(Parallel& p, const Request& r, Task task,
                       std::vector<TaskError>* failures) {
  if (r.collect_errors) return Collected<R>(p, r, task, failures);
  if (r.stream.empty()) return p.map(r.tasks, task);
  const bool print = p.executor().is_primary();
  std::vector<R> v(r.tasks);
  if (r.stream == "ordered") {
    std::size_t i = 0;
    for (R x : p.imap(r.tasks, task)) {
      if (print) std::printf("%s\n", std::to_string(x).c_str());
      v[i++] = x;
    }
  } else {
    for (auto& [i, x] : p.imap_unordered(r.tasks, task)) {
      if (print) std::printf("%zu %s\n", i, std::to_string(x).c_str());
      v[i] = x;
    }
  }
  std::fflush(stdout);
  return v;
}

}  // namespace

std::string ToDecimal(unsigned __int128 v) {
  std::string s = v == 0 ? "0" : "";
  for (; v > 0; v /= 10) s.insert(s.begin(), static_cast<char>('0' + v % 10));
  return s;
}

std::string CheckpointKey(const Request& r) {
  std::string key =
      "run --workload=" + r.workload + " --tasks=" + std::to_string(r.tasks);
  if (r.workload == "pi") key += " --seed=" + std::to_string(r.seed);
  return key;
}

std::size_t ResultBytes(const std::string& workload) {
  if (workload == "sum") return sizeof(SumResult);
  if (workload == "fib") return sizeof(FibResult);
  if (workload == "sleep") return sizeof(SleepResult);
  if (workload == "pi") return sizeof(PiResult);
  return sizeof(NoopResult);
}

std::string RunWorkload(Parallel& p, const Request& r,
                        std::vector<TaskError>* failures) {
  std::vector<TaskError> own;
  std::vector<TaskError>& failed = failures != nullptr ? *failures : own;
  failed.clear();
  const FaultInjector inject(r.fail_task, r.fail_mode, r.fail_attempts);
  auto maybe_fail = [&inject](std::size_t i) { inject.MaybeFail(i); };
  std::string answer;
  if (r.workload == "sum") {
    const auto task = [&](std::size_t i) {
      maybe_fail(i);
      return workloads::SumTask(static_cast<long long>(i));
    };
    __int128 total = 0;
    if (r.reduce) {
      total = p.map_reduce(r.tasks, task, __int128{0},
                           [](__int128 acc, SumResult x) { return acc + x; });
    } else {
      for (SumResult x : Results<SumResult>(p, r, task, &failed)) total += x;
    }
    answer = total < 0 ? "-" + ToDecimal(-static_cast<unsigned __int128>(total))
                       : ToDecimal(static_cast<unsigned __int128>(total));
  } else if (r.workload == "fib") {
    std::vector<FibResult> v = Results<FibResult>(
        p, r,
        [&](std::size_t i) {
          maybe_fail(i);
          return workloads::Fib(workloads::kFibArgs[i % 6]);
        },
        &failed);
    for (std::size_t i = 0; i < v.size(); ++i) {
      answer += (i == 0 ? "" : " ") +
                (FailedTask(failed, i) ? "-" : std::to_string(v[i]));
    }
  } else if (r.workload == "pi") {
    // Monte Carlo: each task counts which of its points fall in the unit
    // circle, from its own stream task_rng(seed, i): the count of every task,
    // and so the answer, is the same on every backend, jobs and schedule.
    std::vector<PiResult> v = Results<PiResult>(
        p, r,
        [&](std::size_t i) {
          maybe_fail(i);
          TaskRng rng = task_rng(r.seed, i);
          PiResult inside = 0;
          constexpr double kUnit = 1.0 / 9007199254740992.0;  // 2^-53
          for (int k = 0; k < kPiPoints; ++k) {
            const double x = static_cast<double>(rng() >> 11) * kUnit;
            const double y = static_cast<double>(rng() >> 11) * kUnit;
            inside += x * x + y * y < 1.0 ? 1 : 0;
          }
          return inside;
        },
        &failed);
    unsigned long long inside = 0;
    for (PiResult x : v) inside += x;
    // The points of the tasks that succeeded.
    const std::size_t counted = r.tasks - failed.size();
    char text[64];
    std::snprintf(text, sizeof(text), "%.10f",
                  4.0 * static_cast<double>(inside) /
                      (static_cast<double>(kPiPoints) *
                       static_cast<double>(counted == 0 ? 1 : counted)));
    answer = text;
  } else if (r.workload == "sleep") {
    std::vector<SleepResult> v = Results<SleepResult>(
        p, r,
        [&](std::size_t i) {
          maybe_fail(i);
          std::this_thread::sleep_for(std::chrono::milliseconds(r.sleep_ms));
          return SleepResult{1};
        },
        &failed);
    std::size_t done = 0;
    for (SleepResult x : v) done += x;
    answer = std::to_string(done);
  } else {
    // noop: overhead only; the answer is the sum of the task indices.
    std::vector<NoopResult> v = Results<NoopResult>(
        p, r,
        [&](std::size_t i) {
          maybe_fail(i);
          return NoopResult{i};
        },
        &failed);
    unsigned __int128 total = 0;
    for (NoopResult x : v) total += x;
    answer = ToDecimal(total);
  }
  if (!failed.empty()) {
    answer += " (partial: " + std::to_string(failed.size()) + " of " +
              std::to_string(r.tasks) + " tasks failed)";
  }
  return answer;
}

}  // namespace fanout::cli
