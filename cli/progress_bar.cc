#include "cli/progress_bar.h"

#include <string>

namespace fanout::cli {

void ProgressBar::operator()(const ProgressEvent& e) {
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

}  // namespace fanout::cli
