#include "core/queue.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/parallel.h"
#include "core/shared.h"
#include "core/spawn.h"

namespace fanout {

// Reaches the queue's lock, to die holding it.
class QueueTestPeer {
 public:
  template <class T>
  static void Lock(Queue<T>& q) {
    q.core_.Lock();
  }
};

namespace {

using std::chrono::milliseconds;

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

TEST(QueueTest, FifoTryAndTimeouts) {
  Queue<int> q(2);
  EXPECT_EQ(q.capacity(), 2u);
  EXPECT_EQ(q.try_pop(), std::nullopt);
  EXPECT_THROW(q.pop(milliseconds(20)), TimeoutError);
  q.push(1);
  EXPECT_TRUE(q.try_push(2));
  EXPECT_FALSE(q.try_push(3));
  EXPECT_THROW(q.push(3, milliseconds(20)), TimeoutError);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.pop(), 1);
  EXPECT_EQ(q.pop(milliseconds(20)), 2);
  EXPECT_EQ(q.size(), 0u);
}

TEST(QueueTest, CloseDrainsThenEnds) {
  Queue<int> q(4);
  q.push(1);
  q.push(2);
  EXPECT_FALSE(q.closed());
  q.close();
  q.close();  // idempotent
  EXPECT_TRUE(q.closed());
  try {
    q.push(3);
    FAIL() << "push to a closed queue did not throw";
  } catch (const QueueClosedError& e) {
    EXPECT_EQ(e.dead_pid(), 0);
    EXPECT_EQ(std::string(e.what()), "queue: push to a closed queue");
  }
  EXPECT_EQ(q.pop(), 1);
  EXPECT_EQ(q.pop(), 2);
  EXPECT_EQ(q.pop(), std::nullopt);
  EXPECT_EQ(q.pop(milliseconds(10)), std::nullopt);
  EXPECT_EQ(q.try_pop(), std::nullopt);
}

TEST(QueueTest, EncodedItems) {
  Queue<std::string> q(3, 64);
  q.push("hello");
  q.push(std::string(40, 'x'));
  EXPECT_EQ(q.pop(), "hello");
  EXPECT_EQ(q.pop(), std::string(40, 'x'));
  try {
    q.push(std::string(100, 'y'));
    FAIL() << "oversize push did not throw";
  } catch (const Error& e) {
    // cereal encodes a string as an 8-byte length and its bytes.
    EXPECT_EQ(std::string(e.what()),
              "queue: an item of 108 encoded bytes exceeds this queue's "
              "max_item_bytes (64)");
  }
  Queue<std::vector<int>> v(1);
  v.push({1, 2, 3});
  EXPECT_EQ(v.pop(), (std::vector<int>{1, 2, 3}));
}

TEST(QueueTest, CloseWakesBlockedConsumers) {
  Queue<int> q(1);
  std::vector<std::thread> consumers;
  SharedValue<int> ended(0);
  for (int i = 0; i < 3; ++i) {
    consumers.emplace_back([&] {
      if (!q.pop()) ended.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(milliseconds(50));
  q.close();
  for (auto& t : consumers) t.join();
  EXPECT_EQ(ended.load(), 3);
}

TEST(QueueTest, CloseWakesConsumersInOtherProcesses) {
  Queue<int> q(1);
  std::vector<SpawnHandle<bool>> consumers;
  for (int i = 0; i < 2; ++i) {
    consumers.push_back(
        spawn("process", [&q] { return !q.pop().has_value(); }));
  }
  std::this_thread::sleep_for(milliseconds(50));
  q.close();
  for (auto& c : consumers) EXPECT_TRUE(c.join());
}

// 4 producers, 4 consumers: every item is consumed exactly once.
class QueueMpmcTest : public ::testing::TestWithParam<std::string> {};

TEST_P(QueueMpmcTest, NoItemLostOrDuplicated) {
  const std::set<std::string> shm_before = DevShm();
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 5000;
  Queue<int> q(16);
  SharedValue<int> producers_left(kProducers);
  Parallel parallel(
      {.jobs = 2 * kProducers, .backend = GetParam(), .batch_size = 1});
  std::vector<std::vector<int>> got =
      parallel.map(std::size_t{2} * kProducers, [&](std::size_t i) {
        std::vector<int> popped;
        if (i < kProducers) {
          for (int k = 0; k < kPerProducer; ++k) {
            q.push(static_cast<int>(i) * kPerProducer + k);
          }
          if (producers_left.fetch_sub(1) == 1) q.close();
        } else {
          while (std::optional<int> item = q.pop()) popped.push_back(*item);
        }
        return popped;
      });
  std::vector<int> seen(std::size_t{kProducers} * kPerProducer, 0);
  for (const auto& v : got) {
    for (int item : v) {
      ASSERT_GE(item, 0);
      ASSERT_LT(item, kProducers * kPerProducer);
      ++seen[item];
    }
  }
  for (int item = 0; item < kProducers * kPerProducer; ++item) {
    ASSERT_EQ(seen[item], 1) << "item " << item;
  }
  EXPECT_EQ(DevShm(), shm_before);
}

INSTANTIATE_TEST_SUITE_P(Backends, QueueMpmcTest,
                         ::testing::Values("thread", "process"),
                         [](const auto& info) { return info.param; });

// spawn("sequential") runs a task inside spawn(): a consumer spawned before
// its producer would wait forever. It refuses instead, naming the way out;
// the other order works.
TEST(QueueTest, SequentialSpawnRefusesAWaitThatCouldNeverEnd) {
  Queue<int> q(2);
  auto consumer = spawn("sequential", [&q] { return q.pop(); });
  try {
    consumer.join();
    ADD_FAILURE() << "expected UsageError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.type(), "fanout::UsageError");
    EXPECT_EQ(e.message().rfind("Queue::pop() on an empty queue inside "
                                "spawn(\"sequential\") would wait forever",
                                0),
              0u)
        << e.message();
  }
  auto full = spawn("sequential", [&q] {
    for (int i = 0; i < 3; ++i) q.push(i);
  });
  EXPECT_THROW(full.join(), TaskError);
  // Producers first: fine.
  Queue<int> r(4);
  spawn("sequential", [&r] {
    r.push(1);
    r.push(2);
  }).join();
  auto got = spawn("sequential", [&r] { return *r.pop() + *r.pop(); });
  EXPECT_EQ(got.join(), 3);
}

TEST(QueueTest, SpawnedProducersAndConsumers) {
  constexpr int kPerProducer = 2000;
  Queue<std::string> q(8, 32);
  SharedValue<int> producers_left(4);
  std::vector<SpawnHandle<std::vector<std::string>>> workers;
  for (int p = 0; p < 4; ++p) {
    workers.push_back(spawn("process", [&q, &producers_left, p] {
      for (int k = 0; k < kPerProducer; ++k) {
        q.push(std::to_string(p) + ":" + std::to_string(k));
      }
      if (producers_left.fetch_sub(1) == 1) q.close();
      return std::vector<std::string>{};
    }));
  }
  for (int c = 0; c < 4; ++c) {
    workers.push_back(spawn("process", [&q] {
      std::vector<std::string> got;
      while (auto item = q.pop()) got.push_back(*item);
      return got;
    }));
  }
  std::multiset<std::string> all;
  for (auto& w : workers) {
    for (auto& s : w.join()) all.insert(s);
  }
  ASSERT_EQ(all.size(), 4u * kPerProducer);
  for (int p = 0; p < 4; ++p) {
    for (int k = 0; k < kPerProducer; ++k) {
      ASSERT_EQ(all.count(std::to_string(p) + ":" + std::to_string(k)), 1u);
    }
  }
}

// A producer that dies, however it dies, does not leave a consumer blocked in
// pop() (no timeout) forever: the consumer takes what was pushed, then pop()
// throws naming the dead producer.
enum class Death { kExitHoldingLock, kKilledHoldingLock, kKilledBetweenPushes };

class QueueCrashTest : public ::testing::TestWithParam<Death> {};

TEST_P(QueueCrashTest, ConsumerWakesAndKnowsWhoDied) {
  Queue<int> q(8);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    q.push(1);
    q.push(2);
    std::this_thread::sleep_for(milliseconds(150));  // let the consumer block
    switch (GetParam()) {
      case Death::kExitHoldingLock:
        QueueTestPeer::Lock(q);
        _exit(0);
      case Death::kKilledHoldingLock:
        QueueTestPeer::Lock(q);
        raise(SIGKILL);
        break;
      case Death::kKilledBetweenPushes:
        raise(SIGKILL);
        break;
    }
    _exit(1);
  }
  std::vector<int> got;
  pid_t dead = 0;
  std::string what;
  try {
    while (auto item = q.pop()) got.push_back(*item);
  } catch (const QueueClosedError& e) {
    dead = e.dead_pid();
    what = e.what();
  }
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
  EXPECT_EQ(dead, pid);
  const std::string how =
      GetParam() == Death::kKilledBetweenPushes
          ? "pushed to the queue and died (killed or crashed)"
          : "died holding the queue's lock";
  EXPECT_EQ(what,
            "queue abandoned: process " + std::to_string(pid) + " " + how);
  EXPECT_THROW(q.push(3), QueueClosedError);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
}

INSTANTIATE_TEST_SUITE_P(Deaths, QueueCrashTest,
                         ::testing::Values(Death::kExitHoldingLock,
                                           Death::kKilledHoldingLock,
                                           Death::kKilledBetweenPushes),
                         [](const auto& info) {
                           switch (info.param) {
                             case Death::kExitHoldingLock:
                               return std::string("ExitHoldingLock");
                             case Death::kKilledHoldingLock:
                               return std::string("KilledHoldingLock");
                             case Death::kKilledBetweenPushes:
                               return std::string("KilledBetweenPushes");
                           }
                           return std::string();
                         });

// A spawned producer that ends normally is not mistaken for a dead one.
TEST(QueueTest, ProducerThatEndedNormallyIsNotACrash) {
  Queue<int> q(8);
  spawn("process", [&q] {
    q.push(1);
    q.push(2);
  }).join();
  EXPECT_EQ(q.pop(), 1);
  EXPECT_EQ(q.pop(), 2);
  // Waits past several liveness checks: the queue stays open and empty.
  EXPECT_THROW(q.pop(milliseconds(350)), TimeoutError);
  EXPECT_FALSE(q.closed());
  q.push(3);
  EXPECT_EQ(q.pop(), 3);
}

// The same for producers that were the process backend's workers: a worker
// that finished its tasks runs the exit hooks before it leaves.
TEST(QueueTest, ProcessBackendProducersAreNotCrashes) {
  Queue<int> q(64);
  Parallel({.jobs = 2, .backend = "process", .batch_size = 1})
      .for_each(8, [&q](std::size_t i) { q.push(static_cast<int>(i)); });
  std::set<int> got;
  for (int k = 0; k < 8; ++k) got.insert(*q.pop());
  EXPECT_EQ(got.size(), 8u);
  EXPECT_THROW(q.pop(milliseconds(350)), TimeoutError);
  EXPECT_FALSE(q.closed());
}

}  // namespace
}  // namespace fanout
