#include "core/shared.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/parallel.h"

namespace fanout {
namespace {

std::set<std::string> DevShm() {
  std::set<std::string> names;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) {
      // Open MPI's shared-memory segments come and go with the mpi tests
      // Bazel runs at the same time; they are not ours to account for.
      if (std::string(e->d_name).rfind("vader_segment", 0) == 0) continue;
      names.insert(e->d_name);
    }
    closedir(d);
  }
  return names;
}

struct Pair {
  long long a;
  long long b;
};

struct Big {
  char bytes[64];
};

// Atomic operations exist only for types the CPU handles lock-free: others
// would fall back to a lock table private to one process.
template <class V>
concept HasLoad = requires(V v) {
  v.load();
};
template <class V, class T>
concept HasFetchAdd = requires(V v, T t) {
  v.fetch_add(t);
};
template <class V>
concept HasLock = requires(V v) {
  v.lock();
};
static_assert(HasFetchAdd<SharedValue<long long>, long long>);
static_assert(HasFetchAdd<SharedValue<double>, double>);
static_assert(HasLoad<SharedValue<Pair>> ==
              std::atomic_ref<Pair>::is_always_lock_free);
static_assert(HasLock<SharedValue<Pair>>);
static_assert(!HasLoad<SharedValue<Big>>);
static_assert(HasLock<SharedValue<Big>>);
static_assert(!HasFetchAdd<SharedValue<Pair>, Pair>);

TEST(SharedValueTest, LoadStoreExchangeCompareExchange) {
  SharedValue<int> v(1);
  EXPECT_EQ(v.load(), 1);
  v.store(5);
  EXPECT_EQ(v.exchange(7), 5);
  int expected = 6;
  EXPECT_FALSE(v.compare_exchange(expected, 9));
  EXPECT_EQ(expected, 7);
  EXPECT_TRUE(v.compare_exchange(expected, 9));
  EXPECT_EQ(v.load(), 9);
  EXPECT_EQ(v.fetch_add(3), 9);
  EXPECT_EQ(v.fetch_sub(2), 12);
  EXPECT_EQ(*v.get(), 10);
}

TEST(SharedValueTest, DefaultIsValueInitialized) {
  SharedValue<double> d;
  EXPECT_EQ(d.load(), 0.0);
  SharedValue<Pair> p;
  auto g = p.lock();
  EXPECT_EQ(g->a, 0);
  EXPECT_EQ(g->b, 0);
}

TEST(SharedValueTest, MovedValueKeepsItsMemory) {
  SharedValue<int> a(3);
  int* where = a.get();
  SharedValue<int> b(std::move(a));
  EXPECT_EQ(b.get(), where);
  EXPECT_EQ(b.load(), 3);
  SharedValue<int> c(0);
  c = std::move(b);
  EXPECT_EQ(c.load(), 3);
}

TEST(SharedArrayTest, ElementsAndLock) {
  SharedArray<double> xs{0.5, 1.5, 2.5};
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_EQ(xs.load(1), 1.5);
  xs.store(2, 4.0);
  EXPECT_EQ(xs.fetch_add(0, 1.0), 0.5);
  {
    auto g = xs.lock();
    EXPECT_FALSE(g.previous_owner_died());
    g[1] += g[0];
  }
  EXPECT_EQ(xs.to_vector(), (std::vector<double>{1.5, 3.0, 4.0}));
  SharedArray<int> zeros(4);
  EXPECT_EQ(zeros.to_vector(), (std::vector<int>{0, 0, 0, 0}));
  SharedArray<int> sevens(2, 7);
  EXPECT_EQ(sevens.to_vector(), (std::vector<int>{7, 7}));
  SharedArray<int> none(0);
  EXPECT_TRUE(none.to_vector().empty());
}

TEST(SharedValueTest, ChildWritesParentReads) {
  SharedValue<int> v(1);
  SharedArray<double> xs{0.0, 0.0, 0.0};
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    v.store(42);
    xs.store(2, 2.5);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_EQ(v.load(), 42);
  EXPECT_EQ(xs.load(2), 2.5);
}

TEST(SharedValueTest, LockOfADeadOwnerIsTakenOver) {
  SharedValue<Pair> v;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto g = v.lock();
    g->a = 1;  // half an update: b is never written
    char c = 'x';
    (void)!write(ready[1], &c, 1);
    _exit(0);  // dies holding the lock
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  close(ready[1]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  {
    auto g = v.lock();  // does not deadlock
    EXPECT_TRUE(g.previous_owner_died());
    EXPECT_EQ(g->a, 1);
    g->b = 1;  // repaired
  }
  auto g = v.lock();
  EXPECT_FALSE(g.previous_owner_died());
  EXPECT_EQ(g->b, 1);
}

class SharedContentionTest : public ::testing::TestWithParam<std::string> {};

// 1M increments in total from every worker, atomically and under the lock.
TEST_P(SharedContentionTest, ExactTotals) {
  const std::set<std::string> shm_before = DevShm();
  constexpr std::size_t kTasks = 1000;
  constexpr int kPerTask = 1000;
  SharedValue<long long> counter(0);
  SharedValue<Pair> locked;
  SharedArray<double> halves(3);
  Parallel parallel({.jobs = 4, .backend = GetParam()});
  parallel.for_each(kTasks, [&](std::size_t i) {
    for (int k = 0; k < kPerTask; ++k) counter.fetch_add(1);
    halves.fetch_add(i % 3, 0.5);
  });
  EXPECT_EQ(counter.load(), 1000000);
  EXPECT_EQ(halves.to_vector(), (std::vector<double>{167.0, 166.5, 166.5}));

  parallel.for_each(kTasks, [&](std::size_t) {
    for (int k = 0; k < kPerTask; ++k) {
      auto g = locked.lock();
      g->a += 1;
      g->b += 2;
    }
  });
  auto g = locked.lock();
  EXPECT_EQ(g->a, 1000000);
  EXPECT_EQ(g->b, 2000000);
  EXPECT_EQ(DevShm(), shm_before);
}

// Values made from a task's results also reach the caller on every backend.
TEST_P(SharedContentionTest, CompareExchangeElectsOneWinner) {
  SharedValue<int> winner(-1);
  SharedValue<int> wins(0);
  Parallel({.jobs = 4, .backend = GetParam()}).for_each(64, [&](std::size_t i) {
    int expected = -1;
    if (winner.compare_exchange(expected, static_cast<int>(i)))
      wins.fetch_add(1);
  });
  EXPECT_EQ(wins.load(), 1);
  EXPECT_GE(winner.load(), 0);
  EXPECT_LT(winner.load(), 64);
}

INSTANTIATE_TEST_SUITE_P(Backends, SharedContentionTest,
                         ::testing::Values("thread", "process"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace fanout
