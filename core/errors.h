// fanout/core/errors.h — the errors a fanout call can throw.
//
//   try {
//     auto r = fanout::Parallel({.jobs = -1}).map(100, [](int i) { return f(i); });
//   } catch (const fanout::TaskError& e) {
//     // "task 17 failed on backend 'thread' (thread 1): std::runtime_error: boom"
//     rerun(e.index());
//   }
//
// Every fanout error derives from fanout::Error (a std::runtime_error):
//   UsageError        bad input: unknown backend, jobs = 0, ...
//   TaskError         a task threw, or its worker died (signal / exit status)
//   TimeoutError      the call ran past its timeout
//   InterruptedError  SIGINT / SIGTERM reached the caller during the call
//   CancelledError    Future::get() of a task that was cancelled
#ifndef FANOUT_CORE_ERRORS_H_
#define FANOUT_CORE_ERRORS_H_

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace fanout {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input from the caller: the message names what is wrong and what is valid.
class UsageError : public Error {
 public:
  using Error::Error;
};

// One task's failure: an exception it threw, or the death of its worker.
class TaskError : public Error {
 public:
  struct Details {
    std::size_t index = 0;  // the task
    std::string backend;    // "thread", "process", ...
    std::string worker;     // "thread 1", "pid 4242", "rank 3"
    std::string type;       // exception type, "" when the worker died
    std::string message;    // exception message, or how the worker died
    int signal = 0;         // the signal that killed the worker, else 0
    int exit_status = -1;   // the worker's exit status when it exited, else -1
    std::exception_ptr original;  // the exception itself, when in-process
  };

  explicit TaskError(Details details);

  std::size_t index() const { return d_.index; }
  const std::string& backend() const { return d_.backend; }
  const std::string& worker() const { return d_.worker; }
  const std::string& type() const { return d_.type; }
  const std::string& message() const { return d_.message; }
  int signal() const { return d_.signal; }
  int exit_status() const { return d_.exit_status; }
  // The task's own exception, when it did not cross a process boundary.
  const std::exception_ptr& original() const { return d_.original; }
  const Details& details() const { return d_; }

  // How many tasks of the call failed in all (>= 1). Under the collect-all
  // policy a call that throws reports its lowest failed task and this count.
  std::size_t failed_tasks() const { return failed_tasks_; }
  TaskError with_failed_tasks(std::size_t count) const;

 private:
  static std::string Format(const Details& d, std::size_t failed_tasks);
  Details d_;
  std::size_t failed_tasks_ = 1;
};

class TimeoutError : public Error {
 public:
  using Error::Error;
};

class InterruptedError : public Error {
 public:
  InterruptedError(const std::string& what, int signal)
      : Error(what), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

// A pool's task that was cancelled (Future::cancel, or its pool closed before
// it ran): what its Future::get() throws.
class CancelledError : public Error {
 public:
  using Error::Error;
};

}  // namespace fanout

#endif  // FANOUT_CORE_ERRORS_H_
