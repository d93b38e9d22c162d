// fanout/core/internal/checkpointed_run.h — Parallel::RunCheckpointed: a
// call with Options::checkpoint, window by window. Included by
// core/parallel.h after class Parallel.
//
// IWYU pragma: private, include "core/parallel.h"
#ifndef FANOUT_CORE_INTERNAL_CHECKPOINTED_RUN_H_
#define FANOUT_CORE_INTERNAL_CHECKPOINTED_RUN_H_

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/internal/call_scope.h"
#include "core/internal/checkpoint.h"
#include "core/internal/runner.h"
#include "core/internal/trace.h"

namespace fanout {

template <class R, class F>
internal::CheckpointedRun Parallel::RunCheckpointed(
    std::string_view kind, std::size_t n, F& f,
    typename internal::SlotsOf<R>::type* slots, ErrorPolicy errors, bool retry,
    std::size_t tasks) {
  const std::string& path = options_.checkpoint;
  internal::RefuseCheckpoint<R>(path);
  if constexpr (!internal::Journalable<R>()) {
    return {};  // not reached: RefuseCheckpoint threw
  } else {
    internal::CheckpointedRun run;
    run.loaded.assign(n, 0);
    const bool primary = executor_->is_primary();
    const std::unique_ptr<internal::Checkpoint> file =
        internal::OpenCheckpoint<R>(
            path,
            {.tasks = tasks != 0 ? tasks : n,
             .type = internal::TypeName(typeid(R)),
             .kind = std::string(kind),
             .key = options_.checkpoint_key},
            primary, &run.loaded, [&](std::size_t i) { return &(*slots)[i]; });
    run.resumed = static_cast<std::size_t>(
        std::count(run.loaded.begin(), run.loaded.end(), 1));
    last_resumed_ = run.resumed;
    // The tasks left, in index order: task k of a window is ids[k].
    std::vector<std::size_t> todo;
    todo.reserve(n - run.resumed);
    for (std::size_t i = 0; i < n; ++i) {
      if (!run.loaded[i]) todo.push_back(i);
    }
    internal::CallScope scope(*executor_, options_, n, run.resumed,
                              /*count=*/true, trace_.get(), kind);
    // Where every rank must make the same calls (mpi), windows cannot be
    // sized by each rank's clock.
    const bool timed = executor_->calls_from_any_thread();
    const int jobs = executor_->jobs();
    std::size_t window = internal::FirstWindow(jobs, todo.size(), timed);
    std::string batch;
    for (std::size_t pos = 0; pos < todo.size();) {
      const std::size_t count = std::min(window, todo.size() - pos);
      const std::size_t* ids = todo.data() + pos;
      // Failures name the window's task k; they are renamed below. (A
      // group of map_reduce names its failing task itself.)
      auto task = [&f, ids](std::size_t k) -> R {
        return std::invoke(f, ids[k]);
      };
      internal::Runner<R, decltype(task)> runner(count, task);
      scope.SetTaskIds(ids);
      const auto start = std::chrono::steady_clock::now();
      RunReport report;
      try {
        report = Run(runner.MakeJob(count), errors, retry, &scope);
      } catch (const TaskError& e) {
        // A worker died: the backend named the window's task.
        TaskError::Details d = e.details();
        if (d.index < count) d.index = ids[d.index];
        throw TaskError(std::move(d)).with_failed_tasks(e.failed_tasks());
      }
      const double seconds = std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start)
                                 .count();
      internal::RenameWindowFailures(&report.failures, ids, 0, count,
                                     /*all=*/kind != "map_reduce");
      // Failed tasks are not recorded (a rerun runs them again). Under
      // fail-fast a window with a failure is not recorded at all: the tasks
      // it never started hold no result.
      if (errors == ErrorPolicy::kCollectAll || report.failures.empty()) {
        if (primary) {
          auto failure = report.failures.begin();  // by index, as ids
          const auto failed = [&](std::size_t k) {
            while (failure != report.failures.end() &&
                   failure->index() < ids[k]) {
              ++failure;
            }
            return failure != report.failures.end() &&
                   failure->index() == ids[k];
          };
          const void* results = nullptr;
          if constexpr (!std::is_void_v<R>) results = runner.slots().data();
          internal::AppendWindow<R>(*file, &batch, ids, count, results, failed,
                                    scope.trace());
        }
        // A failed task's slot holds no result; the failure is reported.
        if constexpr (!std::is_void_v<R>) {
          for (std::size_t k = 0; k < count; ++k) {
            (*slots)[ids[k]] = std::move(runner.slots()[k]);
          }
        }
      }
      for (TaskError& e : report.failures) {
        run.report.failures.push_back(std::move(e));
      }
      if (errors == ErrorPolicy::kFailFast && !run.report.failures.empty()) {
        break;
      }
      pos += count;
      window =
          internal::NextWindow(window, seconds, jobs, todo.size() - pos, timed);
    }
    scope.Finish(run.report.failures.empty());
    return run;
  }
}

}  // namespace fanout

#endif  // FANOUT_CORE_INTERNAL_CHECKPOINTED_RUN_H_
