// fanout/cli/progress_bar.h — --progress: one line on a terminal, redrawn in
// place at most ten times a second, with rate and ETA.
//
//   fanout::Parallel p({.on_progress = fanout::cli::ProgressBar(stderr)});
//   // [###############---------------]  50% 15/30 48 tasks/s ETA 0.3s
#ifndef FANOUT_CLI_PROGRESS_BAR_H_
#define FANOUT_CLI_PROGRESS_BAR_H_

#include <chrono>
#include <cstdio>

#include "core/progress.h"

namespace fanout::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::FILE* err) : err_(err) {}
  void operator()(const ProgressEvent& e);

 private:
  std::FILE* err_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace fanout::cli

#endif  // FANOUT_CLI_PROGRESS_BAR_H_
