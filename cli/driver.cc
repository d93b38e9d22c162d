#include "cli/driver.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "core/parallel.h"
#include "workloads/workloads.h"

namespace fanout::cli {
namespace {

constexpr const char* kWorkloads[] = {"fib", "noop", "sleep", "sum"};

long long ParseInt(const std::string& flag, const std::string& text,
                   const std::string& valid) {
  long long value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    throw UsageError("--" + flag + "='" + text +
                     "' is not a number; valid: " + valid);
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
      throw std::runtime_error("injected failure in task " +
                               std::to_string(task));
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
  if (r.jobs == 0)
    throw UsageError("--jobs=0 is invalid; valid: " + jobs_valid);

  r.workload = f.workload;
  const auto workloads = WorkloadNames();
  if (std::find(workloads.begin(), workloads.end(), f.workload) ==
      workloads.end()) {
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
    if (t < 0)
      throw UsageError("--tasks=" + f.tasks +
                       " is invalid; valid: a count >= 0");
    r.tasks = static_cast<std::size_t>(t);
  }
  long long sleep_ms = ParseInt("sleep-ms", f.sleep_ms, "milliseconds >= 0");
  if (sleep_ms < 0)
    throw UsageError("--sleep-ms=" + f.sleep_ms +
                     " is invalid; valid: milliseconds >= 0");
  r.sleep_ms = static_cast<int>(sleep_ms);
  long long batch =
      ParseInt("batch-size", f.batch_size, "a count >= 1, or 0 for auto");
  if (batch < 0)
    throw UsageError("--batch-size=" + f.batch_size +
                     " is invalid; valid: a count >= 1, or 0 for auto");
  r.batch_size = static_cast<std::size_t>(batch);
  long long timeout =
      ParseInt("timeout-ms", f.timeout_ms, "milliseconds > 0, or 0 for none");
  if (timeout < 0)
    throw UsageError("--timeout-ms=" + f.timeout_ms +
                     " is invalid; valid: milliseconds > 0, or 0 for none");
  r.timeout = std::chrono::milliseconds(timeout);
  if (f.verbose < 0)
    throw UsageError("--verbose=" + std::to_string(f.verbose) +
                     " is invalid; valid: 0 (none) to 50 (every event)");
  r.verbose = f.verbose;
  r.speedup = f.speedup;

  if (f.format == "json") {
    r.json = true;
  } else if (f.format != "text") {
    throw UsageError("unknown --format '" + f.format + "'; valid: text, json");
  }
  r.progress = f.progress;
  r.commands = f.commands;
  if (!f.compare.empty()) {
    const auto names = backend_names();
    if (f.compare == "all") {
      r.compare = names;
    } else {
      std::string::size_type start = 0;
      while (start <= f.compare.size()) {
        auto end = f.compare.find(',', start);
        if (end == std::string::npos) end = f.compare.size();
        std::string name = f.compare.substr(start, end - start);
        start = end + 1;
        if (name.empty()) continue;
        if (std::find(names.begin(), names.end(), name) == names.end()) {
          make_executor(name, {.jobs = 1});  // throws with the valid names
        }
        r.compare.push_back(name);
      }
      if (r.compare.empty()) {
        throw UsageError(
            "--compare needs backends; valid: all, or a list such as "
            "sequential,thread");
      }
    }
  }

  if (!f.fail_task.empty()) {
    r.fail_task = ParseInt("fail-task", f.fail_task, "a task index");
    if (r.fail_task < 0 || static_cast<std::size_t>(r.fail_task) >= r.tasks) {
      throw UsageError("--fail-task=" + f.fail_task +
                       " is not a task of this run; valid: 0 to " +
                       std::to_string(static_cast<long long>(r.tasks) - 1));
    }
    static const std::pair<const char*, FailMode> kModes[] = {
        {"throw", FailMode::kThrow},
        {"segv", FailMode::kSegv},
        {"abort", FailMode::kAbort},
        {"exit", FailMode::kExit},
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
    std::fprintf(out, "%-12s %s\n", name.c_str(),
                 backend_description(name).c_str());
  }
}

namespace {

std::string JsonString(const std::string& v) {
  std::string s = "\"";
  for (char c : v) {
    switch (c) {
      case '"':
        s += "\\\"";
        break;
      case '\\':
        s += "\\\\";
        break;
      case '\n':
        s += "\\n";
        break;
      case '\t':
        s += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          s += buf;
        } else {
          s += c;
        }
    }
  }
  return s + "\"";
}

// A progress bar on a terminal: one line redrawn in place, at most ten
// times a second, with rate and ETA.
class ProgressBar {
 public:
  explicit ProgressBar(std::FILE* err) : err_(err) {}
  void operator()(const ProgressEvent& e) {
    const auto now = std::chrono::steady_clock::now();
    if (!e.finished && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double frac = e.total ? double(e.done) / double(e.total) : 1.0;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '-');
    const double rate = e.elapsed > 0 ? double(e.done) / e.elapsed : 0;
    char eta[32] = "ETA --";
    if (e.finished) {
      std::snprintf(eta, sizeof(eta), "in %.1fs", e.elapsed);
    } else if (e.remaining >= 0) {
      std::snprintf(eta, sizeof(eta), "ETA %.1fs", e.remaining);
    }
    std::fprintf(err_, "\r\033[K[%s] %3.0f%% %zu/%zu %.0f tasks/s %s",
                 bar.c_str(), frac * 100, e.done, e.total, rate, eta);
    if (e.finished) std::fputc('\n', err_);
    std::fflush(err_);
  }

 private:
  std::FILE* err_;
  std::chrono::steady_clock::time_point last_{};
};

struct Timed {
  std::string answer;
  double wall = 0;
  int jobs = 1;
  bool primary = true;
};

Timed TimeOn(const std::string& backend, const Request& r, std::FILE* err,
             bool err_is_terminal, bool inject) {
  Options o{.jobs = r.jobs,
            .backend = backend,
            .verbose = r.verbose,
            .batch_size = r.batch_size,
            .timeout = r.timeout,
            .cancel = &g_interrupted};
  if (r.progress && err_is_terminal) {
    o.on_progress = ProgressBar(err);
  }
  Parallel p(std::move(o));
  Request run = r;
  if (!inject) run.fail_task = -1;
  Timed t;
  t.primary = p.executor().is_primary();
  t.jobs = p.jobs();
  const auto start = std::chrono::steady_clock::now();
  t.answer = RunWorkload(p, run);
  t.wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return t;
}

int Compare(const Request& r, std::FILE* out, std::FILE* err,
            bool err_is_terminal) {
  // Sequential is the baseline, run first whether or not it was listed.
  std::vector<std::string> backends = {"sequential"};
  for (const auto& b : r.compare) {
    if (b != "sequential") backends.push_back(b);
  }
  std::vector<Timed> rows;
  for (const auto& b : backends) {
    rows.push_back(TimeOn(b, r, err, err_is_terminal, /*inject=*/true));
  }
  const Timed& seq = rows.front();
  bool agree = true;
  for (std::size_t k = 1; k < rows.size(); ++k) {
    if (rows[k].answer != seq.answer) {
      agree = false;
      std::fprintf(
          err,
          "run: error: the answers differ: %s gave %s, sequential gave %s\n",
          backends[k].c_str(), rows[k].answer.c_str(), seq.answer.c_str());
    }
  }
  bool primary = true;
  for (const Timed& t : rows) primary = primary && t.primary;
  if (!primary) return agree ? 0 : 1;
  auto speedup = [&](const Timed& t) {
    return t.wall > 0 ? seq.wall / t.wall : 0.0;
  };
  auto rate = [&](const Timed& t) {
    return t.wall > 0 ? double(r.tasks) / t.wall : 0.0;
  };
  if (r.json) {
    std::fprintf(out,
                 "{\"workload\": %s, \"answer\": %s, \"tasks\": %zu, "
                 "\"agree\": %s, \"rows\": [",
                 JsonString(r.workload).c_str(), JsonString(seq.answer).c_str(),
                 r.tasks, agree ? "true" : "false");
    for (std::size_t k = 0; k < rows.size(); ++k) {
      std::fprintf(
          out,
          "%s{\"backend\": %s, \"jobs\": %d, \"wall_seconds\": %.6f, "
          "\"speedup\": %.4f, \"tasks_per_second\": %.1f, \"answer\": %s}",
          k ? ", " : "", JsonString(backends[k]).c_str(), rows[k].jobs,
          rows[k].wall, speedup(rows[k]), rate(rows[k]),
          JsonString(rows[k].answer).c_str());
    }
    std::fprintf(out, "]}\n");
  } else {
    std::fprintf(out, "%s\n", seq.answer.c_str());
    std::fprintf(out, "%-12s %5s %12s %9s %14s\n", "backend", "jobs",
                 "wall (s)", "speedup", "tasks/s");
    for (std::size_t k = 0; k < rows.size(); ++k) {
      std::fprintf(out, "%-12s %5d %12.3f %8.2fx %14.0f\n", backends[k].c_str(),
                   rows[k].jobs, rows[k].wall, speedup(rows[k]), rate(rows[k]));
    }
  }
  std::fflush(out);
  return agree ? 0 : 1;
}

std::string ReadAll(std::FILE* f) {
  std::string text;
  char buf[65536];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, got);
  return text;
}

}  // namespace

int Run(const Request& r, std::FILE* out, std::FILE* err,
        bool err_is_terminal) {
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
    if (!r.commands.empty()) {
      std::string text;
      if (r.commands == "-") {
        text = ReadAll(stdin);
      } else {
        std::FILE* f = std::fopen(r.commands.c_str(), "r");
        if (f == nullptr) {
          throw UsageError("--commands=" + r.commands +
                           ": cannot open: " + std::strerror(errno) +
                           "; valid: a file with one command a line, "
                           "or - for standard input");
        }
        text = ReadAll(f);
        std::fclose(f);
      }
      return RunCommands(ParseCommands(text), r.jobs, out, err, &g_interrupted);
    }
    if (!r.compare.empty()) return Compare(r, out, err, err_is_terminal);

    const Timed t = TimeOn(r.backend, r, err, err_is_terminal, /*inject=*/true);
    Timed seq;
    if (r.speedup)
      seq = TimeOn("sequential", r, err, err_is_terminal, /*inject=*/false);
    if (t.primary) {
      if (r.json) {
        std::fprintf(
            out,
            "{\"answer\": %s, \"backend\": %s, \"workload\": %s, \"jobs\": %d, "
            "\"tasks\": %zu, \"wall_seconds\": %.6f",
            JsonString(t.answer).c_str(), JsonString(r.backend).c_str(),
            JsonString(r.workload).c_str(), t.jobs, r.tasks, t.wall);
        if (r.speedup) {
          std::fprintf(out, ", \"sequential_seconds\": %.6f, \"speedup\": %.4f",
                       seq.wall, t.wall > 0 ? seq.wall / t.wall : 0.0);
        }
        std::fprintf(out, "}\n");
      } else {
        std::fprintf(out, "%s\n", t.answer.c_str());
        std::fprintf(out, "backend: %s\njobs: %d\ntasks: %zu\nwall: %.3f s\n",
                     r.backend.c_str(), t.jobs, r.tasks, t.wall);
        if (r.speedup) {
          std::fprintf(out, "sequential: %.3f s\nspeedup: %.2fx\n", seq.wall,
                       t.wall > 0 ? seq.wall / t.wall : 0.0);
        }
      }
      std::fflush(out);
    }
    if (r.speedup && seq.answer != t.answer) {
      std::fprintf(
          err,
          "run: error: the answers differ: %s gave %s, sequential gave %s\n",
          r.backend.c_str(), t.answer.c_str(), seq.answer.c_str());
      return 1;
    }
    return 0;
  } catch (const InterruptedError& e) {
    std::fprintf(err, "\nrun: interrupted: %s\n", e.what());
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
