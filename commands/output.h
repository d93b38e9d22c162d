// fanout/commands/output.h — where commands mode's output goes: each
// command's stdout and stderr written together when it ends (grouped), or in
// input order (--keep-order), or whole lines as they come (--line-buffer);
// lines optionally prefixed with a tag (--tag). Bytes pass through as they
// are: binary and very long output intact.
//
//   fanout::commands::Printer p(stdout, stderr, /*keep_order=*/true,
//                          /*line_buffer=*/false, /*tag=*/false);
//   p.Done(1, "second\n", "", "");  // held: 0 has not finished
//   p.Done(0, "first\n", "", "");   // prints first, then second
//   p.Finish();
#ifndef FANOUT_COMMANDS_OUTPUT_H_
#define FANOUT_COMMANDS_OUTPUT_H_

#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace fanout::commands {

// How much of a running command's stdout / stderr --line-buffer printed.
struct StreamState {
  std::size_t printed[2] = {0, 0};
};

class Printer {
 public:
  Printer(std::FILE* out, std::FILE* err, bool keep_order, bool line_buffer,
          bool tag)
      : out_(out),
        err_(err),
        keep_order_(keep_order),
        line_buffer_(line_buffer),
        tag_(tag) {}

  // Command `i` (in input order) ended with this output. Thread-safe.
  void Done(std::size_t i, const std::string& out, const std::string& err,
            const std::string& tag);

  // --line-buffer: prints the whole lines of `out` / `err` not printed yet
  // (and, when `final`, what is left). Thread-safe.
  void Live(const std::string& out, const std::string& err,
            const std::string& tag, StreamState* state, bool final);

  // A line to stdout (--dry-run). Thread-safe.
  void Line(const std::string& text);

  // Prints what --keep-order still holds (commands after one that never
  // ran).
  void Finish();

 private:
  struct Held {
    bool done = false;
    std::string out, err, tag;
  };
  void Write(std::FILE* f, const char* data, std::size_t size,
             const std::string& tag);
  void Flush(std::size_t i);

  std::FILE* out_;
  std::FILE* err_;
  const bool keep_order_;
  const bool line_buffer_;
  const bool tag_;
  std::mutex mu_;
  std::vector<Held> held_;
  std::size_t next_ = 0;  // --keep-order: the next to print
};

// --tag's prefix for a command: its arguments joined with spaces (without
// any, the command itself) and a tab.
std::string TagOf(const std::vector<std::string>& args,
                  const std::string& command);

// --results=DIR: DIR/<seq>/ holds cmd, stdout, stderr and exitval (the
// status, or 128 + the signal), exitval written last. Returns "" once all
// four are written, else which file could not be and why; what was written
// of them is then removed, so that no job's results are kept half written.
std::string WriteResults(const std::string& dir, std::size_t seq,
                         const std::string& command, const std::string& out,
                         const std::string& err, int exit_code);

// Throws UsageError unless `dir` is a directory that results can be written
// into, creating it when it is missing (--results=DIR, before any command
// runs).
void CheckResultsDir(const std::string& dir);

// The summary's line for a failed command: "  [3] exit 3: CMD", "  [4]
// killed by signal 9 (Killed): CMD" or "  [2] timed out after 0.5s
// (--timeout): CMD"; with `lost` (what of it was not kept), "  [5] exit 0,
// but LOST: CMD".
void PrintFailure(std::FILE* err, std::size_t seq, const std::string& command,
                  int exit_code, int signal, double timed_out_after,
                  const std::string& lost = "");

}  // namespace fanout::commands

#endif  // FANOUT_COMMANDS_OUTPUT_H_
