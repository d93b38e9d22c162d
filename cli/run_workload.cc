#include "cli/run_workload.h"

#include <signal.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli/faults.h"
#include "cli/signals.h"
#include "core/pool.h"
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

// --inputs: the lines of a file or stdin, each an integer n, as an input
// range read once, line by line as they arrive. Yields (line index, n).
class InputLines {
 public:
  InputLines(const std::string& path, long long low, long long high,
             std::string what)
      : path_(path), low_(low), high_(high), what_(std::move(what)) {
    if (path != "-") {
      file_ = std::make_unique<std::ifstream>(path);
      if (!*file_) {
        throw UsageError("--inputs=" + path +
                         ": cannot be read; valid: a readable file of one "
                         "integer a line, or - for stdin");
      }
    }
    in_ =
        file_ != nullptr ? static_cast<std::istream*>(file_.get()) : &std::cin;
  }

  class iterator {
   public:
    using value_type = std::pair<std::size_t, long long>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(InputLines* lines) : lines_(lines) {}
    value_type operator*() const { return lines_->current_; }
    iterator& operator++() {
      lines_->Next();
      return *this;
    }
    void operator++(int) { lines_->Next(); }
    bool operator==(std::default_sentinel_t) const { return lines_->done_; }

   private:
    InputLines* lines_ = nullptr;
  };
  iterator begin() {
    Next();
    return iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }
  std::size_t count() const { return count_; }

 private:
  void Next() {
    std::string line;
    if (!std::getline(*in_, line)) {
      done_ = true;
      return;
    }
    const std::size_t number = count_ + 1;
    std::size_t from = line.find_first_not_of(" \t\r");
    std::size_t to = line.find_last_not_of(" \t\r");
    long long n = 0;
    const char* first =
        from == std::string::npos ? line.data() : line.data() + from;
    const char* last =
        from == std::string::npos ? line.data() : line.data() + to + 1;
    const auto [end, ec] = std::from_chars(first, last, n);
    if (first == last || ec != std::errc() || end != last || n < low_ ||
        n > high_) {
      throw UsageError("--inputs=" + path_ + ": line " +
                       std::to_string(number) + " is '" +
                       (line.size() > 40 ? line.substr(0, 40) + "..." : line) +
                       "'; valid: one integer a line, " + what_);
    }
    current_ = {count_++, n};
  }

  std::string path_;
  long long low_;
  long long high_;
  std::string what_;
  std::unique_ptr<std::ifstream> file_;
  std::istream* in_ = nullptr;
  std::pair<std::size_t, long long> current_{0, 0};
  std::size_t count_ = 0;
  bool done_ = false;
};

// --inputs: each line's n run through imap over the lines.
std::string RunInputs(Parallel& p, const Request& r,
                      const FaultInjector& inject, std::size_t* tasks_run) {
  const bool print = p.executor().is_primary();
  std::string answer;
  const auto run = [&](auto task, auto add) {
    InputLines lines(r.inputs, r.workload == "fib" ? 0 : -1'000'000'000'000LL,
                     r.workload == "fib" ? 92 : 1'000'000'000'000LL,
                     r.workload == "fib" ? "from 0 to 92 for --workload=fib"
                                         : "from -10^12 to 10^12");
    if (r.stream == "unordered") {
      for (auto& [i, x] : p.imap_unordered(lines, task)) {
        if (print) std::printf("%zu %lld\n", i, static_cast<long long>(x));
        add(x);
      }
    } else {
      for (auto x : p.imap(lines, task)) {
        if (print && r.stream == "ordered") {
          std::printf("%lld\n", static_cast<long long>(x));
        }
        add(x);
      }
    }
    std::fflush(stdout);
    if (tasks_run != nullptr) *tasks_run = lines.count();
  };
  if (r.workload == "fib") {
    run(
        [&inject](std::pair<std::size_t, long long> in) {
          inject.MaybeFail(in.first);
          return workloads::Fib(static_cast<int>(in.second));
        },
        [&answer](long long x) {
          answer += (answer.empty() ? "" : " ") + std::to_string(x);
        });
    return answer;
  }
  __int128 total = 0;
  if (r.workload == "sum") {
    run(
        [&inject](std::pair<std::size_t, long long> in) {
          inject.MaybeFail(in.first);
          return workloads::SumTask(in.second);
        },
        [&total](long long x) { total += x; });
  } else {
    run(
        [&inject](std::pair<std::size_t, long long> in) {
          inject.MaybeFail(in.first);
          return in.second;
        },
        [&total](long long x) { total += x; });
  }
  return total < 0 ? "-" + ToDecimal(-static_cast<unsigned __int128>(total))
                   : ToDecimal(static_cast<unsigned __int128>(total));
}

