#include "core/pool.h"

#include <string>

namespace fanout {

bool this_task::stop_requested() {
  const internal::CurrentTask& t = internal::current_task();
  return (t.stop != nullptr && t.stop->load(std::memory_order_relaxed) != 0) ||
         (t.closing != nullptr && t.closing->load(std::memory_order_relaxed));
}

namespace internal {

void RefuseCallOptions(const Options& o) {
  const auto refuse = [](const char* what, const char* instead) {
    throw UsageError(std::string("submit(): Options::") + what +
                     " applies to a pool's map, imap and map_reduce calls, "
                     "not to a submitted task; valid: " +
                     instead);
  };
  if (o.timeout.count() != 0) {
    refuse("timeout", "Future::wait_for(d) and Future::cancel()");
  }
  if (o.cancel != nullptr)
    refuse("cancel", "Future::cancel() or Pool::close()");
  if (o.verbose != 0) refuse("verbose", "verbose = 0 for a pool that submits");
  if (o.on_progress != nullptr) {
    refuse("on_progress", "as_completed() to follow submitted tasks");
  }
  if (o.on_stuck != nullptr) refuse("on_stuck", "Future::wait_for(d)");
}

void RefuseBulkCheckpoint(const Options& o) {
  if (o.checkpoint.empty()) return;
  throw UsageError(
      "Pool::map, imap, map_reduce and for_each on a pool with a checkpoint: "
      "the pool's checkpoint " +
      o.checkpoint +
      " journals its submitted tasks, and a bulk call cannot share the file; "
      "valid: run the bulk call on a fanout::Parallel with a checkpoint of "
      "its own, or submit() its tasks");
}

}  // namespace internal
}  // namespace fanout
