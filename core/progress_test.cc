#include "core/progress.h"

#include <gtest/gtest.h>
#include <stdio.h>

#include <string>

namespace {

std::string Capture(int level,
                    const std::vector<fanout::ProgressEvent>& events) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  fanout::VerbosePrinter printer(level, 2, f);
  for (const auto& e : events) printer(e);
  fclose(f);
  std::string s(buf, len);
  free(buf);
  return s;
}

TEST(VerbosePrinter, JoblibFormat) {
  EXPECT_EQ(Capture(50, {{.done = 40, .total = 100, .elapsed = 0.1}}),
            "[Parallel(n_jobs=2)]: Done  40 tasks      | elapsed:    0.1s\n");
  EXPECT_EQ(Capture(50, {{.done = 100,
                          .total = 100,
                          .elapsed = 75,
                          .finished = true,
                          .succeeded = true}}),
            "[Parallel(n_jobs=2)]: Done 100 out of 100 | elapsed:  1.2min "
            "finished\n");
  // A call that failed prints no "finished" line: its error says the rest.
  EXPECT_EQ(Capture(50, {{.done = 40,
                          .total = 100,
                          .elapsed = 75,
                          .finished = true,
                          .succeeded = false}}),
            "");
}

TEST(VerbosePrinter, LevelZeroPrintsNothing) {
  EXPECT_EQ(Capture(0, {{.done = 40, .total = 100, .elapsed = 0.1}}), "");
}

TEST(VerbosePrinter, LowerLevelsPrintFewerLines) {
  std::vector<fanout::ProgressEvent> events;
  for (std::size_t d = 1; d <= 1000; ++d)
    events.push_back({.done = d, .total = 1000});
  auto lines = [](const std::string& s) {
    return std::count(s.begin(), s.end(), '\n');
  };
  const auto l1 = lines(Capture(1, events));
  const auto l5 = lines(Capture(5, events));
  const auto l10 = lines(Capture(10, events));
  EXPECT_LT(l1, l5);
  EXPECT_LT(l5, l10);
  EXPECT_EQ(lines(Capture(11, events)), 1000);
}

}  // namespace
