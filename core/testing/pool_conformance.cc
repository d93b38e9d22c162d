// The pool's part of the backend contract (core/pool.h): every backend runs
// submitted tasks, futures, dependencies and cancellation the same way.
// Counters live in MAP_SHARED memory and are read through Summed(), as in
// conformance.cc, so forked workers and separate ranks count too.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <ranges>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/pool.h"
#include "core/testing/conformance.h"
#include "core/testing/types.h"

namespace fanout::testing {
namespace {

using fanout_conformance::BadInput;
using fanout_conformance::Label;
using Clock = std::chrono::steady_clock;

// A counter array in MAP_SHARED memory (threads and forked workers see it).
class Shared {
 public:
  explicit Shared(std::size_t n) : n_(std::max<std::size_t>(n, 1)) {
    void* p = mmap(nullptr, n_ * sizeof(std::atomic<std::uint64_t>),
                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<std::atomic<std::uint64_t>*>(p);
    for (std::size_t i = 0; i < n_; ++i) {
      new (&data_[i]) std::atomic<std::uint64_t>(0);
    }
  }
  ~Shared() { munmap(data_, n_ * sizeof(std::atomic<std::uint64_t>)); }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  std::atomic<std::uint64_t>& operator[](std::size_t i) const {
    return data_[i];
  }
  std::vector<std::uint64_t> Local() const {
    std::vector<std::uint64_t> out(n_);
    for (std::size_t i = 0; i < n_; ++i) out[i] = data_[i].load();
    return out;
  }

 private:
  std::size_t n_;
  std::atomic<std::uint64_t>* data_;
};

// The processes whose parent is this one (zombies included).
int ChildProcesses() {
  int count = 0;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return -1;
  const pid_t me = getpid();
  while (dirent* e = readdir(dir)) {
    const pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    const std::size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    pid_t ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 &&
        ppid == me) {
      ++count;
    }
  }
  closedir(dir);
  return count;
}

std::uint64_t Mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

// A random graph: each task after the first waits for up to 3 earlier ones.
std::vector<std::vector<std::size_t>> RandomGraph(std::size_t n,
                                                  std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::size_t>> inputs(n);
  for (std::size_t i = 1; i < n; ++i) {
    const std::size_t k = rng() % 4;
    for (std::size_t j = 0; j < k; ++j) inputs[i].push_back(rng() % i);
  }
  return inputs;
}

// Submits task(i, inputs' values...) with the futures of its inputs `in`.
template <class F>
void SubmitNode(Pool& pool, const F& task, std::size_t i,
                const std::vector<std::size_t>& in,
                std::vector<Future<std::uint64_t>>* f) {
  std::vector<Future<std::uint64_t>>& v = *f;
  switch (in.size()) {
    case 0:
      v.push_back(pool.submit(task, std::uint64_t{i}));
      break;
    case 1:
      v.push_back(pool.submit(task, std::uint64_t{i}, v[in[0]]));
      break;
    case 2:
      v.push_back(pool.submit(task, std::uint64_t{i}, v[in[0]], v[in[1]]));
      break;
    default:
      v.push_back(
          pool.submit(task, std::uint64_t{i}, v[in[0]], v[in[1]], v[in[2]]));
  }
}

TEST_P(Conformance, PoolSubmitAndGetTenThousandTasks) {
  constexpr std::size_t kN = 10'000;
  Shared runs(kN);
  Pool pool({.jobs = 2, .backend = backend()});
  std::vector<Future<std::uint64_t>> futures;
  futures.reserve(kN);
  for (std::size_t i = 0; i < kN; ++i) {
    futures.push_back(pool.submit(
        [&runs](std::size_t k) {
          runs[k].fetch_add(1);
          return Mix(k);
        },
        i));
  }
  for (std::size_t i = 0; i < kN; ++i) {
    ASSERT_EQ(futures[i].id(), i);
    ASSERT_EQ(futures[i].get(), Mix(i)) << "task " << i;
  }
  pool.close();
  EXPECT_EQ(Summed(runs.Local()), std::vector<std::uint64_t>(kN, 1))
      << "every task ran exactly once";
}

TEST_P(Conformance, PoolAsCompletedYieldsEachFutureOnce) {
  constexpr std::size_t kN = 300;
  Pool pool({.jobs = 2, .backend = backend()});
  std::vector<Future<int>> futures;
  for (std::size_t i = 0; i < kN; ++i) {
    futures.push_back(pool.submit(
        [](int k) {
          // Later tasks are quicker: completion order differs from
          // submission order on backends that run tasks side by side.
          std::this_thread::sleep_for(std::chrono::microseconds((kN - k) * 3));
          return k * 7;
        },
        static_cast<int>(i)));
  }
  std::multiset<int> seen;
  std::size_t yielded = 0;
  for (Future<int>& f : as_completed(futures)) {
    ASSERT_TRUE(f.ready());
    seen.insert(f.get());
    ++yielded;
  }
  EXPECT_EQ(yielded, kN);
  std::multiset<int> expected;
  for (std::size_t i = 0; i < kN; ++i) expected.insert(static_cast<int>(i) * 7);
  EXPECT_EQ(seen, expected);

  // wait_any: a future that ended, and an empty list refused.
  std::vector<Future<int>> two = {pool.submit([] { return 1; }),
                                  pool.submit([] { return 2; })};
  const std::size_t k = wait_any(two);
  ASSERT_LT(k, 2u);
  EXPECT_TRUE(two[k].ready());
  EXPECT_EQ(two[k].get(), static_cast<int>(k) + 1);
  std::vector<Future<int>> none;
  EXPECT_THROW(wait_any(none), UsageError);
  wait_all(two);
  EXPECT_TRUE(two[0].ready() && two[1].ready());
}

// A random graph of 2,000 tasks, each combining the values of up to three
// earlier ones, gives what computing it in order gives.
TEST_P(Conformance, PoolRandomDagMatchesTheReference) {
  constexpr std::size_t kN = 2000;
  const std::vector<std::vector<std::size_t>> inputs =
      RandomGraph(kN, 20261203);
  const auto node = [](std::uint64_t i, auto... in) -> std::uint64_t {
    std::uint64_t h = Mix(i + 1);
    ((h = Mix(h ^ in)), ...);
    return h;
  };
  std::vector<std::uint64_t> expected(kN);
  for (std::size_t i = 0; i < kN; ++i) {
    std::uint64_t h = Mix(i + 1);
    for (std::size_t in : inputs[i]) h = Mix(h ^ expected[in]);
    expected[i] = h;
  }
  Shared runs(kN);
  for (int jobs : {1, 2}) {
    Pool pool({.jobs = jobs, .backend = backend()});
    std::vector<Future<std::uint64_t>> f;
    f.reserve(kN);
    for (std::size_t i = 0; i < kN; ++i) {
      const auto task = [&runs, node](std::uint64_t k, auto... in) {
        runs[k].fetch_add(1);
        return node(k, in...);
      };
      const std::vector<std::size_t>& in = inputs[i];
      SubmitNode(pool, task, i, in, &f);
    }
    // Backwards: the last tasks first, while their inputs may still run.
    for (std::size_t i = kN; i-- > 0;) {
      ASSERT_EQ(f[i].get(), expected[i]) << "task " << i << ", jobs " << jobs;
    }
  }
  EXPECT_EQ(Summed(runs.Local()), std::vector<std::uint64_t>(kN, 2));
}

// A failed input fails exactly its dependents, each naming it; the others
// run. Tasks whose input failed never run.
TEST_P(Conformance, PoolFailedInputFailsExactlyItsDependents) {
  Shared runs(6);
  Pool pool({.jobs = 2, .backend = backend()});
  auto count = [&runs](int k) {
    runs[static_cast<std::size_t>(k)].fetch_add(1);
  };
  Future<int> a = pool.submit([count] {
    count(0);
    return 1;
  });
  Future<int> b = pool.submit([count]() -> int {
    count(1);
    throw BadInput("b broke");
  });
  Future<int> c = pool.submit(
      [count](int x) {
        count(2);
        return x + 1;
      },
      b);
  Future<int> d = pool.submit(
      [count](int x) {
        count(3);
        return x + 1;
      },
      c);
  Future<int> e = pool.submit(
      [count](int x) {
        count(4);
        return x + 10;
      },
      a);
  Future<int> g = pool.submit(
      [count](int x, int y) {
        count(5);
        return x + y;
      },
      a, c);
  // Inputs that ended before the submit: a failed one first, then others.
  b.wait();
  e.wait();
  Future<int> late = pool.submit(
      [count](int x, int y, int z) {
        count(5);
        return x + y + z;
      },
      b, a, e);
  try {
    late.get();
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& err) {
    EXPECT_NE(err.message().find("its input, task 1, failed"),
              std::string::npos)
        << err.what();
  }
  EXPECT_EQ(e.get(), 11);
  EXPECT_EQ(a.get(), 1);
  try {
    b.get();
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& err) {
    EXPECT_EQ(err.index(), 1u);
    EXPECT_EQ(err.type(), "fanout_conformance::BadInput");
    EXPECT_EQ(err.message(), "b broke");
  }
  const auto expect_input = [](Future<int>& f, std::uint64_t self,
                               std::uint64_t input) {
    try {
      f.get();
      ADD_FAILURE() << "expected TaskError for task " << self;
    } catch (const TaskError& err) {
      EXPECT_EQ(err.index(), self);
      EXPECT_NE(err.message().find("not run: its input, task " +
                                   std::to_string(input) + ", failed"),
                std::string::npos)
          << err.what();
      EXPECT_NE(err.message().find("b broke"), std::string::npos) << err.what();
    }
  };
  expect_input(c, 2, 1);
  expect_input(d, 3, 2);
  expect_input(g, 5, 2);
  pool.close();
  EXPECT_EQ(Summed(runs.Local()),
            (std::vector<std::uint64_t>{1, 1, 0, 0, 1, 0}));
}

// A task cancelled before it started never runs; its dependents fail.
TEST_P(Conformance, PoolCancelledQueuedTaskNeverRuns) {
  constexpr std::size_t kN = 40;
  Shared runs(kN);
  Shared release(1);
  Pool pool({.jobs = 1, .backend = backend()});
  // One worker, held by the first task until the others are queued and some
  // cancelled (on sequential and mpi ranks nothing runs before a wait).
  Future<int> blocker = pool.submit([&release, &runs] {
    runs[0].fetch_add(1);
    const auto until = Clock::now() + std::chrono::seconds(10);
    while (release[0].load() == 0 && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return 0;
  });
  std::vector<Future<int>> f;
  for (std::size_t i = 1; i < kN; ++i) {
    f.push_back(pool.submit(
        [&runs](std::size_t k) {
          runs[k].fetch_add(1);
          return static_cast<int>(k);
        },
        i));
  }
  Future<int> dependent = pool.submit([](int x) { return x; }, f[4]);
  for (std::size_t i = 1; i < kN; i += 2) {
    EXPECT_TRUE(f[i - 1].cancel()) << "task " << i;
    EXPECT_TRUE(f[i - 1].cancelled());
    EXPECT_FALSE(f[i - 1].cancel()) << "a second cancel does nothing";
  }
  release[0].store(1);
  EXPECT_EQ(blocker.get(), 0);
  std::vector<std::uint64_t> expected(kN, 1);
  for (std::size_t i = 1; i < kN; ++i) {
    if (i % 2 == 1) {
      EXPECT_THROW(f[i - 1].get(), CancelledError) << "task " << i;
      expected[i] = 0;
    } else {
      EXPECT_EQ(f[i - 1].get(), static_cast<int>(i));
    }
  }
  try {
    dependent.get();
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_NE(e.message().find("task 5, was cancelled"), std::string::npos)
        << e.what();
  }
  pool.close();
  EXPECT_EQ(Summed(runs.Local()), expected) << "cancelled tasks never ran";
}

// A running task that is cancelled: its future reports it at once; on
// process its worker is killed and the pool goes on, elsewhere the task
// sees stop_requested().
TEST_P(Conformance, PoolCancelledRunningTaskStopsOrSeesIt) {
  Shared started(1);
  Shared saw_stop(1);
  Shared finished(1);
  Pool pool({.jobs = 2, .backend = backend()});
  // On process the task does not look: its worker must be killed.
  const bool looks = backend() != "process";
  Future<int> f = pool.submit([&, looks] {
    started[0].fetch_add(1);
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (!(looks && this_task::stop_requested()) && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (this_task::stop_requested()) saw_stop[0].fetch_add(1);
    finished[0].fetch_add(1);
    return 5;
  });
  bool at_once = false;
  std::thread canceller([&] {
    // On mpi ranks the task runs on one rank only: the others give up
    // waiting for it to start and cancel their copy (every rank cancels).
    const auto until = Clock::now() + std::chrono::milliseconds(500);
    while (started[0].load() == 0 && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const bool cancelled = f.cancel();
    at_once = cancelled && f.cancelled() && f.ready();
  });
  const auto begin = Clock::now();
  f.wait();
  canceller.join();
  // On mpi ranks a running task's outcome is the running rank's, on every
  // rank: cancelled at the end of its call, not at once.
  if (processes() == 1) {
    EXPECT_TRUE(at_once) << "the future reports cancelled as cancel() returns";
  }
  EXPECT_TRUE(f.cancelled());
  EXPECT_THROW(f.get(), CancelledError);
  // The pool goes on.
  Future<int> after = pool.submit([] { return 6; });
  EXPECT_EQ(after.get(), 6);
  pool.close();
  EXPECT_LT(Clock::now() - begin, std::chrono::seconds(15));
  const std::uint64_t saw = Summed(saw_stop.Local())[0];
  const std::uint64_t ended = Summed(finished.Local())[0];
  if (backend() == "process") {
    EXPECT_EQ(ended, 0u) << "its worker was killed while it ran";
  } else {
    EXPECT_EQ(saw, 1u) << "the running task saw stop_requested()";
    EXPECT_EQ(ended, 1u);
  }
}

// Destroying a pool with work pending cancels what has not started, waits
// for what runs and leaves nothing running: no task starts afterwards, no
// worker process is left, and the futures still answer.
TEST_P(Conformance, PoolDestroyedWithWorkPendingLeavesNothingRunning) {
  constexpr std::size_t kN = 2000;
  Shared runs(1);
  std::vector<Future<int>> f;
  const int children_before = ChildProcesses();
  {
    Pool pool({.jobs = 2, .backend = backend()});
    for (std::size_t i = 0; i < kN; ++i) {
      f.push_back(pool.submit(
          [&runs](std::size_t k) {
            runs[0].fetch_add(1);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            return static_cast<int>(k);
          },
          i));
    }
    f[0].wait();
    // Pending for sure: on sequential and mpi ranks nothing runs before a
    // wait, and a wait runs what was queued.
    for (std::size_t i = 0; i < 100; ++i) {
      f.push_back(pool.submit([&runs] {
        runs[0].fetch_add(1);
        return 0;
      }));
    }
  }
  const std::uint64_t ran = Summed(runs.Local())[0];
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Summed(runs.Local())[0], ran) << "a task ran after the pool";
  EXPECT_LT(ran, kN + 100);
  EXPECT_EQ(ChildProcesses(), children_before) << "a worker was left behind";
  std::size_t done = 0;
  std::size_t cancelled = 0;
  for (Future<int>& x : f) {
    ASSERT_TRUE(x.ready());
    if (x.cancelled()) {
      ++cancelled;
      EXPECT_THROW(x.get(), CancelledError);
    } else {
      ++done;
      x.get();
    }
  }
  EXPECT_EQ(done + cancelled, kN + 100);
  EXPECT_GT(cancelled, 0u);
}

TEST_P(Conformance, PoolRefusesBadUse) {
  Pool pool({.jobs = 2, .backend = backend()});
  Future<int> a = pool.submit([] { return 1; });
  EXPECT_EQ(a.get(), 1);
  try {
    a.get();
    ADD_FAILURE() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("get() called twice for task 0"),
              std::string::npos)
        << e.what();
  }
  // A consumed future cannot feed a task; an empty one is refused.
  EXPECT_THROW(pool.submit([](int x) { return x; }, a), UsageError);
  EXPECT_THROW(pool.submit([](int x) { return x; }, Future<int>()), UsageError);
  Future<int> empty;
  EXPECT_THROW(empty.get(), UsageError);
  // A future of another pool.
  Pool other({.jobs = 1, .backend = backend()});
  Future<int> foreign = other.submit([] { return 3; });
  try {
    pool.submit([](int x) { return x; }, foreign);
    ADD_FAILURE() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("of another pool"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(foreign.get(), 3);
  // Options a submitted task cannot honour.
  {
    Pool timed({.jobs = 1,
                .backend = backend(),
                .timeout = std::chrono::milliseconds(100)});
    EXPECT_THROW(timed.submit([] { return 0; }), UsageError);
  }
  pool.close();
  try {
    pool.submit([] { return 0; });
    ADD_FAILURE() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("closed"), std::string::npos)
        << e.what();
  }
}

// A result type that cannot cross to another process is refused at submit()
// where tasks run elsewhere, before anything runs; elsewhere it works.
struct NotSerializable {
  int v = 0;
  std::string s;
};

TEST_P(Conformance, PoolRefusesResultsThatCannotCrossAtSubmit) {
  Shared runs(1);
  Pool pool({.jobs = 2, .backend = backend()});
  const auto task = [&runs] {
    runs[0].fetch_add(1);
    return NotSerializable{4, "x"};
  };
  if (pool.executor().shares_memory()) {
    EXPECT_EQ(pool.submit(task).get().v, 4);
    EXPECT_EQ(Summed(runs.Local())[0], processes());
  } else {
    try {
      pool.submit(task);
      ADD_FAILURE() << "expected UsageError";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("cannot cross a process boundary"),
                std::string::npos)
          << e.what();
    }
    pool.close();
    EXPECT_EQ(Summed(runs.Local())[0], 0u);
  }
}

// Issue 23 item 12: a serializable result without a default constructor
// (Label: cereal's load_and_construct) comes back from a submitted task on
// every backend, and feeds a dependent task.
TEST_P(Conformance, PoolResultsWithoutADefaultConstructor) {
  Pool pool({.jobs = 2, .backend = backend()});
  std::vector<Future<Label>> futures;
  for (int i = 0; i < 50; ++i) {
    futures.push_back(pool.submit(
        [](int k) { return Label("label " + std::to_string(k)); }, i));
  }
  Future<std::size_t> length =
      pool.submit([](const Label& l) { return l.text().size(); }, futures[42]);
  for (int i = 0; i < 50; ++i) {
    if (i == 42) continue;
    ASSERT_EQ(futures[i].get(), Label("label " + std::to_string(i))) << i;
  }
  EXPECT_EQ(length.get(), std::string("label 42").size());
  EXPECT_EQ(futures[42].get(), Label("label 42"));
  pool.close();
}

// Retries apply to submitted tasks as to map's.
TEST_P(Conformance, PoolRetriesAFailedTask) {
  Shared runs(1);
  Pool pool({.jobs = 2, .backend = backend(), .retries = 2});
  Future<int> f = pool.submit([&runs] {
    if (runs[0].fetch_add(1) < 2) throw BadInput("flaky");
    return 9;
  });
  EXPECT_EQ(f.get(), 9);
  pool.close();
  EXPECT_EQ(Summed(runs.Local())[0], 3u);
}

// A pool's bulk calls run on the same backend and give map's answers.
TEST_P(Conformance, PoolMapRunsOnTheSameEngine) {
  Pool pool({.jobs = 2, .backend = backend()});
  Future<long long> side = pool.submit([] { return 42LL; });
  std::vector<long long> r = pool.map(1000, [](std::size_t i) {
    return static_cast<long long>(i) * static_cast<long long>(i);
  });
  ASSERT_EQ(r.size(), 1000u);
  for (std::size_t i = 0; i < r.size(); ++i)
    ASSERT_EQ(r[i], static_cast<long long>(i) * static_cast<long long>(i));
  EXPECT_EQ(pool.map_reduce(
                100, [](std::size_t i) { return static_cast<long long>(i); },
                0LL, std::plus<>()),
            4950);
  EXPECT_EQ(side.get(), 42);
}

// find_first: the lowest hit on every backend; a hit skips the tasks above
// it; a failure counts only below the answer.
TEST_P(Conformance, FindFirstGivesTheLowestHit) {
  constexpr std::size_t kN = 100'000;
  for (std::size_t batch : {0, 1, 997}) {
    Shared runs(1);
    Parallel p({.jobs = 2, .backend = backend(), .batch_size = batch});
    const auto pred = [&runs](std::size_t i) {
      runs[0].fetch_add(1);
      return i == 77'777 || i == 50'001 || i == 99'999;
    };
    EXPECT_EQ(p.find_first(kN, pred), std::optional<std::size_t>(50'001))
        << "batch " << batch;
    EXPECT_LT(Summed(runs.Local())[0], kN) << "no task was skipped";
  }
  {
    Shared runs(1);
    Parallel p({.jobs = 2, .backend = backend()});
    EXPECT_EQ(p.find_first(kN,
                           [&runs](std::size_t) {
                             runs[0].fetch_add(1);
                             return false;
                           }),
              std::nullopt);
    EXPECT_EQ(Summed(runs.Local())[0], kN) << "with no hit every task runs";
  }
  Parallel p({.jobs = 2, .backend = backend()});
  EXPECT_EQ(p.find_first(0, [](std::size_t) { return true; }), std::nullopt);
  // A task that throws above the answer is beyond what find_if reaches.
  EXPECT_EQ(p.find_first(kN,
                         [](std::size_t i) {
                           if (i == 90'000) throw BadInput("above");
                           return i == 1234;
                         }),
            std::optional<std::size_t>(1234));
  // One below it fails the call, named.
  try {
    p.find_first(kN, [](std::size_t i) {
      if (i == 1000) throw BadInput("below");
      return i == 60'000;
    });
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 1000u);
    EXPECT_EQ(e.message(), "below");
  }
}

TEST_P(Conformance, AnyOfStopsAtTheFirstHit) {
  constexpr std::size_t kN = 100'000;
  Shared runs(1);
  Parallel p({.jobs = 2, .backend = backend()});
  EXPECT_TRUE(p.any_of(kN, [&runs](std::size_t i) {
    runs[0].fetch_add(1);
    return i % 10'000 == 4321;
  }));
  EXPECT_LT(Summed(runs.Local())[0], kN) << "the first hit stops the others";
  Shared all(1);
  EXPECT_FALSE(p.any_of(kN, [&all](std::size_t) {
    all[0].fetch_add(1);
    return false;
  }));
  EXPECT_EQ(Summed(all.Local())[0], kN);
  EXPECT_FALSE(p.any_of(0, [](std::size_t) { return true; }));
  // With a hit, a failure elsewhere does not matter; without one it fails.
  EXPECT_TRUE(p.any_of(kN, [](std::size_t i) {
    if (i == 5) throw BadInput("x");
    return i == 80'000;
  }));
  EXPECT_THROW(p.any_of(kN,
                        [](std::size_t i) -> bool {
                          if (i == 5) throw BadInput("x");
                          return false;
                        }),
               TaskError);
}

// A single-pass input range: 0 .. n-1, counting what was read.
class Counter {
 public:
  explicit Counter(std::uint64_t n) : n_(n) {}
  class iterator {
   public:
    using value_type = std::uint64_t;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Counter* c) : c_(c) {}
    std::uint64_t operator*() const { return c_->next_; }
    iterator& operator++() {
      ++c_->next_;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const {
      return c_->next_ >= c_->n_;
    }

   private:
    Counter* c_ = nullptr;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }
  std::uint64_t read() const { return next_; }

 private:
  std::uint64_t n_;
  std::uint64_t next_ = 0;
};

long PoolPeakRssKiB(bool reset) {
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

// imap over a generator of a million items nobody counted: every result in
// order, and the caller's memory stays flat.
TEST_P(Conformance, ImapOverASinglePassInputKeepsMemoryFlat) {
  constexpr std::uint64_t kN = 1'000'000;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's shadow memory and quarantine grow the RSS";
#endif
  Parallel p({.jobs = 2, .backend = backend()});
  Counter input(kN);
  const long before = PoolPeakRssKiB(/*reset=*/true);
  if (before < 0) GTEST_SKIP() << "no /proc/self/clear_refs here";
  std::uint64_t expected_index = 0;
  std::uint64_t sum = 0;
  for (std::uint64_t r :
       p.imap(input, [](std::uint64_t x) { return x ^ 0x5bd1e995u; })) {
    ASSERT_EQ(r, expected_index ^ 0x5bd1e995u) << "item " << expected_index;
    sum += r;
    ++expected_index;
  }
  const long grown = PoolPeakRssKiB(/*reset=*/false) - before;
  EXPECT_EQ(expected_index, kN);
  EXPECT_EQ(input.read(), kN);
  std::uint64_t want = 0;
  for (std::uint64_t i = 0; i < kN; ++i) want += i ^ 0x5bd1e995u;
  EXPECT_EQ(sum, want);
  EXPECT_LT(grown, 24 * 1024) << "KiB of peak memory for 1M streamed items";
}

TEST_P(Conformance, ImapOverARangeBoundsWhatIsInFlight) {
  // Lines of a stream, each an input; at most max_in_flight tasks pending.
  std::stringstream lines;
  for (int i = 0; i < 200; ++i) lines << i << "\n";
  Parallel p(
      {.jobs = 2, .backend = backend(), .batch_size = 1, .max_in_flight = 3});
  Counter input(200);
  std::uint64_t yielded = 0;
  for (std::uint64_t r : p.imap(input, [](std::uint64_t x) { return x * 2; })) {
    EXPECT_EQ(r, yielded * 2);
    ++yielded;
    // The item yielded, the three in flight, and one being read.
    EXPECT_LE(input.read(), yielded + 3) << "read too far ahead";
  }
  EXPECT_EQ(yielded, 200u);
  long long total = 0;
  for (long long r : p.imap(std::views::istream<long long>(lines),
                            [](long long x) { return x + 1; })) {
    total += r;
  }
  EXPECT_EQ(total, 200LL * 199 / 2 + 200);
  // Unordered: every position once, with its value.
  Counter again(1000);
  std::vector<int> seen(1000, 0);
  for (auto [i, r] :
       p.imap_unordered(again, [](std::uint64_t x) { return x + 7; })) {
    ASSERT_LT(i, 1000u);
    EXPECT_EQ(r, i + 7);
    ++seen[i];
  }
  EXPECT_EQ(seen, std::vector<int>(1000, 1));
  EXPECT_THROW(Parallel({.backend = backend(), .max_in_flight = 0}),
               UsageError);
}

TEST_P(Conformance, ImapOverARangeThrowsAtTheFailedItem) {
  Parallel p({.jobs = 2, .backend = backend()});
  Counter input(5000);
  std::uint64_t yielded = 0;
  try {
    for (std::uint64_t r : p.imap(input, [](std::uint64_t x) {
           if (x == 3210) throw BadInput("item 3210");
           return x;
         })) {
      EXPECT_EQ(r, yielded);
      ++yielded;
    }
    ADD_FAILURE() << "expected TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.index(), 3210u);
    EXPECT_EQ(e.type(), "fanout_conformance::BadInput");
    EXPECT_EQ(e.message(), "item 3210");
  }
  EXPECT_EQ(yielded, 3210u);
}

TEST_P(Conformance, LeavingAnImapOverARangeEarlyCancelsTheRest) {
  Shared runs(1);
  Parallel p({.jobs = 2, .backend = backend(), .batch_size = 1});
  Counter input(100'000);
  {
    auto stream = p.imap(input, [&runs](std::uint64_t x) {
      runs[0].fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      return x;
    });
    for (std::uint64_t r : stream) {
      if (r == 20) break;
    }
  }
  const std::uint64_t after = Summed(runs.Local())[0];
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Summed(runs.Local())[0], after) << "tasks ran after the loop";
  EXPECT_LT(input.read(), 1000u);
}

// Work submitted while a long task runs starts without waiting for it
// (process: a new generation in the places free), where workers can run
// side by side; sequential and mpi ranks run generations one at a time.
TEST_P(Conformance, PoolStartsNewWorkWhileALongTaskRuns) {
  if (backend() == "sequential" || backend() == "mpi") {
    GTEST_SKIP() << backend() << " runs one call at a time";
  }
  Shared started(1);
  Shared release(1);
  Pool pool({.jobs = 2, .backend = backend()});
  Future<int> slow = pool.submit([&] {
    started[0].store(1);
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (release[0].load() == 0 && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return 1;
  });
  while (started[0].load() == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (int round = 0; round < 3; ++round) {
    Future<int> quick = pool.submit([round] { return 10 + round; });
    ASSERT_TRUE(quick.wait_for(std::chrono::seconds(10)))
        << "a quick task waited for the slow one (round " << round << ")";
    EXPECT_EQ(quick.get(), 10 + round);
  }
  EXPECT_FALSE(slow.ready());
  release[0].store(1);
  EXPECT_EQ(slow.get(), 1);
}

// Issue 20 item 7: a checkpointed pool journals finished tasks by
// submission number. A graph of 2000 tasks killed with SIGKILL part way
// resumes to the same answer, running only the tasks not journaled (each
// once, counted); a third run reads every value back and runs none. A task
// that is not the one recorded at its number, a bulk call on such a pool and
// a result the journal cannot hold are refused. (Forks the caller: not on
// mpi ranks, where tests/mpi covers checkpoints.)
TEST_P(Conformance, PoolCheckpointResumesAGraphKilledHalfway) {
  if (backend() == "mpi") GTEST_SKIP() << "forks the caller";
#if defined(__SANITIZE_THREAD__)
  // The test process has threads when it forks the run to be killed.
  GTEST_SKIP() << "ThreadSanitizer does not support fork in a process with "
                  "threads";
#endif
  constexpr std::size_t kN = 2000;
  const std::vector<std::vector<std::size_t>> inputs = RandomGraph(kN, 7);
  std::vector<std::uint64_t> expected(kN);
  std::uint64_t answer = 0;
  for (std::size_t i = 0; i < kN; ++i) {
    std::uint64_t h = Mix(i + 1);
    for (std::size_t in : inputs[i]) h = Mix(h ^ expected[in]);
    expected[i] = h;
    answer += h;
  }
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") +
                           "/pool_dag_" + std::string(backend()) + ".ckpt";
  std::remove(path.c_str());
  Shared runs(1);  // tasks run, over every process
  // Runs the graph on a checkpointed pool; `pause` ms per task. The sum of
  // every value, and the tasks read back.
  const auto graph = [&](int pause, std::size_t* resumed) {
    Pool pool({.jobs = 2, .backend = backend(), .checkpoint = path});
    const auto task = [&runs, pause](std::uint64_t k, auto... in) {
      runs[0].fetch_add(1);
      if (pause > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(pause));
      std::uint64_t h = Mix(k + 1);
      ((h = Mix(h ^ in)), ...);
      return h;
    };
    std::vector<Future<std::uint64_t>> f;
    f.reserve(kN);
    for (std::size_t i = 0; i < kN; ++i) {
      const std::vector<std::size_t>& in = inputs[i];
      SubmitNode(pool, task, i, in, &f);
    }
    std::uint64_t sum = 0;
    for (Future<std::uint64_t>& x : f) sum += x.get();
    *resumed = pool.resumed();
    return sum;
  };

  // 1. In a child, killed with SIGKILL once a quarter of the records are in
  // the file (a record is at least 32 bytes).
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    setpgid(0, 0);
    std::size_t ignored = 0;
    graph(2, &ignored);
    _exit(0);
  }
  setpgid(child, child);
  const auto until = Clock::now() + std::chrono::seconds(120);
  std::ifstream::pos_type size = 0;
  while (Clock::now() < until) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    size = in ? in.tellg() : std::ifstream::pos_type(0);
    if (size >= static_cast<std::ifstream::pos_type>(kN / 4 * 32)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(-child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the first run ended before the kill";
  const std::uint64_t first_runs = runs[0].load();
  // process: the killed run's forked workers share its lock on the file
  // until they are gone too (they die with their caller, a moment later).
  {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const auto by = Clock::now() + std::chrono::seconds(30);
    while (flock(fd, LOCK_EX | LOCK_NB) != 0 && Clock::now() < by) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    close(fd);  // releases the lock if it was taken
  }

  // 2. The rerun: the same answer; every task not read back runs once.
  runs[0].store(0);
  std::size_t resumed = 0;
  EXPECT_EQ(graph(0, &resumed), answer);
  EXPECT_GT(resumed, kN / 8) << "tasks read back from " << path;
  EXPECT_LT(resumed, kN);
  EXPECT_LE(resumed, first_runs);
  EXPECT_EQ(runs[0].load(), kN - resumed) << "tasks run by the rerun";

  // 3. Everything is in the file now: nothing runs.
  runs[0].store(0);
  EXPECT_EQ(graph(0, &resumed), answer);
  EXPECT_EQ(resumed, kN);
  EXPECT_EQ(runs[0].load(), 0u);

  // Another task at number 0, a bulk call, a result it cannot hold.
  {
    Pool pool({.jobs = 2, .backend = backend(), .checkpoint = path});
    try {
      pool.submit([](std::uint64_t k) { return k; }, std::uint64_t{0});
      ADD_FAILURE() << "expected UsageError";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(
                    "task 0 is not the task the checkpoint recorded as task 0"),
                std::string::npos)
          << e.what();
    }
    try {
      pool.map(4, [](std::size_t i) { return i; });
      ADD_FAILURE() << "expected UsageError";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("a bulk call cannot share the file"),
                std::string::npos)
          << e.what();
    }
    try {
      pool.submit([] { return std::function<int()>([] { return 1; }); });
      ADD_FAILURE() << "expected UsageError";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("cannot be written to a checkpoint"),
                std::string::npos)
          << e.what();
    }
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace fanout::testing
