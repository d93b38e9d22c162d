// fanout/tests/subprocess.h — runs a program as a child process and captures
// its stdout, stderr and exit code, for tests that treat a binary as a user
// would.
//
//   fanout::testing::Result r = fanout::testing::RunProgram(
//       fanout::testing::Runfile("cli/run"), {"--backend=thread"});
//   EXPECT_EQ(r.exit_code, 0);
#ifndef FANOUT_TESTS_SUBPROCESS_H_
#define FANOUT_TESTS_SUBPROCESS_H_

#include <string>
#include <vector>

namespace fanout::testing {

struct Result {
  int exit_code = -1;  // the exit status, or 128 + signal when killed
  std::string out;
  std::string err;
  long max_rss_kb = 0;  // its peak resident memory (and its children's)
};

// Runs `program` with `args`, `input` on its stdin (a pipe, written as the
// program reads it, beside reading its output), and waits for it.
Result RunProgram(const std::string& program,
                  const std::vector<std::string>& args,
                  const std::string& input = "");

// As RunProgram, with the file at `stdin_path` as its stdin (a regular
// file, as after `< FILE`, not a pipe).
Result RunProgramOnFile(const std::string& program,
                        const std::vector<std::string>& args,
                        const std::string& stdin_path);

// The path of a file of this repository in the test's runfiles.
std::string Runfile(const std::string& path);

// The lines of `text`, without their newlines.
std::vector<std::string> Lines(const std::string& text);

// The CLI under test (//cli:run) in the runfiles.
const std::string& Cli();

// The backends `program --list-backends` names (each line's first word).
std::vector<std::string> ListedBackends(const std::string& program);

}  // namespace fanout::testing

#endif  // FANOUT_TESTS_SUBPROCESS_H_
