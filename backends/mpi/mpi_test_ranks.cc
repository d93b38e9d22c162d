// Running gtest on ranks (see mpi_test_ranks.h).
#include "backends/mpi/mpi_test_ranks.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/mpi/mpi.h"

namespace {

// Prints only failures, prefixed with the rank, on ranks other than 0.
// (gtest holds its lock while reporting a result: the test's name is kept
// from OnTestStart, not asked for.)
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestStart(const ::testing::TestInfo& t) override {
    test_ = std::string(t.test_suite_name()) + "." + t.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s failed at %s:%d\n%s\n", rank_,
                 test_.c_str(), r.file_name() ? r.file_name() : "?",
                 r.line_number(), r.summary());
  }

 private:
  int rank_;
  std::string test_;
};

}  // namespace

int RunAllTestsOnRanks(int argc, char** argv) {
  const fanout::mpi::World& w = fanout::mpi::world();
  if (w.rank != 0) {
    // The files Bazel asks a test to write (the premature-exit marker, the
    // XML report) are rank 0's alone: other ranks would race on them.
    unsetenv("TEST_PREMATURE_EXIT_FILE");
    unsetenv("TEST_SHARD_STATUS_FILE");
  }
  ::testing::InitGoogleTest(&argc, argv);
  if (w.rank != 0) {
    GTEST_FLAG_SET(output, "");
    ::testing::TestEventListeners& listeners =
        ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(w.rank));
  }
  const int mine = RUN_ALL_TESTS() != 0 ? 1 : 0;
  if (!w.active) return mine;
  std::vector<int> all(w.size);
  MPI_Allgather(&mine, 1, MPI_INT, all.data(), 1, MPI_INT, w.comm);
  std::string failed;
  for (int r = 0; r < w.size; ++r) {
    if (all[r] != 0) failed += " " + std::to_string(r);
  }
  if (failed.empty()) return 0;
  if (w.rank == 0) {
    std::fprintf(stderr, "tests failed on rank(s):%s\n", failed.c_str());
  }
  return 1;
}
