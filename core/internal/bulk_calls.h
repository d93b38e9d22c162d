// fanout/core/internal/bulk_calls.h — the bodies of Parallel's bulk calls
// (map, map_reduce, for_each, try_map): each builds a typed Runner over the
// user's function and runs its job through Parallel::Run, or through
// RunCheckpointed when Options::checkpoint is set. core/parallel.h declares
// them and says what they do.
// IWYU pragma: private, include "core/parallel.h"
#ifndef FANOUT_CORE_INTERNAL_BULK_CALLS_H_
#define FANOUT_CORE_INTERNAL_BULK_CALLS_H_

#include <algorithm>
#include <cstddef>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/parallel.h"

namespace fanout {

template <class F>
requires std::invocable<F&, std::size_t>
auto Parallel::map(std::size_t n, F&& f) {
  using R = std::invoke_result_t<F&, std::size_t>;
  static_assert(!std::is_void_v<R>, "map needs a value; use for_each");
  if (!options_.checkpoint.empty()) {
    std::vector<internal::Slot<R>> slots(n);
    ThrowFirst(RunCheckpointed<R>("map", n, f, &slots, options_.errors,
                                  /*retry=*/true)
                   .report);
    return Collect<R>(slots);
  }
  // Trivial results a backend fills from its own buffer (process) are
  // copied once, not over a zero-filled array.
  // (Not in a nested call, which runs inline in this process.)
  internal::Runner<R, std::remove_reference_t<F>> runner(
      n, f, executor_->adopts_results() && !in_task());
  RunReport report = Run(runner.MakeJob(n, /*indices_are_tasks=*/true),
                         options_.errors, true, nullptr, "map");
  ThrowFirst(report);
  if (runner.slots().size() != n) {
    internal::ThrowBadResultCount(runner.slots().size(), n, executor_->name());
  }
  return Collect<R>(runner.slots());
}

template <class T, class F, class Op>
requires std::invocable<F&, std::size_t> &&
    std::invocable<Op&, T, std::invoke_result_t<F&, std::size_t>>
        T Parallel::map_reduce(std::size_t n, F&& f, T init, Op op) {
  static_assert(std::is_default_constructible_v<T>,
                "map_reduce needs a default-constructible T to hold the "
                "group results");
  if (n == 0) return init;
  const std::size_t groups = std::min(n, kReduceGroups);
  const std::size_t per = n / groups;
  const std::size_t extra = n % groups;
  const auto first = [per, extra](std::size_t g) {
    return g * per + std::min(g, extra);
  };
  auto fold_group = [&](std::size_t g) -> T {
    std::size_t i = first(g);
    const std::size_t end = first(g + 1);
    try {
      T acc = static_cast<T>(std::invoke(f, i));
      for (++i; i < end; ++i) acc = op(std::move(acc), std::invoke(f, i));
      return acc;
    } catch (...) {
      throw internal::GroupTaskFailure{i, std::current_exception()};
    }
  };
  std::vector<internal::Slot<T>> partials;
  if (!options_.checkpoint.empty()) {
    // One record per group: the groups depend on n alone, so a rerun
    // folds the same tasks into each.
    partials.resize(groups);
    internal::CheckpointedRun run = RunCheckpointed<T>(
        "map_reduce", groups, fold_group, &partials, ErrorPolicy::kFailFast,
        /*retry=*/false, n);
    ThrowFirst(run.report);
    std::size_t resumed = 0;
    for (std::size_t g = 0; g < groups; ++g) {
      if (run.loaded[g]) resumed += first(g + 1) - first(g);
    }
    last_resumed_ = resumed;
  } else {
    internal::Runner<T, decltype(fold_group)> runner(groups, fold_group);
    RunReport report = Run(runner.MakeJob(groups), ErrorPolicy::kFailFast,
                           /*retry=*/false, nullptr, "map_reduce");
    ThrowFirst(report);
    partials = std::move(runner.slots());
  }
  T acc = std::move(init);
  for (auto& partial : partials) {
    acc = op(std::move(acc), internal::TakeSlot<T>(partial));
  }
  return acc;
}

template <class F>
requires std::invocable<F&, std::size_t>
void Parallel::for_each(std::size_t n, F&& f) {
  if (!options_.checkpoint.empty()) {
    std::vector<char> none;
    ThrowFirst(RunCheckpointed<void>("for_each", n, f, &none, options_.errors,
                                     /*retry=*/true)
                   .report);
    return;
  }
  internal::Runner<void, std::remove_reference_t<F>> runner(n, f);
  RunReport report = Run(runner.MakeJob(n, /*indices_are_tasks=*/true),
                         options_.errors, true, nullptr, "for_each");
  ThrowFirst(report);
}

template <class F>
requires std::invocable<F&, std::size_t>
auto Parallel::try_map(std::size_t n, F&& f) {
  using R = std::invoke_result_t<F&, std::size_t>;
  internal::Runner<R, std::remove_reference_t<F>> runner(
      options_.checkpoint.empty() ? n : 0, f);
  RunReport report;
  if (!options_.checkpoint.empty()) {
    runner.slots().resize(n);
    // The same records as map's: a map may resume a try_map and back.
    report = RunCheckpointed<R>("map", n, f, &runner.slots(),
                                ErrorPolicy::kCollectAll, /*retry=*/true)
                 .report;
  } else {
    report = Run(runner.MakeJob(n, /*indices_are_tasks=*/true),
                 ErrorPolicy::kCollectAll, true, nullptr, "try_map");
  }
  std::vector<Outcome<R>> out;
  out.reserve(n);
  auto failure = report.failures.begin();
  for (std::size_t i = 0; i < n; ++i) {
    if (failure != report.failures.end() && failure->index() == i) {
      out.emplace_back(*failure++);
    } else {
      out.emplace_back(internal::TakeSlot<R>(runner.slots()[i]));
    }
  }
  return out;
}

template <class R>
std::vector<R> Parallel::Collect(std::vector<internal::Slot<R>>& slots) {
  if constexpr (std::is_same_v<internal::Slot<R>, R>) {
    return std::move(slots);
  } else {
    std::vector<R> out;
    out.reserve(slots.size());
    for (auto& s : slots) out.push_back(internal::TakeSlot<R>(s));
    return out;
  }
}

}  // namespace fanout

#endif  // FANOUT_CORE_INTERNAL_BULK_CALLS_H_
