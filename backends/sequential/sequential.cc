// The sequential backend: every task on the calling thread, in order. The
// reference every other backend is tested against.
#include <memory>

#include "core/executor.h"

namespace fanout {
namespace {

class SequentialExecutor final : public Executor {
 public:
  std::string_view name() const override { return "sequential"; }
  Capabilities capabilities() const override { return {}; }
  // One worker: Executor::run runs every call inline.
  int jobs() const override { return 1; }

 protected:
  RunReport RunParallel(const Job& job, const RunOptions& options) override {
    return internal::run_inline("sequential", job, options, inline_worker());
  }
};

}  // namespace
}  // namespace fanout

FANOUT_REGISTER_BACKEND(
    sequential, "every task on the calling thread, in order (the reference)",
    [](const fanout::ExecutorOptions&) {
      return std::make_unique<fanout::SequentialExecutor>();
    })
