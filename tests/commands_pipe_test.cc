// Commands mode's --pipe: stdin cut into blocks of whole records, each the
// stdin of one command (GNU parallel's --pipe with --block, --recend, -N).
// The block rule as a function, then the CLI run as a process: every byte
// reaches exactly one command, no record is cut, a command that does not
// read its block does not stop the run, and flags that would do nothing are
// refused.
#include <gtest/gtest.h>

#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

#include "commands/pipe.h"
#include "tests/subprocess.h"

namespace fanout::testing {
namespace {

using commands::BlockRule;
using commands::NextBlock;

TEST(NextBlock, WholeRecordsThatFitTheBlock) {
  const BlockRule rule{.block_bytes = 8};
  EXPECT_EQ(NextBlock("aa\nbb\ncc\ndd\n", rule, false), 6u);  // "aa\nbb\n"
  EXPECT_EQ(NextBlock("aa\nbb", rule, false), 0u);  // short: wait for more
  EXPECT_EQ(NextBlock("aa\nbb", rule, true), 5u);   // the last block
  EXPECT_EQ(NextBlock("", rule, true), 0u);
  // A record longer than the block is a block of its own, never cut.
  EXPECT_EQ(NextBlock("0123456789ab\nc\n", rule, false), 13u);
  EXPECT_EQ(NextBlock("0123456789ab", rule, false), 0u);
  EXPECT_EQ(NextBlock("0123456789ab", rule, true), 12u);
}

TEST(NextBlock, RecordEndOfSeveralBytesAndRecordCounts) {
  const BlockRule by_size{.block_bytes = 6, .recend = "\n\n"};
  EXPECT_EQ(NextBlock("a\nb\n\nc\n\n", by_size, false), 5u);  // "a\nb\n\n"
  const BlockRule by_count{.block_bytes = 1, .records = 2};
  EXPECT_EQ(NextBlock("1\n2\n3\n", by_count, false), 4u);
  EXPECT_EQ(NextBlock("1\n2", by_count, false), 0u);
  EXPECT_EQ(NextBlock("1\n2", by_count, true), 3u);
}

std::string Lines(int n) {
  std::ostringstream s;
  for (int i = 1; i <= n; ++i) s << "line " << i << "\n";
  return s.str();
}

TEST(Pipe, EveryRecordReachesExactlyOneCommandWhole) {
  const std::string input = Lines(20000);  // ~228 KB
  // Each command prints its block back, framed: the blocks in input order
  // (-k) must make up the input, and none may start or end mid-line.
  Result r = RunProgram(
      Cli(), {"--pipe", "--block=10k", "-k", "--", "printf '<'; cat; printf '>'"},
      input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string joined;
  std::size_t blocks = 0;
  for (std::size_t at = 0; at < r.out.size();) {
    ASSERT_EQ(r.out[at], '<') << "at " << at;
    const std::size_t end = r.out.find('>', at);
    ASSERT_NE(end, std::string::npos);
    const std::string block = r.out.substr(at + 1, end - at - 1);
    ASSERT_FALSE(block.empty());
    EXPECT_EQ(block.back(), '\n') << "block " << blocks << " cuts a line";
    EXPECT_LE(block.size(), 10u * 1024) << "block " << blocks;
    joined += block;
    ++blocks;
    at = end + 1;
  }
  EXPECT_EQ(joined, input);
  EXPECT_GE(blocks, 22u);  // 228 KB in blocks of at most 10 KiB
  EXPECT_NE(r.err.find(std::to_string(blocks) + " run, " +
                       std::to_string(blocks) + " ok, 0 failed"),
            std::string::npos)
      << r.err;
}

TEST(Pipe, RecordsPerBlockAndTheirEnd) {
  Result r = RunProgram(Cli(), {"--pipe", "-N3", "-k", "--", "echo {#}: $(wc -l)"},
                        Lines(10));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1: 3\n2: 3\n3: 3\n4: 1\n");
  // NUL-ended records, one a command; the last one has no end.
  r = RunProgram(Cli(),
                 {"--pipe", "--recend=\\0", "--records=1", "-k", "--",
                  "tr '\\0' '|'; echo"},
                 std::string("a b\0c\0d", 7));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a b|\nc|\nd\n");
}

TEST(Pipe, ACommandThatDoesNotReadItsBlockIsNoErrorOfTheRun) {
  // head exits after 2 bytes: the rest of its 1 MiB block cannot be
  // written (EPIPE), which must neither kill run (SIGPIPE) nor count.
  const std::string input(8 << 20, 'x');
  std::string lines;
  for (std::size_t i = 0; i < input.size(); i += 4096) {
    lines += input.substr(i, 4095) + "\n";
  }
  Result r = RunProgram(Cli(), {"--pipe", "--", "head -c 2; echo"}, lines);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // 8 MiB in blocks of 1 MiB (whole lines: a little less each): 9 blocks,
  // each command printing its first two bytes.
  std::string expected;
  for (int k = 0; k < 9; ++k) expected += "xx\n";
  EXPECT_EQ(r.out, expected);
  EXPECT_NE(r.err.find("9 run, 9 ok, 0 failed"), std::string::npos) << r.err;
}

TEST(Pipe, FlagsThatWouldDoNothingAreRefused) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--block=1M", "--", "wc", "-l"},
       "run: --block shapes --pipe's blocks and does nothing without it; "
       "valid: with --pipe, as in cat big.log | run --pipe --block=10M grep "
       "-c ERROR\n"},
      {{"-N", "2", "--", "wc", "-l"},
       "run: --records shapes --pipe's blocks and does nothing without it; "
       "valid: with --pipe, as in cat big.log | run --pipe --block=10M grep "
       "-c ERROR\n"},
      {{"--pipe", "--", "wc", "-l", ":::", "a"},
       "run: --pipe feeds blocks of stdin to the commands, so it takes no ::: "
       "or :::: arguments and no --commands; valid: cat big.log | run --pipe "
       "[--block=SIZE] [--recend=TEXT] [-N RECORDS] COMMAND\n"},
      {{"--pipe", "--block=0", "--", "wc"},
       "run: --block=0 is out of range; valid: 1 byte to 1G, as --block=10M "
       "(GNU parallel's default: 1M)\n"},
      {{"--pipe", "--block=2G", "--", "wc"},
       "run: --block=2G is out of range; valid: 1 byte to 1G, as --block=10M "
       "(GNU parallel's default: 1M)\n"},
      {{"--pipe", "--recend=", "--", "wc"},
       "run: --recend is empty, so no record would ever end; valid: the text "
       "that ends a record, as --recend='\\n' (a line, the default) or "
       "--recend='\\0'\n"},
      {{"--pipe", "--recend=\\q", "--", "wc"},
       "run: --recend=\\q: '\\q' is not an escape; valid: \\n, \\t, \\r, \\0, "
       "\\\\ or plain text, as --recend='\\n\\n'\n"},
      {{"--pipe", "--dry-run", "--", "wc"},
       "run: --pipe feeds blocks of stdin to the commands, which --dry-run "
       "would have to run to show; valid: cat big.log | run --pipe "
       "[--block=SIZE] [--recend=TEXT] [-N RECORDS] COMMAND\n"},
      {{"--pipe", "--workload=sum"},
       "run: --pipe is for commands mode, not workload mode; valid: with "
       "--commands=FILE or arguments, as in: run --pipe wc -l < items\n"},
  };
  for (const Case& c : cases) {
    Result r = RunProgram(Cli(), c.args, "a\n");
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << " " << c.args[1];
    EXPECT_EQ(r.err, c.message);
    EXPECT_EQ(r.out, "");
  }
}

}  // namespace
}  // namespace fanout::testing
