#include "core/testing/conformance.h"

#include <sys/mman.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/parallel.h"
#include "core/testing/types.h"

namespace fanout::testing {
namespace {

using fanout_conformance::BadInput;
using fanout_conformance::Label;
using fanout_conformance::Point;

// Counters in MAP_SHARED memory: visible to threads and forked workers alike.
template <class T>
class SharedCounters {
 public:
  explicit SharedCounters(std::size_t n) : n_(n) {
    bytes_ = std::max<std::size_t>(n * sizeof(std::atomic<T>), 1);
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<std::atomic<T>*>(p);
    for (std::size_t i = 0; i < n; ++i) new (&data_[i]) std::atomic<T>(0);
  }
  ~SharedCounters() { munmap(data_, bytes_); }
  std::atomic<T>& operator[](std::size_t i) const { return data_[i]; }
  std::size_t size() const { return n_; }
  // The counts of this process (and of the workers it forked).
  std::vector<std::uint64_t> Local() const {
    std::vector<std::uint64_t> out(n_);
    for (std::size_t i = 0; i < n_; ++i) out[i] = data_[i].load();
    return out;
  }

 private:
  std::size_t n_;
  std::size_t bytes_;
  std::atomic<T>* data_;
};

TEST_P(Conformance, EmptyJob) {
  Parallel p({.jobs = 2, .backend = backend()});
  std::vector<int> r = p.map(0, [](std::size_t) { return 1; });
  EXPECT_TRUE(r.empty());
  p.for_each(0, [](std::size_t) { throw std::logic_error("never runs"); });
}

TEST_P(Conformance, OneTask) {
  Parallel p({.jobs = 2, .backend = backend()});
  std::vector<long> r = p.map(1, [](std::size_t i) { return long(i) + 41; });
  EXPECT_EQ(r, std::vector<long>{41});
}

TEST_P(Conformance, TasksNotDivisibleByJobs) {
  for (int jobs : {2, 3, 4}) {
    Parallel p({.jobs = jobs, .backend = backend()});
    std::vector<std::size_t> r =
        p.map(1001, [](std::size_t i) { return i * i; });
    ASSERT_EQ(r.size(), 1001u);
    for (std::size_t i = 0; i < r.size(); ++i) ASSERT_EQ(r[i], i * i) << i;
  }
}

TEST_P(Conformance, MillionTinyTasksEachRunExactlyOnce) {
  constexpr std::size_t kN = 1'000'000;
  SharedCounters<std::uint8_t> runs(kN);
  Parallel p({.jobs = -1, .backend = backend()});
  std::vector<std::uint64_t> r = p.map(kN, [&](std::size_t i) {
    runs[i].fetch_add(1, std::memory_order_relaxed);
    return std::uint64_t(i) * 3 + 1;
  });
  ASSERT_EQ(r.size(), kN);
  const std::vector<std::uint64_t> total = Summed(runs.Local());
  std::size_t wrong = 0, not_once = 0;
  for (std::size_t i = 0; i < kN; ++i) {
    wrong += r[i] != std::uint64_t(i) * 3 + 1;
    not_once += total[i] != 1;
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(not_once, 0u);
}

TEST_P(Conformance, ResultsInTaskOrderMatchSequential) {
  // Uneven task costs so completion order differs from task order.
  auto f = [](std::size_t i) {
    std::uint64_t h = i;
    for (std::size_t k = 0; k < (i % 7) * 500; ++k)
      h = h * 6364136223846793005u + 1;
    return h;
  };
  std::vector<std::uint64_t> expected =
      Parallel({.backend = "sequential"}).map(5000, f);
  std::vector<std::uint64_t> got =
      Parallel({.jobs = -1, .backend = backend()}).map(5000, f);
  EXPECT_EQ(got, expected);
}

TEST_P(Conformance, TasksRunAtTheSameTime) {
  if (backend() == "sequential") GTEST_SKIP() << "one task at a time by design";
  // Each of `jobs` tasks waits until all have started: they finish only if
  // the backend really runs them side by side (bounded wait, so a backend
  // that does not fails instead of hanging).
  //
  // With separate processes (mpi ranks, `jobs` workers each) a counter
  // cannot be shared: each process counts its own tasks, and there are
  // `jobs` tasks per process. They spread unevenly (a process whose tasks
  // met takes more), but at least one process gets `jobs` of them, and each
  // of its workers then holds one: those must all meet. A task that met
  // lingers a little so that the others' workers get their share.
  const std::size_t processes = this->processes();
  const auto wait =
      processes == 1 ? std::chrono::seconds(10) : std::chrono::seconds(2);
  for (int jobs : {2, 3}) {
    SharedCounters<std::uint32_t> started(1);
    Parallel p({.jobs = jobs, .backend = backend(), .batch_size = 1});
    std::vector<int> met = p.map(jobs * processes, [&](std::size_t) {
      started[0].fetch_add(1);
      const auto deadline = std::chrono::steady_clock::now() + wait;
      while (started[0].load() < static_cast<std::uint32_t>(jobs)) {
        if (std::chrono::steady_clock::now() > deadline) return 0;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      if (processes > 1) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      return 1;
    });
    if (processes == 1) {
      EXPECT_EQ(met, std::vector<int>(jobs, 1)) << "jobs=" << jobs;
    } else {
      int met_tasks = 0;
      for (int m : met) met_tasks += m;
      EXPECT_GE(met_tasks, jobs) << "jobs=" << jobs;
    }
  }
}

TEST_P(Conformance, ForEachRunsEveryTask) {
  SharedCounters<std::uint32_t> runs(1000);
  Parallel({.jobs = -1, .backend = backend()})
      .for_each(1000, [&](std::size_t i) { runs[i].fetch_add(1); });
  EXPECT_EQ(Summed(runs.Local()), std::vector<std::uint64_t>(1000, 1));
}

TEST_P(Conformance, MapOverContainers) {
  Parallel p({.jobs = -1, .backend = backend()});
  std::vector<int> v{38, 7, 1, 20};
  EXPECT_EQ(p.map(v, [](int x) { return x * 2; }),
            (std::vector<int>{76, 14, 2, 40}));
  std::list<std::string> words{"a", "bb", "ccc"};
  EXPECT_EQ(p.map(words, [](const std::string& w) { return w.size(); }),
            (std::vector<std::size_t>{1, 2, 3}));
}

TEST_P(Conformance, DelayedTasks) {
  auto process = [](long long n, long long scale) { return n * scale; };
  std::vector<Task<long long>> tasks;
  for (int i = 0; i < 100; ++i) tasks.push_back(delayed(process)(i, 3));
  std::vector<long long> r =
      Parallel({.jobs = -1, .backend = backend()})(tasks);
  ASSERT_EQ(r.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(r[i], i * 3LL);
}

TEST_P(Conformance, ExceptionNamesTaskTypeAndMessage) {
  Parallel p({.jobs = 2, .backend = backend()});
  try {
    p.map(100, [](std::size_t i) -> int {
      if (i == 37) throw BadInput("bad value 37");
      return int(i);
    });
    FAIL() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 37u);
    EXPECT_EQ(e.backend(), backend());
    EXPECT_EQ(e.type(), "fanout_conformance::BadInput");
    EXPECT_EQ(e.message(), "bad value 37");
    EXPECT_FALSE(e.worker().empty());
    EXPECT_EQ(e.signal(), 0);
    const std::string what = e.what();
    EXPECT_NE(what.find("task 37 failed on backend '" + backend() + "'"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("fanout_conformance::BadInput: bad value 37"),
              std::string::npos)
        << what;
  }
}

TEST_P(Conformance, NonStdExceptionIsNamed) {
  Parallel p({.jobs = 2, .backend = backend()});
  try {
    p.for_each(10, [](std::size_t i) {
      if (i == 4) throw 42;
    });
    FAIL() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 4u);
    EXPECT_EQ(e.type(), "int");
  }
}

TEST_P(Conformance, FailFastStopsEarly) {
  constexpr std::size_t kN = 2000;
  SharedCounters<std::uint32_t> ran(1);
  Parallel p({.jobs = 2, .backend = backend(), .batch_size = 1});
  EXPECT_THROW(
      p.for_each(kN,
                 [&](std::size_t i) {
                   ran[0].fetch_add(1);
                   if (i == 0) throw std::runtime_error("first");
                   std::this_thread::sleep_for(std::chrono::microseconds(500));
                 }),
      TaskError);
  // Task 0 fails at once; at 0.5 ms a task the other worker gets through a
  // handful before it sees the stop, nowhere near all 2000.
  EXPECT_LT(Summed(ran.Local())[0], kN / 2);
}

TEST_P(Conformance, CollectAllReturnsEveryOutcome) {
  constexpr std::size_t kN = 500;
  SharedCounters<std::uint32_t> runs(kN);
  Parallel p({.jobs = -1, .backend = backend()});
  auto outcomes = p.try_map(kN, [&](std::size_t i) -> std::string {
    runs[i].fetch_add(1);
    if (i % 10 == 3) throw std::out_of_range("task " + std::to_string(i));
    return std::to_string(i);
  });
  ASSERT_EQ(outcomes.size(), kN);
  const std::vector<std::uint64_t> total = Summed(runs.Local());
  for (std::size_t i = 0; i < kN; ++i) {
    EXPECT_EQ(total[i], 1u) << i;
    if (i % 10 == 3) {
      ASSERT_FALSE(outcomes[i].ok()) << i;
      EXPECT_EQ(outcomes[i].error().index(), i);
      EXPECT_EQ(outcomes[i].error().type(), "std::out_of_range");
      EXPECT_EQ(outcomes[i].error().message(), "task " + std::to_string(i));
    } else {
      ASSERT_TRUE(outcomes[i].ok()) << i;
      EXPECT_EQ(outcomes[i].value(), std::to_string(i));
    }
  }
}

TEST_P(Conformance, CollectAllPolicyThrowsLowestWithCount) {
  SharedCounters<std::uint32_t> ran(1);
  Parallel p(
      {.jobs = -1, .backend = backend(), .errors = ErrorPolicy::kCollectAll});
  try {
    p.map(300, [&](std::size_t i) {
      ran[0].fetch_add(1);
      if (i % 100 == 50) throw std::runtime_error("x");
      return i;
    });
    FAIL() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 50u);
    EXPECT_EQ(e.failed_tasks(), 3u);
    EXPECT_NE(std::string(e.what()).find("(and 2 other tasks failed)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(Summed(ran.Local())[0], 300u);
}

TEST_P(Conformance, JobsMinusOneOneAndMoreThanCores) {
  const int cpus = usable_cpus();
  for (int jobs : {-1, 1, cpus + 3, -2}) {
    Parallel p({.jobs = jobs, .backend = backend()});
    std::vector<int> r = p.map(97, [](std::size_t i) { return int(i) - 5; });
    ASSERT_EQ(r.size(), 97u) << jobs;
    for (int i = 0; i < 97; ++i) ASSERT_EQ(r[i], i - 5) << "jobs=" << jobs;
  }
  EXPECT_EQ(Parallel({.jobs = -1, .backend = backend()}).jobs(),
            backend() == "sequential" ? 1 : cpus);
}

TEST_P(Conformance, JobsZeroIsAnError) {
  try {
    Parallel p({.jobs = 0, .backend = backend()});
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("jobs must not be 0"),
              std::string::npos);
  }
}

TEST_P(Conformance, NestedCallsRunInline) {
  Parallel outer({.jobs = -1, .backend = backend()});
  std::vector<int> r = outer.map(8, [&](std::size_t i) {
    Parallel inner({.jobs = -1, .backend = backend()});
    std::vector<int> v =
        inner.map(10, [&](std::size_t j) { return int(i * 10 + j); });
    int s = 0;
    for (int x : v) s += x;
    return s;
  });
  for (int i = 0; i < 8; ++i) EXPECT_EQ(r[i], 100 * i + 45);
}

// Issue 20 item 5: a call made inside a task on thread or tbb runs on the
// outer call's threads (a thread whose own task ended takes the nested
// call's chunks), never on more threads at once than jobs; elsewhere it runs
// inline on the task's thread. Outer task 0 makes a nested call of 300
// tasks of 1 ms; outer task 1 ends at once, so its thread is free to help.
TEST_P(Conformance, NestedCallsShareTheOuterWorkers) {
  const bool shares = backend() == "thread" || backend() == "tbb";
  if (!shares && backend() != "sequential") {
    GTEST_SKIP() << "tasks here do not share the test's memory";
  }
  std::mutex mu;
  std::set<std::thread::id> threads;
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  Parallel outer({.jobs = 2, .backend = backend(), .batch_size = 1});
  std::vector<long long> r = outer.map(2, [&](std::size_t i) -> long long {
    if (i == 1) return -1;
    Parallel inner({.jobs = 2, .backend = backend(), .batch_size = 1});
    std::vector<long long> v = inner.map(300, [&](std::size_t j) {
      const int now = running.fetch_add(1) + 1;
      for (int m = most.load();
           now > m && !most.compare_exchange_weak(m, now);) {
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        threads.insert(std::this_thread::get_id());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      running.fetch_sub(1);
      return static_cast<long long>(j) * static_cast<long long>(j);
    });
    long long sum = 0;
    for (long long x : v) sum += x;
    return sum;
  });
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], 299LL * 300 * 599 / 6);
  EXPECT_EQ(r[1], -1);
  EXPECT_LE(most.load(), 2) << "a nested call ran on more threads than jobs";
  EXPECT_EQ(threads.size(), shares ? 2u : 1u)
      << "threads that ran the nested call's tasks";
}

TEST_P(Conformance, NonTrivialResultTypes) {
  Parallel p({.jobs = -1, .backend = backend()});
  std::vector<std::string> s = p.map(200, [](std::size_t i) {
    return std::string(i % 50, static_cast<char>('a' + i % 26));
  });
  for (std::size_t i = 0; i < 200; ++i) {
    ASSERT_EQ(s[i], std::string(i % 50, 'a' + i % 26));
  }
  std::vector<std::vector<int>> v =
      p.map(100, [](std::size_t i) { return std::vector<int>(i, int(i)); });
  for (std::size_t i = 0; i < 100; ++i)
    ASSERT_EQ(v[i], std::vector<int>(i, int(i)));
  std::vector<Point> pts = p.map(50, [](std::size_t i) {
    return Point{"p" + std::to_string(i), {double(i), -double(i)}};
  });
  for (std::size_t i = 0; i < 50; ++i) {
    ASSERT_EQ(pts[i],
              (Point{"p" + std::to_string(i), {double(i), -double(i)}}));
  }
  std::vector<bool> b = p.map(1000, [](std::size_t i) { return i % 3 == 0; });
  for (std::size_t i = 0; i < 1000; ++i) ASSERT_EQ(b[i], i % 3 == 0);
}

// Issue 23 item 12: a serializable result type without a default
// constructor (Label: serialize() and cereal's load_and_construct) works on
// every backend, through map, try_map, imap, imap_unordered and a
// checkpoint read back. It used to be refused on process and mpi.
TEST_P(Conformance, SerializableResultsWithoutADefaultConstructor) {
  constexpr std::size_t kN = 300;
  const auto label = [](std::size_t i) {
    return Label("label " + std::to_string(i) + std::string(i % 40, 'x'));
  };
  Parallel p({.jobs = 2, .backend = backend()});
  const std::vector<Label> r = p.map(kN, label);
  ASSERT_EQ(r.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) ASSERT_EQ(r[i], label(i)) << i;
  auto outcomes = p.try_map(kN, [&](std::size_t i) {
    if (i == 7) throw BadInput("seven");
    return label(i);
  });
  ASSERT_EQ(outcomes.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) {
    if (i == 7) {
      EXPECT_FALSE(outcomes[i].ok());
    } else {
      ASSERT_TRUE(outcomes[i].ok()) << i;
      ASSERT_EQ(outcomes[i].value(), label(i)) << i;
    }
  }
  std::size_t next = 0;
  for (const Label& l : p.imap(kN, label)) ASSERT_EQ(l, label(next++));
  EXPECT_EQ(next, kN);
  std::vector<int> seen(kN, 0);
  for (auto& [i, l] : p.imap_unordered(kN, label)) {
    ASSERT_EQ(l, label(i));
    ++seen[i];
  }
  EXPECT_EQ(seen, std::vector<int>(kN, 1));
  // A checkpoint: written, then every result read back from the file. (On
  // several mpi ranks a rerun in the same process may read the file before
  // rank 0 has appended its last window: tests/mpi covers checkpoints
  // across processes.)
  if (!p.executor().calls_from_any_thread()) return;
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") +
                           "/labels_" + std::string(backend()) + ".ckpt";
  std::remove(path.c_str());
  Parallel c({.jobs = 2, .backend = backend(), .checkpoint = path});
  EXPECT_EQ(c.map(kN, label), r);
  EXPECT_EQ(c.last_call_resumed(), 0u);
  EXPECT_EQ(
      c.map(kN, [](std::size_t) -> Label { throw BadInput("ran again"); }), r);
  EXPECT_EQ(c.last_call_resumed(), kN);
  std::remove(path.c_str());
}

TEST_P(Conformance, TimeoutStopsTheCall) {
  Parallel p({.jobs = 2,
              .backend = backend(),
              .timeout = std::chrono::milliseconds(200)});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(
      p.for_each(1000,
                 [](std::size_t) {
                   std::this_thread::sleep_for(std::chrono::milliseconds(20));
                 }),
      TimeoutError);
  // 1000 tasks of 20 ms on 2 workers would take 10 s.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_P(Conformance, ProgressReachesTotal) {
  std::vector<ProgressEvent> events;
  Parallel p(
      {.jobs = 2,
       .backend = backend(),
       .on_progress = [&](const ProgressEvent& e) { events.push_back(e); }});
  p.for_each(50, [](std::size_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(4));
  });
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().finished);
  EXPECT_EQ(events.back().done, 50u);
  EXPECT_EQ(events.back().total, 50u);
  for (std::size_t k = 1; k < events.size(); ++k) {
    EXPECT_LE(events[k - 1].done, events[k].done);
  }
}

TEST_P(Conformance, ExecutorReportsItsName) {
  EXPECT_EQ(make_executor(backend(), {.jobs = 2})->name(), backend());
}

// A batch size near SIZE_MAX must neither wrap the chunk counter (running
// tasks two or three times) nor be refused: it means "one chunk".
TEST_P(Conformance, HugeBatchSizesRunEachTaskExactlyOnce) {
  constexpr std::size_t kN = 100;
  const std::size_t kMax = std::numeric_limits<std::size_t>::max();
  for (std::size_t batch : {kMax, kMax - 1, kMax / 2 + 1, std::size_t{1} << 62,
                            kN + 1, kN, std::size_t{3}}) {
    SharedCounters<std::uint32_t> runs(kN);
    std::atomic<std::size_t> last_done{0};
    Parallel p({.jobs = 8,
                .backend = backend(),
                .batch_size = batch,
                .on_progress = [&](const ProgressEvent& e) {
                  if (!e.finished) last_done = e.done;
                }});
    std::vector<std::size_t> r = p.map(kN, [&](std::size_t i) {
      runs[i].fetch_add(1, std::memory_order_relaxed);
      return i + 7;
    });
    ASSERT_EQ(r.size(), kN) << "batch " << batch;
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < kN; ++i) wrong += r[i] != i + 7;
    EXPECT_EQ(wrong, 0u) << "batch " << batch;
    EXPECT_EQ(Summed(runs.Local()), std::vector<std::uint64_t>(kN, 1))
        << "batch " << batch;
    EXPECT_LE(last_done.load(), kN) << "batch " << batch;
  }
}

// Progress counts tasks that finished, never tasks a fail-fast stop skipped.
TEST_P(Conformance, ProgressCountsOnlyTasksThatRan) {
  constexpr std::size_t kN = 2000;
  SharedCounters<std::uint32_t> runs(kN);
  std::unique_ptr<Executor> ex = make_executor(backend(), {.jobs = 2});
  struct Ctx {
    SharedCounters<std::uint32_t>* runs;
  } ctx{&runs};
  Job job;
  job.n = kN;
  job.ctx = &ctx;
  job.run_range = [](void* c, std::size_t begin, std::size_t end,
                     TaskFailure* failure) -> std::size_t {
    auto* ctx = static_cast<Ctx*>(c);
    for (std::size_t i = begin; i < end; ++i) {
      (*ctx->runs)[i].fetch_add(1, std::memory_order_relaxed);
      if (i == 5) {
        failure->type = "BadInput";
        failure->message = "task 5";
        return i - begin;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return end - begin;
  };
  job.trivial_result_size = 1;
  static char sink[kN];
  job.result_slot = [](void*, std::size_t i) -> void* { return &sink[i]; };
  job.encode_result = [](void*, std::size_t, std::string*) {};
  job.decode_result = [](void*, std::size_t, std::string_view) {};
  std::atomic<std::size_t> progress{0};
  RunOptions options;
  options.jobs = 2;
  options.batch_size = 50;
  options.progress = &progress;
  RunReport report = ex->run(job, options);
  ASSERT_EQ(report.failures.size(), 1u);
  EXPECT_EQ(report.failures[0].index(), 5u);
  const std::vector<std::uint64_t> counts = Summed(runs.Local());
  std::size_t ran = 0, twice = 0;
  for (std::size_t i = 0; i < kN; ++i) {
    twice += counts[i] > 1;
    ran += counts[i];
  }
  EXPECT_EQ(twice, 0u);
  EXPECT_LT(ran, kN);
  if (ex->shares_memory()) {
    EXPECT_EQ(progress.load(), ran);
  } else {
    // A worker stopped from outside mid-chunk (the failure ends the call at
    // once) ran tasks whose outcomes never reached the caller: those are not
    // counted, but nothing that did not run is.
    EXPECT_LE(progress.load(), ran);
    EXPECT_GE(progress.load(), 6u);  // tasks 0..5 of the failing chunk
  }
}

TEST_P(Conformance, ResultsInTaskOrderForEveryBatchSize) {
  // Chunks of one task, of an odd size, of every task, and larger than the
  // job: each task runs once, results land in task order.
  constexpr std::size_t kN = 3000;
  for (std::size_t batch : {std::size_t(1), std::size_t(7), kN, kN + 1}) {
    SharedCounters<std::uint32_t> runs(kN);
    Parallel p({.jobs = 3, .backend = backend(), .batch_size = batch});
    std::vector<std::uint64_t> r = p.map(kN, [&](std::size_t i) {
      runs[i].fetch_add(1);
      return std::uint64_t(i) * 7 + 3;
    });
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < r.size(); ++i) wrong += r[i] != i * 7 + 3;
    EXPECT_EQ(r.size(), kN) << "batch " << batch;
    EXPECT_EQ(wrong, 0u) << "batch " << batch;
    EXPECT_EQ(Summed(runs.Local()), std::vector<std::uint64_t>(kN, 1))
        << "batch " << batch;
  }
}

// batch_size = 0 sizes chunks from measured time while the call runs: task
// times that change sharply (instant, then ~20 µs of work, then instant
// again) make later chunks grow, shrink and grow. Whatever sizes come out,
// each task runs exactly once and lands in its place, with failures (every
// 97th task, collected) and a retried task counted exactly.
TEST_P(Conformance, AutoBatchSizesFromMeasuredTimeRunEachTaskOnce) {
  constexpr std::size_t kN = 60000;
  const auto work = [](std::size_t i) {
    std::uint64_t x = i;
    if (i >= 20000 && i < 20400) {
      for (int k = 0; k < 20000; ++k) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        asm volatile("" : "+r"(x));
      }
    }
    return x;
  };
  const auto answer = [&work](std::size_t i) {
    return work(i) ^ (std::uint64_t(i) * 5 + 1);
  };
  for (int jobs : {2, 3}) {
    SharedCounters<std::uint32_t> runs(kN);
    Parallel p({.jobs = jobs, .backend = backend(), .retries = 1});
    auto outcomes = p.try_map(kN, [&](std::size_t i) -> std::uint64_t {
      const std::uint32_t attempt = runs[i].fetch_add(1) + 1;
      if (i % 97 == 5) throw BadInput("task " + std::to_string(i));
      if (i == 30001 && attempt == 1) throw BadInput("flaky");
      return answer(i);
    });
    ASSERT_EQ(outcomes.size(), kN);
    const std::vector<std::uint64_t> total = Summed(runs.Local());
    std::size_t wrong = 0, bad_runs = 0, failed = 0;
    for (std::size_t i = 0; i < kN; ++i) {
      const std::uint64_t expected_runs = i % 97 == 5 || i == 30001 ? 2 : 1;
      bad_runs += total[i] != expected_runs;
      if (i % 97 == 5) {
        failed += !outcomes[i].ok() && outcomes[i].error().index() == i;
      } else {
        wrong += !outcomes[i].ok() || outcomes[i].value() != answer(i);
      }
    }
    EXPECT_EQ(wrong, 0u) << "jobs " << jobs;
    EXPECT_EQ(bad_runs, 0u) << "jobs " << jobs;
    EXPECT_EQ(failed, (kN - 5 + 96) / 97) << "jobs " << jobs;
  }
  // Fail-fast: the lowest failure is thrown, with the others counted.
  Parallel p({.jobs = 2, .backend = backend()});
  try {
    p.map(kN, [&](std::size_t i) {
      if (i == 40000) throw BadInput("task 40000");
      return work(i);
    });
    FAIL() << "expected a TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 40000u);
    EXPECT_EQ(e.message(), "task 40000");
  }
}

TEST_P(Conformance, CallsFromSeveralThreadsAtOnce) {
  // This (main) thread and three others call at once, five calls each, with
  // results that differ per thread and per call. Every call returns exactly
  // its own results, or throws UsageError before running anything (mpi on
  // ranks takes calls from the main thread only); the main thread's calls
  // always run. Never another call's results.
  constexpr int kThreads = 4;  // caller 0 is this thread
  constexpr int kCalls = 5;
  constexpr std::size_t kN = 300;
  std::atomic<int> ready{0};
  std::vector<int> exact(kThreads), refused(kThreads), wrong(kThreads),
      other(kThreads);
  auto caller = [&](int t) {
    Parallel p({.jobs = 2, .backend = backend()});
    ready.fetch_add(1);
    while (ready.load() < kThreads) std::this_thread::yield();
    for (int c = 0; c < kCalls; ++c) {
      const std::uint64_t tag = (std::uint64_t(t) * 100 + c) * 1'000'000;
      try {
        std::vector<std::uint64_t> r = p.map(kN, [tag](std::size_t i) {
          if (i % 16 == 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
          }
          return tag + i;
        });
        bool ok = r.size() == kN;
        for (std::size_t i = 0; ok && i < kN; ++i) ok = r[i] == tag + i;
        ++(ok ? exact : wrong)[t];
      } catch (const UsageError&) {
        ++refused[t];
      } catch (...) {
        ++other[t];
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < kThreads; ++t) threads.emplace_back(caller, t);
  caller(0);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong, std::vector<int>(kThreads, 0)) << "results of another call";
  EXPECT_EQ(other, std::vector<int>(kThreads, 0));
  EXPECT_EQ(exact[0], kCalls);
  for (int t = 1; t < kThreads; ++t) {
    EXPECT_EQ(exact[t] + refused[t], kCalls) << "thread " << t;
  }
}

TEST_P(Conformance, UserCancelMidCall) {
  // The caller raises its cancel flag (as a signal handler would) while
  // tasks run: the call stops between chunks and throws InterruptedError,
  // long before every task ran. The same Parallel then runs a new call.
  constexpr std::size_t kN = 2000;
  std::atomic<bool> cancel{false};
  SharedCounters<std::uint32_t> ran(1);
  Parallel p(
      {.jobs = 2, .backend = backend(), .batch_size = 1, .cancel = &cancel});
  std::thread canceller([&cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancel.store(true);
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(
      p.for_each(kN,
                 [&](std::size_t) {
                   ran[0].fetch_add(1);
                   std::this_thread::sleep_for(std::chrono::milliseconds(2));
                 }),
      InterruptedError);
  canceller.join();
  // 2000 tasks of 2 ms on 2 workers would take 2 s.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_LT(Summed(ran.Local())[0], kN / 2);
  cancel.store(false);
  EXPECT_EQ(p.map(10, [](std::size_t i) { return int(i); }),
            (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

// map_reduce: the reference answer on every backend; the same bits for a
// floating-point sum whatever the backend and jobs count (groups depend on
// n alone); an associative but not commutative op combined in index order;
// a failure names the user's task, not its group.
TEST_P(Conformance, MapReduceMatchesTheReference) {
  Parallel p({.jobs = 2, .backend = backend()});
  const long long sum = p.map_reduce(
      100000, [](std::size_t i) { return static_cast<long long>(i) * 3; }, 0LL,
      std::plus<>());
  EXPECT_EQ(sum, 3LL * 99999 * 100000 / 2);
  EXPECT_EQ(p.map_reduce(
                0, [](std::size_t) { return 1; }, 42, std::plus<>()),
            42);
  EXPECT_EQ(p.map_reduce(
                5, [](std::size_t i) { return int(i); }, 100, std::plus<>()),
            110);

  const auto term = [](std::size_t i) { return 1.0 / (1.0 + double(i)); };
  const double reference = Parallel({.jobs = 1, .backend = "sequential"})
                               .map_reduce(123457, term, 0.0, std::plus<>());
  for (int jobs : {1, 2, 3}) {
    const double got = Parallel({.jobs = jobs, .backend = backend()})
                           .map_reduce(123457, term, 0.0, std::plus<>());
    // The same bits: bit_cast, since == would also accept -0.0 for 0.0.
    EXPECT_EQ(std::bit_cast<std::uint64_t>(got),
              std::bit_cast<std::uint64_t>(reference))
        << "jobs " << jobs << ": " << got << " vs " << reference;
  }

  std::string expected;
  for (int i = 0; i < 9000; ++i) expected += std::to_string(i % 10);
  const std::string joined = p.map_reduce(
      9000, [](std::size_t i) { return std::to_string(i % 10); }, std::string(),
      [](std::string a, const std::string& b) { return std::move(a) + b; });
  EXPECT_EQ(joined, expected);

  try {
    p.map_reduce(
        50000,
        [](std::size_t i) -> long long {
          if (i == 12345) throw BadInput("bad 12345");
          return 1;
        },
        0LL, std::plus<>());
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 12345u);
    EXPECT_EQ(e.message(), "bad 12345");
    EXPECT_EQ(e.type(), "fanout_conformance::BadInput");
  }
}

// imap: results in task order, the first long before a slow last task ends
// (the last task waits until the loop has the first result); the values
// exact; a failure thrown where the loop reaches it, after the results
// before it. imap_unordered: every index once.
TEST_P(Conformance, ImapStreamsInOrderBeforeTheLastTaskEnds) {
  constexpr std::size_t kN = 3000;
  SharedCounters<std::uint32_t> first_seen(1);
  SharedCounters<std::uint32_t> waited_out(1);
  Parallel p({.jobs = 2, .backend = backend()});
  std::size_t next = 0;
  for (std::uint64_t r : p.imap(
           kN,
           [&](std::size_t i) {
             if (i == kN - 1) {
               const auto until =
                   std::chrono::steady_clock::now() + std::chrono::seconds(20);
               while (first_seen[0].load() == 0 &&
                      std::chrono::steady_clock::now() < until) {
                 std::this_thread::sleep_for(std::chrono::milliseconds(1));
               }
               if (first_seen[0].load() == 0) waited_out[0].store(1);
             }
             return std::uint64_t(i) * 5 + 1;
           },
           /*window=*/500)) {
    first_seen[0].store(1);
    ASSERT_EQ(r, std::uint64_t(next) * 5 + 1) << "position " << next;
    ++next;
  }
  EXPECT_EQ(next, kN);
  EXPECT_EQ(Summed(waited_out.Local())[0], 0u)
      << "the first result came only after the last task ended";

  std::vector<std::uint32_t> seen(kN, 0);
  std::size_t count = 0;
  for (auto& [index, value] : p.imap_unordered(
           kN, [](std::size_t i) { return std::uint64_t(i) * 3; }, 700)) {
    ASSERT_LT(index, kN);
    ASSERT_EQ(value, std::uint64_t(index) * 3);
    ++seen[index];
    ++count;
  }
  EXPECT_EQ(count, kN);
  EXPECT_EQ(seen, std::vector<std::uint32_t>(kN, 1));

  std::size_t yielded = 0;
  try {
    for (int r : p.imap(
             2000,
             [](std::size_t i) {
               if (i == 777) throw BadInput("bad 777");
               return int(i);
             },
             300)) {
      ASSERT_EQ(r, int(yielded));
      ++yielded;
    }
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 777u);
    EXPECT_EQ(e.message(), "bad 777");
  }
  EXPECT_EQ(yielded, 777u);
}

// A failure in a window whose earlier tasks run slowly: every result before
// the failed task is yielded, right (tbb hands out the window's halves in
// any order; a fail-fast window once left the slow half unrun and the
// stream yielded its empty slots), then the failure.
TEST_P(Conformance, ImapYieldsEveryResultBeforeAFailure) {
  constexpr std::size_t kN = 2000;
  Parallel p({.jobs = 2, .backend = backend(), .batch_size = 1});
  std::size_t yielded = 0;
  try {
    for (std::uint64_t r : p.imap(
             kN,
             [](std::size_t i) {
               if (i < 1000) {
                 std::this_thread::sleep_for(std::chrono::microseconds(100));
               }
               if (i == 1500) throw BadInput("bad 1500");
               return std::uint64_t(i) * 7 + 3;
             },
             /*window=*/kN)) {
      ASSERT_EQ(r, std::uint64_t(yielded) * 7 + 3) << "position " << yielded;
      ++yielded;
    }
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 1500u);
  }
  EXPECT_EQ(yielded, 1500u);
}

// Leaving an imap loop early cancels the rest: no task runs after the range
// is gone, and far from every task ran.
TEST_P(Conformance, LeavingAnImapLoopEarlyLeavesNothingRunning) {
  constexpr std::size_t kN = 20000;
  SharedCounters<std::uint32_t> runs(1);
  Parallel p({.jobs = 2, .backend = backend(), .batch_size = 1});
  {
    auto stream = p.imap(
        kN,
        [&](std::size_t i) {
          runs[0].fetch_add(1);
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          return i;
        },
        /*window=*/256);
    for (std::size_t r : stream) {
      if (r == 10) break;
    }
  }
  const std::uint64_t after = Summed(runs.Local())[0];
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Summed(runs.Local())[0], after) << "tasks ran after the loop";
  EXPECT_LT(after, kN / 2);
}

// The peak resident memory of this process in KiB (VmHWM), after
// resetting it; -1 where /proc cannot tell.
long PeakRssKiB(bool reset) {
  if (reset) {
    std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
    if (f == nullptr) return -1;
    std::fputs("5", f);
    std::fclose(f);
  }
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib;
}

// 10M results streamed through imap never exist at once: the caller's peak
// memory grows by far less than the 80 MB they would take.
TEST_P(Conformance, ImapMemoryStaysFlat) {
  constexpr std::size_t kN = 10'000'000;
  Parallel p({.jobs = 2, .backend = backend()});
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's shadow memory and quarantine grow the RSS";
#endif
  const long before = PeakRssKiB(/*reset=*/true);
  if (before < 0) GTEST_SKIP() << "no /proc/self/clear_refs here";
  std::uint64_t sum = 0;
  for (std::uint64_t r : p.imap(
           kN, [](std::size_t i) { return std::uint64_t(i) ^ 0x5bd1e995u; })) {
    sum += r;
  }
  const long grown = PeakRssKiB(/*reset=*/false) - before;
  std::uint64_t expected = 0;
  for (std::size_t i = 0; i < kN; ++i)
    expected += std::uint64_t(i) ^ 0x5bd1e995u;
  EXPECT_EQ(sum, expected);
  EXPECT_LT(grown, 24 * 1024) << "KiB of peak memory for 10M streamed results";
}

// map's results are held once: 10M results need little more memory than the
// vector that holds them (the process backend frees its shared copy of the
// results as it copies them back).
TEST_P(Conformance, MapHoldsItsResultsOnce) {
  constexpr std::size_t kN = 10'000'000;
  Parallel p({.jobs = 2, .backend = backend()});
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's shadow memory and quarantine grow the RSS";
#endif
  if (backend() == "mpi") {
    // Known limit (README, MPI): every rank receives the other ranks'
    // encoded results whole before storing them, 2x to 3x the results.
    GTEST_SKIP() << "mpi ranks hold the exchanged results twice";
  }
  const long before = PeakRssKiB(/*reset=*/true);
  if (before < 0) GTEST_SKIP() << "no /proc/self/clear_refs here";
  std::vector<std::uint64_t> r =
      p.map(kN, [](std::size_t i) { return std::uint64_t(i) ^ 0x5bd1e995u; });
  const long grown = PeakRssKiB(/*reset=*/false) - before;
  ASSERT_EQ(r.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) {
    ASSERT_EQ(r[i], std::uint64_t(i) ^ 0x5bd1e995u) << "task " << i;
  }
  const long results_kib = static_cast<long>(kN * sizeof(std::uint64_t) / 1024);
  EXPECT_LT(grown, results_kib + results_kib / 10)
      << "KiB of peak memory for " << results_kib << " KiB of results";
}

// retries: a flaky task succeeds on a later attempt and its result is kept;
// a task that always fails is run retries + 1 times and says so; retry_on
// limits which exception types are retried.
TEST_P(Conformance, RetriesRunAFailedTaskAgain) {
  constexpr std::size_t kN = 200;
  {
    SharedCounters<std::uint32_t> runs(kN);
    Parallel p(
        {.jobs = 2, .backend = backend(), .batch_size = 7, .retries = 2});
    std::vector<int> r = p.map(kN, [&](std::size_t i) {
      const std::uint32_t attempt = runs[i].fetch_add(1) + 1;
      if (i == 50 && attempt < 3) throw BadInput("flaky");
      return int(i);
    });
    ASSERT_EQ(r.size(), kN);
    for (std::size_t i = 0; i < kN; ++i) ASSERT_EQ(r[i], int(i));
    std::vector<std::uint64_t> expected(kN, 1);
    expected[50] = 3;
    EXPECT_EQ(Summed(runs.Local()), expected);
  }
  {
    SharedCounters<std::uint32_t> runs(kN);
    Parallel p({.jobs = 2, .backend = backend(), .retries = 2});
    try {
      p.for_each(kN, [&](std::size_t i) {
        runs[i].fetch_add(1);
        if (i == 77) throw BadInput("always");
      });
      ADD_FAILURE() << "expected TaskError";
    } catch (const TaskError& e) {
      EXPECT_EQ(e.index(), 77u);
      EXPECT_EQ(e.message(), "always (failed 3 attempts)");
    }
    EXPECT_EQ(Summed(runs.Local())[77], 3u);
  }
  {
    SharedCounters<std::uint32_t> runs(kN);
    Parallel p({.jobs = 2,
                .backend = backend(),
                .retries = 5,
                .retry_on = {"std::logic_error"}});
    try {
      p.for_each(kN, [&](std::size_t i) {
        runs[i].fetch_add(1);
        if (i == 9) throw BadInput("not retried");
      });
      ADD_FAILURE() << "expected TaskError";
    } catch (const TaskError& e) {
      EXPECT_EQ(e.index(), 9u);
      EXPECT_EQ(e.message(), "not retried");
    }
    EXPECT_EQ(Summed(runs.Local())[9], 1u);
  }
}

}  // namespace
}  // namespace fanout::testing
