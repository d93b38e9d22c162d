// main() for fanout's tests (Debian's libgtest-dev ships no gtest_main.pc
// that Bazel could pick up alongside gtest without linking main twice).
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
