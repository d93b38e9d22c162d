#include "core/errors.h"

#include <string.h>

#include <utility>

namespace fanout {

TaskError::TaskError(Details details)
    : Error(Format(details, 1)), d_(std::move(details)) {}

TaskError TaskError::with_failed_tasks(std::size_t count) const {
  TaskError e(d_);
  e.failed_tasks_ = count;
  static_cast<Error&>(e) = Error(Format(d_, count));
  return e;
}

std::string TaskError::Format(const Details& d, std::size_t failed_tasks) {
  std::string s = "task " + std::to_string(d.index) + " failed on backend '" +
                  d.backend + "'";
  if (!d.worker.empty()) s += " (" + d.worker + ")";
  s += ": ";
  if (!d.type.empty()) s += d.type + ": ";
  s += d.message;
  if (failed_tasks > 1) {
    s += " (and " + std::to_string(failed_tasks - 1) + " other task" +
         (failed_tasks > 2 ? "s" : "") + " failed)";
  }
  return s;
}

}  // namespace fanout
