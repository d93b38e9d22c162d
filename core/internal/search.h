// fanout/core/internal/search.h — Parallel::find_first and any_of: groups
// of tasks scanned in index order, skipping what a hit makes needless.
//
// IWYU pragma: private, include "core/parallel.h"
#ifndef FANOUT_CORE_INTERNAL_SEARCH_H_
#define FANOUT_CORE_INTERNAL_SEARCH_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <limits>
#include <optional>

#include "core/internal/runner.h"

namespace fanout {
namespace internal {

// One word in memory that forked workers share with the caller (MAP_SHARED;
// plain memory where that fails, for backends that share memory anyway).
class SharedWord {
 public:
  explicit SharedWord(std::size_t initial);
  ~SharedWord();
  SharedWord(const SharedWord&) = delete;
  SharedWord& operator=(const SharedWord&) = delete;
  std::atomic<std::size_t>& word() { return *word_; }

 private:
  std::atomic<std::size_t>* word_;
  bool mapped_;
};

constexpr std::size_t kNoHit = std::numeric_limits<std::size_t>::max();

// Lowers *best to `hit` unless it is lower already.
inline void LowerTo(std::atomic<std::size_t>& best, std::size_t hit) {
  std::size_t seen = best.load(std::memory_order_relaxed);
  while (hit < seen &&
         !best.compare_exchange_weak(seen, hit, std::memory_order_relaxed)) {
  }
}

}  // namespace internal

template <class F>
requires std::predicate<F&, std::size_t> std::optional<std::size_t>
Parallel::find_first(std::size_t n, F&& pred) {
  if (n == 0) return std::nullopt;
  const std::size_t groups = std::min(n, kReduceGroups);
  const std::size_t per = n / groups;
  const std::size_t extra = n % groups;
  const auto first = [per, extra](std::size_t g) {
    return g * per + std::min(g, extra);
  };
  internal::SharedWord shared(internal::kNoHit);
  std::atomic<std::size_t>& best = shared.word();
  // A group's lowest hit (kNoHit for none), scanning up to the best hit
  // any task found so far.
  auto scan = [&](std::size_t g) -> std::size_t {
    std::size_t i = first(g);
    const std::size_t end = first(g + 1);
    try {
      for (; i < end; ++i) {
        if (i > best.load(std::memory_order_relaxed)) break;
        if (std::invoke(pred, i)) {
          internal::LowerTo(best, i);
          return i;
        }
      }
    } catch (...) {
      throw internal::GroupTaskFailure{i, std::current_exception()};
    }
    return internal::kNoHit;
  };
  internal::Runner<std::size_t, decltype(scan)> runner(groups, scan);
  RunReport report = Run(runner.MakeJob(groups), ErrorPolicy::kCollectAll);
  std::size_t answer = internal::kNoHit;
  for (std::size_t g = 0; g < groups; ++g) {
    bool failed = false;
    for (const TaskError& e : report.failures) {
      failed = failed || (e.index() >= first(g) && e.index() < first(g + 1));
    }
    if (!failed) answer = std::min(answer, runner.slots()[g]);
  }
  // Failures are sorted by task: the lowest one below the answer, if any.
  std::size_t below = 0;
  while (below < report.failures.size() &&
         report.failures[below].index() < answer) {
    ++below;
  }
  if (below != 0) {
    throw report.failures.front().with_failed_tasks(below);
  }
  if (answer == internal::kNoHit) return std::nullopt;
  return answer;
}

template <class F>
requires std::predicate<F&, std::size_t>
bool Parallel::any_of(std::size_t n, F&& pred) {
  if (n == 0) return false;
  const std::size_t groups = std::min(n, kReduceGroups);
  const std::size_t per = n / groups;
  const std::size_t extra = n % groups;
  internal::SharedWord shared(0);
  std::atomic<std::size_t>& hit = shared.word();
  auto scan = [&](std::size_t g) -> unsigned char {
    std::size_t i = g * per + std::min(g, extra);
    const std::size_t end = (g + 1) * per + std::min(g + 1, extra);
    try {
      for (; i < end; ++i) {
        if (hit.load(std::memory_order_relaxed) != 0) return 0;
        if (std::invoke(pred, i)) {
          hit.store(1, std::memory_order_relaxed);
          return 1;
        }
      }
    } catch (...) {
      throw internal::GroupTaskFailure{i, std::current_exception()};
    }
    return 0;
  };
  internal::Runner<unsigned char, decltype(scan)> runner(groups, scan);
  RunReport report = Run(runner.MakeJob(groups), ErrorPolicy::kCollectAll);
  for (std::size_t g = 0; g < groups; ++g) {
    bool failed = false;
    for (const TaskError& e : report.failures) {
      failed = failed || (e.index() >= g * per + std::min(g, extra) &&
                          e.index() < (g + 1) * per + std::min(g + 1, extra));
    }
    if (!failed && runner.slots()[g] != 0) return true;
  }
  ThrowFirst(report);
  return false;
}

}  // namespace fanout

#endif  // FANOUT_CORE_INTERNAL_SEARCH_H_
