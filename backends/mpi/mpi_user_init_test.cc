// A program that starts MPI itself, on a thread other than its main one,
// run under mpirun (see BUILD, mpirun_test.sh): fanout must use the world
// the program started, take calls from the thread that called MPI_Init
// (every rank's same thread, whatever the timing) and refuse them from any
// other thread, on every rank alike.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "backends/mpi/mpi.h"
#include "backends/mpi/mpi_test_ranks.h"
#include "core/parallel.h"

namespace fanout {
namespace {

std::vector<int> Doubled(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(2 * i);
  return v;
}

TEST(MpiUserInit, UsesTheProgramsWorld) {
  const mpi::World& w = mpi::world();
  EXPECT_TRUE(w.active);
  EXPECT_GE(w.size, 2);
  EXPECT_EQ(w.init_seconds, 0) << "fanout did not start MPI";
  EXPECT_NE(gettid(), getpid()) << "this test runs off the main thread";
}

TEST(MpiUserInit, CallsFromTheThreadThatCalledMpiInitRun) {
  Parallel p({.jobs = 2, .backend = "mpi"});
  EXPECT_EQ(p.map(100, [](std::size_t i) { return int(i) * 2; }), Doubled(100));
}

TEST(MpiUserInit, CallsFromOtherThreadsAreRefused) {
  std::string error = "no error";
  std::atomic<int> ran{0};
  std::thread other([&] {
    try {
      Parallel({.jobs = 2, .backend = "mpi"}).for_each(100, [&](std::size_t) {
        ran.fetch_add(1);
      });
    } catch (const UsageError& e) {
      error = e.what();
    }
  });
  other.join();
  EXPECT_NE(error.find("which is not the thread that called MPI_Init; under "
                       "mpirun every call on the mpi backend must come from "
                       "the thread that called MPI_Init"),
            std::string::npos)
      << error;
  EXPECT_EQ(ran.load(), 0);
  Parallel p({.jobs = 2, .backend = "mpi"});
  EXPECT_EQ(p.map(40, [](std::size_t i) { return int(i) * 2; }), Doubled(40));
}

}  // namespace
}  // namespace fanout

int main(int argc, char** argv) {
  int rc = 1;
  std::thread program([&] {
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided) !=
        MPI_SUCCESS) {
      return;
    }
    rc = RunAllTestsOnRanks(argc, argv);
    MPI_Finalize();
  });
  program.join();
  return rc;
}