std::uint64_t DagMix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// --workload=dag: task i combines the values of up to three earlier tasks,
// drawn from task_rng(seed, i), with some arithmetic of its own; the answer
// is the sum of every task's value (mod 2^64), the same on every backend and
// jobs. Each task waits for its inputs in the pool, never on a worker.
std::string RunDag(Parallel& p, const Request& r, const FaultInjector& inject,
                   std::vector<TaskError>* failed) {
  Options o = p.options();
  const std::atomic<bool>* cancel = o.cancel;
  o.cancel = nullptr;  // watched here, between waits
  o.on_stuck = nullptr;
  o.on_progress = nullptr;
  o.checkpoint.clear();
  Pool pool(std::move(o));
  const auto node = [&inject](std::uint64_t i, auto... in) -> std::uint64_t {
    inject.MaybeFail(i);
    std::uint64_t h = workloads::TinyTask(i);
    ((h = DagMix(h ^ in)), ...);
    return h;
  };
  const auto interrupted = [&](std::size_t done, const char* what) {
    pool.close();
    throw InterruptedError("interrupted with " + std::to_string(done) + " of " +
                               std::to_string(r.tasks) +
                               " tasks of the graph " + what,
                           SIGINT);
  };
  std::vector<Future<std::uint64_t>> f;
  f.reserve(r.tasks);
  for (std::size_t i = 0; i < r.tasks; ++i) {
    if (i % 1024 == 0 && cancel != nullptr && cancel->load()) {
      interrupted(i, "submitted");
    }
    TaskRng rng = task_rng(r.seed, i);
    const std::size_t inputs = i == 0 ? 0 : rng() % 4;
    std::size_t in[3] = {0, 0, 0};
    for (std::size_t k = 0; k < inputs; ++k) in[k] = rng() % i;
    const std::uint64_t id = i;
    switch (inputs) {
      case 0:
        f.push_back(pool.submit(node, id));
        break;
      case 1:
        f.push_back(pool.submit(node, id, f[in[0]]));
        break;
      case 2:
        f.push_back(pool.submit(node, id, f[in[0]], f[in[1]]));
        break;
      default:
        f.push_back(pool.submit(node, id, f[in[0]], f[in[1]], f[in[2]]));
    }
  }
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < f.size(); ++i) {
    while (!f[i].wait_for(std::chrono::milliseconds(20))) {
      if (cancel != nullptr && cancel->load()) interrupted(i, "done");
    }
    if (r.collect_errors) {
      try {
        sum += f[i].get();
      } catch (const TaskError& e) {
        failed->push_back(e);
      }
    } else {
      sum += f[i].get();
    }
  }
  return std::to_string(sum);
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
                        std::vector<TaskError>* failures,
                        std::size_t* tasks_run) {
  std::vector<TaskError> own;
  std::vector<TaskError>& failed = failures != nullptr ? *failures : own;
  failed.clear();
  const FaultInjector inject(r.fail_task, r.fail_mode, r.fail_attempts);
  auto maybe_fail = [&inject](std::size_t i) { inject.MaybeFail(i); };
  std::string answer;
  if (!r.inputs.empty()) return RunInputs(p, r, inject, tasks_run);
  if (r.workload == "dag") {
    answer = RunDag(p, r, inject, &failed);
  } else if (r.workload == "sum") {
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
